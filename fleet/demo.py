"""``fleet demo``: the whole system in one command.

A control plane on a temporary data directory (embedded SQLite, its own CA),
three real agent processes, a simulated fleet of about 50 agents in one more
process (real protocol, varied health), and the dashboard logged in as admin.
A release (:data:`DEMO_RELEASE`, for the simulated agents) is stored, and rolled
out to pool ``edge`` once its agents are connected: one canary, then two waves.
Quitting the dashboard stops everything; children also die with the demo if it
is killed (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .cliparse import FleetParser

if TYPE_CHECKING:
    import httpx  # imported where used: building the 'fleet' parser must stay light

__all__ = ["DemoBackend", "add_demo_arguments", "main", "run_demo", "running_demo"]

REAL_AGENTS = 3

DEMO_RELEASE = "1.5.0"
"""The release the demo rolls out to pool ``edge`` (a simulated one: the simulated
agents upgrade to it; a real agent would refuse it at its import check)."""
ROLLOUT_POOL = "edge"
ROLLOUT = {"canaries": 1, "soak_s": 30.0, "wave": "50%", "pause_s": 20.0}


def _die_with_parent() -> None:
    # Linux: deliver SIGTERM to this child when the demo process dies, however it dies.
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def say(message: str) -> None:
    print(f"fleet demo: {message}", file=sys.stderr, flush=True)


@dataclass
class DemoBackend:
    """The running parts of the demo, and how to stop them."""

    root: Path
    url: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.root / "server"

    @property
    def ca_file(self) -> Path:
        return self.data_dir / "ca.pem"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "admin.token"

    def spawn(self, args: list[str], log_name: str, env: dict[str, str] | None = None) -> None:
        log = self.root / f"{log_name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen(  # noqa: S603 (our interpreter, our arguments)
                [sys.executable, *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env={**os.environ, **(env or {})},
                preexec_fn=_die_with_parent,
            )
        self.procs.append(proc)

    def add_release(self) -> None:
        """Upload the demo's release (a simulated one) as an admin does."""
        from .simrelease import sim_wheel

        wheel = sim_wheel(self.root / "release", DEMO_RELEASE)
        with self.api() as api:
            api.put(f"/v1/releases/{DEMO_RELEASE}", content=wheel.read_bytes()).raise_for_status()

    def start_rollout(self, timeout: float = 60.0) -> str | None:
        """Roll :data:`DEMO_RELEASE` out to pool ``edge`` once its agents are connected;
        returns the rollout's id (None: the pool never came up)."""
        deadline = time.monotonic() + timeout
        with self.api() as api:
            while time.monotonic() < deadline:
                pool = api.get(f"/v1/pools/{ROLLOUT_POOL}")
                # The simulated fleet enrolls every agent, then connects them all.
                if pool.status_code == 200 and 2 <= pool.json()["healthy"] == pool.json()["agents"]:
                    break
                time.sleep(0.5)
            else:
                return None
            body = {"pool": ROLLOUT_POOL, "version": DEMO_RELEASE, **ROLLOUT}
            response = api.post("/v1/rollouts", json=body)
        if response.status_code != 201:
            say(f"the demo rollout did not start: {response.text}")
            return None
        rollout_id = str(response.json()["id"])
        say(f"rolling {DEMO_RELEASE} out to pool {ROLLOUT_POOL} ({rollout_id})")
        return rollout_id

    def start_server(self, timeout: float = 30.0) -> None:
        say(f"starting the control plane (data in {self.data_dir})")
        self.spawn(
            [
                "-m",
                "fleet",
                "server",
                "--data-dir",
                str(self.data_dir),
                "--port",
                "0",
                "--set",
                "restart_grace_s=5",
            ],
            "server",
        )
        endpoint = self.data_dir / "endpoint"
        deadline = time.monotonic() + timeout
        while not endpoint.exists():
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"the control plane exited; see {self.root / 'server.log'}")
            if time.monotonic() > deadline:
                raise RuntimeError("the control plane did not start within 30 s")
            time.sleep(0.05)
        self.url = endpoint.read_text().strip()

    def api(self) -> httpx.Client:
        import httpx

        return httpx.Client(
            base_url=self.url,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            headers={"Authorization": f"Bearer {self.token_file.read_text().strip()}"},
            timeout=30,
        )

    def configure(self) -> None:
        say("setting pins, probe policies and connections")
        port = int(self.url.rsplit(":", 1)[1])
        loopback: dict[str, Any] = {
            "allow_hosts": ["localhost", "*.internal"],
            "allow_cidrs": ["127.0.0.0/8"],
            "allow_ports": ["1-65535"],
        }
        with self.api() as api:
            for pool in ("local", "db-east", "db-west", "etl", "edge"):
                api.put(f"/v1/pools/{pool}/policy", json=loopback).raise_for_status()
            api.put(
                "/v1/pools/legacy/policy", json={**loopback, "min_healthy": 1}
            ).raise_for_status()
            for pool in ("db-east", "db-west", "etl", "edge"):
                api.put(f"/v1/pools/{pool}/pin", json={"version": "1.4.0"}).raise_for_status()
            hourly = {"cron": "0 * * * *", "timezone": "Europe/Berlin", "name": "export"}
            # Every 10 minutes, always within the lead time: its pool has no agent,
            # so the demo shows a connection at risk before its next run.
            sync = {"cron": "*/10 * * * *", "timezone": "UTC", "name": "stock-sync"}
            for name, host, conn_port, pools, schedules in [
                ("control-plane", "127.0.0.1", port, ["local"], []),
                ("orders-db", "127.0.0.1", 5432, ["db-east", "db-west"], [hourly]),
                ("warehouse", "127.0.0.1", 1433, ["legacy"], [sync]),
            ]:
                api.post(
                    "/v1/connections",
                    json={
                        "name": name,
                        "host": host,
                        "port": conn_port,
                        "pools": pools,
                        "schedules": schedules,
                    },
                ).raise_for_status()

    def start_real_agents(self, count: int = REAL_AGENTS) -> None:
        say(f"enrolling {count} real agent processes")
        with self.api() as api:
            token = api.post("/v1/tokens", json={"pool": "local", "uses": count}).json()["token"]
        token_file = self.root / "enroll.token"
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(token + "\n")
        ca_pin = (self.data_dir / "ca.pin").read_text().strip()
        allow = ["--allow-cidr", "127.0.0.0/8", "--allow-host", "localhost"]
        allow += ["--allow-port", "1-65535"]
        for i in range(1, count + 1):
            state = self.root / f"agent-{i}"
            name = f"local-{i}"
            enroll = _fleet(
                "agent",
                "enroll",
                "--server",
                self.url,
                "--ca-pin",
                ca_pin,
                "--token-file",
                str(token_file),
                "--state-dir",
                str(state),
                "--name",
                name,
            )
            if enroll.returncode != 0:
                raise RuntimeError(f"agent {name} could not enroll: {enroll.stderr.strip()}")
            self.spawn(["-m", "fleet", "agent", "run", "--state-dir", str(state), *allow], name)
        self._pin_local_configs(allow, count)

    def _pin_local_configs(self, allow: list[str], count: int) -> None:
        # Pin the pool to exactly what the real agents run with, and the last agent
        # to a config it does not run with, so the detail view has a diff to show.
        state = self.root / "agent-1"
        shown = _fleet("agent", "run", "--state-dir", str(state), *allow, "--print-config")
        if shown.returncode != 0:
            return
        effective = json.loads(shown.stdout)["config"]
        with self.api() as api:
            api.put(
                "/v1/pools/local/pin", json={"version": __version__, "config": effective}
            ).raise_for_status()
            if count >= 2:
                last = json.loads((self.root / f"agent-{count}" / "agent.json").read_text())
                drifted = {**effective, "max_concurrency": 4, "log_level": "warning"}
                api.put(
                    f"/v1/agents/{last['agent_id']}/pin",
                    json={"version": __version__, "config": drifted},
                ).raise_for_status()

    def start_sim_fleet(self, count: int) -> None:
        say(f"simulating {count} more agents over the real protocol")
        self.spawn(
            [
                "-m",
                "fleet.simfleet",
                "--server",
                self.url,
                "--ca-file",
                str(self.ca_file),
                "--admin-token-file",
                str(self.token_file),
                "--count",
                str(count),
            ],
            "simfleet",
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 8
        for proc in reversed(self.procs):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.procs.clear()


def _fleet(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our interpreter, our arguments)
        [sys.executable, "-m", "fleet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextlib.contextmanager
def running_demo(
    root: Path | None = None,
    sim_count: int = 50,
    real_agents: int = REAL_AGENTS,
    rollout: bool = True,
) -> Iterator[DemoBackend]:
    """Start the demo's back end; stop it and remove its files on exit."""
    owned = root is None
    root = root or Path(tempfile.mkdtemp(prefix="fleet-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    backend = DemoBackend(root)
    try:
        backend.start_server()
        backend.configure()
        backend.add_release()
        if real_agents:
            backend.start_real_agents(real_agents)
        if sim_count:
            backend.start_sim_fleet(sim_count)
            if rollout:
                # In the background: the dashboard opens meanwhile and shows it start.
                threading.Thread(target=backend.start_rollout, daemon=True).start()
        yield backend
    finally:
        backend.stop()
        if owned:
            shutil.rmtree(root, ignore_errors=True)


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``fleet demo`` to ``parser``; run them with :func:`run_demo`."""
    parser.add_argument("--agents", type=int, default=50, help="simulated agents")
    parser.add_argument("--real-agents", type=int, default=REAL_AGENTS, help="real agent processes")
    parser.add_argument(
        "--no-tui", action="store_true", help="run the back end only, until interrupted"
    )
    parser.add_argument("--wall", action="store_true", help="open the dashboard in wall mode")
    parser.add_argument(
        "--no-rollout",
        action="store_true",
        help=f"do not roll release {DEMO_RELEASE} out to pool {ROLLOUT_POOL}",
    )


def main(argv: list[str]) -> int:
    """``fleet demo ARGV``: parse, then run."""
    parser = FleetParser(prog="fleet demo", description=__doc__)
    add_demo_arguments(parser)
    return run_demo(parser.parse_args(argv))


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo with the options of :func:`add_demo_arguments`."""
    try:
        with running_demo(
            sim_count=args.agents, real_agents=args.real_agents, rollout=not args.no_rollout
        ) as demo:
            say(f"ready: {demo.url} (CA {demo.ca_file})")
            if args.no_tui:
                print(json.dumps({"url": demo.url, "root": str(demo.root)}), flush=True)
                signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
                signal.sigwait({signal.SIGINT, signal.SIGTERM})
                return 0
            from fleet_tui.cli import main as tui_main

            tui_args = ["--server", demo.url, "--token-file", str(demo.token_file)]
            tui_args += ["--ca-file", str(demo.ca_file)]
            if args.wall:
                tui_args.append("--wall")
            return tui_main(tui_args)
    except RuntimeError as exc:
        say(f"failed: {exc}")
        return 1
