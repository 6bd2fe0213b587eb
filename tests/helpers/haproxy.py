"""A real HAProxy in TCP passthrough in front of control planes, for the tests.

HAProxy (Debian package ``haproxy``) runs in the foreground (``-db``) on loopback
ports with a generated config: one frontend for the REST API and event stream, one
for the agent channel, each balancing over the control planes given. TLS is not
terminated: agents, dashboards and the CLI pin the control plane's own certificate
through it, as they would through a cloud TCP load balancer.
"""

from __future__ import annotations

import random
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.helpers.binaries import require_binary
from tests.helpers.server import end_process


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (for a listener started a moment later), below the
    ephemeral range: a port the kernel handed out for port 0 could be handed again to
    a server started meanwhile (``--port 0``) or to a client's connection, and the
    balancer would then fail to bind it."""
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(20_000, max(low, 20_001))
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket() as s:  # nothing free below the range: take the kernel's pick
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Backend:
    """One control plane behind the balancer: its API port and its agent port."""

    api_port: int
    agent_port: int
    host: str = "127.0.0.1"


@dataclass
class HAProxy:
    """``haproxy -db -f haproxy.cfg``: the frontends listen on ``api_port`` and
    ``agent_port`` (picked when unset) and pass TCP through to ``backends``."""

    workdir: Path
    backends: list[Backend] = field(default_factory=list)
    tunnel_timeout_s: float = 3600.0
    """HAProxy's ``timeout tunnel``: an established connection quiet for this long in
    both directions is closed."""
    api_port: int = 0
    agent_port: int = 0
    host: str = "127.0.0.1"
    maxconn: int = 4000
    """Connections at once (HAProxy needs two file descriptors each, within the
    process's hard limit)."""
    proc: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.api_port = self.api_port or free_port(self.host)
        self.agent_port = self.agent_port or free_port(self.host)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.api_port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "haproxy.log"

    def config(self) -> str:
        tunnel_ms = int(self.tunnel_timeout_s * 1000)

        def servers(port_of: str) -> str:
            return "".join(
                f"    server cp{i} {b.host}:{getattr(b, port_of)} check inter 500ms fall 2 rise 1\n"
                for i, b in enumerate(self.backends)
            )

        return (
            "global\n"
            f"    maxconn {self.maxconn}\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 2s\n"
            "    timeout client 30s\n"
            "    timeout server 30s\n"
            f"    timeout tunnel {tunnel_ms}ms\n"
            "    timeout client-fin 2s\n"
            # A server that refuses (stopping, just killed, not yet marked down by
            # the checks): try another rather than fail the client's connection.
            "    retries 2\n"
            "    option redispatch 1\n"
            f"frontend api\n    bind {self.host}:{self.api_port}\n    default_backend api\n"
            f"frontend agents\n    bind {self.host}:{self.agent_port}\n"
            "    default_backend agents\n"
            "backend api\n    balance roundrobin\n" + servers("api_port") + "backend agents\n"
            "    balance leastconn\n" + servers("agent_port")
        )

    def start(self, timeout: float = 10.0) -> HAProxy:
        binary = require_binary("haproxy", "haproxy")
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "haproxy.cfg"
        cfg.write_text(self.config())
        check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True)
        assert check.returncode == 0, f"haproxy refused its config:\n{check.stdout}{check.stderr}"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(cfg)], stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        for port in (self.api_port, self.agent_port):
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"haproxy exited with {self.proc.returncode}: {self.log_path.read_text()}"
                    )
                try:
                    socket.create_connection((self.host, port), timeout=0.5).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"haproxy did not listen on {port} in time") from None
                    time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.proc is not None:
            end_process(self.proc)
        self.proc = None
