"""A real control plane in a subprocess, on an ephemeral loopback port with real TLS."""

from __future__ import annotations

import ctypes
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]

FAST = {
    "heartbeat_interval_s": "0.5",
    "tick_s": "0.2",
    "flush_interval_s": "0.5",
    "restart_grace_s": "0",
    "offline_after_stale_s": "3",
    "time_probe_interval_s": "2",
    "alert_hold_s": "0",
    # Every test client dials from 127.0.0.1: per-address limits would couple
    # unrelated tests (tests/controlplane/test_limits.py sets its own).
    "auth_failures": "100000",
    "pending_connections": "100000",
}
"""Test timings: a heartbeat every 0.5 s, stale after 1.5 s, offline 3 s later; alerts
clear as soon as their check passes (tests of the hold time set their own); per-address
limits raised, as every test client is on loopback."""


def _die_with_parent() -> None:
    # If pytest itself is killed, the server goes too (Linux PR_SET_PDEATHSIG).
    ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)


def end_process(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` and wait for the end; SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class RunningServer:
    data_dir: Path
    settings: dict[str, str] = field(default_factory=lambda: dict(FAST))
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    url: str = ""
    host: str = "127.0.0.1"
    """The address to bind (``--host``): loopback only, e.g. 127.0.0.2."""
    extra_args: list[str] = field(default_factory=list)
    """More ``fleet server`` flags, e.g. ``["--san", "127.0.0.2"]``."""
    client_ca: Path | None = None
    """The CA the test's own clients verify the server with (default: the fleet CA)."""

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "ca.pem"

    @property
    def ca_pin(self) -> str:
        return (self.data_dir / "ca.pin").read_text().strip()

    @property
    def admin_token(self) -> str:
        return (self.data_dir / "admin.token").read_text().strip()

    @property
    def ws_url(self) -> str:
        return self.url.replace("https://", "wss://", 1)

    def start(self, timeout: float = 20.0) -> RunningServer:
        endpoint = self.data_dir / "endpoint"
        endpoint.unlink(missing_ok=True)
        args = [sys.executable, "-m", "fleet", "server", "--data-dir", str(self.data_dir)]
        args += ["--port", str(self.port), "--host", self.host, *self.extra_args]
        for key, value in self.settings.items():
            args += ["--set", f"{key}={value}"]
        log_path = self.log_path
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                args, cwd=REPO, stdout=log, stderr=log, preexec_fn=_die_with_parent
            )
        deadline = time.monotonic() + timeout
        # The server writes the file in one call, not atomically: wait for its newline.
        while not (endpoint.exists() and endpoint.read_text().endswith("\n")):
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start in time")
            time.sleep(0.05)
        self.url = endpoint.read_text().strip()
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            end_process(self.proc, sig)
        self.proc = None

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def restart(self) -> RunningServer:
        self.stop()
        return self.start()

    @property
    def agent_port(self) -> int:
        """The agents' channel port, as the data directory records it."""
        return int((self.data_dir / "agent.port").read_text().strip())

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}-server.log"

    def ssl_context(self) -> ssl.SSLContext:
        """Trusts this server's CA (or ``client_ca``) and nothing else."""
        return ssl.create_default_context(cafile=str(self.client_ca or self.ca_file))

    def api(self, token: str | None = None) -> httpx.Client:
        """An HTTP client with the admin token (or ``token``) that trusts the server's CA."""
        return httpx.Client(
            base_url=self.url,
            verify=self.ssl_context(),
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30.0,
        )

    def aapi(self, token: str | None = None) -> httpx.AsyncClient:
        """As :meth:`api`, for async tests (never block the loop the agents run in)."""
        return httpx.AsyncClient(
            base_url=self.url,
            verify=self.ssl_context(),
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=30.0,
        )

    def user(self, name: str, role: str) -> str:
        """Create an operator with ``role``; returns its API token."""
        with self.api() as api:
            response = api.post("/v1/users", json={"name": name, "role": role})
            response.raise_for_status()
            return str(response.json()["token"])

    def enrollment_token(self, pool: str = "default", uses: int = 1, ttl_s: float = 600) -> str:
        with self.api() as api:
            response = api.post("/v1/tokens", json={"pool": pool, "uses": uses, "ttl_s": ttl_s})
            response.raise_for_status()
            return str(response.json()["token"])

    def set_policy(self, pool: str, **policy: object) -> None:
        with self.api() as api:
            api.put(f"/v1/pools/{pool}/policy", json=policy).raise_for_status()


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a truthy value; fail with ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {last!r})")


os.environ.setdefault("NO_PROXY", "127.0.0.1,127.0.0.2,127.0.0.3,localhost")
