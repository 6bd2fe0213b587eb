"""Control-plane replicas on one PostgreSQL behind a real HAProxy, for the tests.

The first replica makes the data directory (CA, release key, admin token); the others
start on copies of it with the same ``--store``, as docs/server.md tells an operator
to. HAProxy passes the API and the agents' channels through to all of them.
"""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.helpers.haproxy import Backend, HAProxy
from tests.helpers.server import FAST, RunningServer


@dataclass
class ReplicaSet:
    workdir: Path
    store_url: str
    count: int = 3
    settings: dict[str, str] = field(default_factory=dict)
    replicas: list[RunningServer] = field(default_factory=list)
    lb: HAProxy | None = None

    def start(self) -> ReplicaSet:
        self.lb = HAProxy(self.workdir / "haproxy", tunnel_timeout_s=3.0)
        settings = {
            **FAST,
            "public_agent_port": str(self.lb.agent_port),
            "channel_keepalive_s": "1",
            "stream_heartbeat_s": "0.5",
            **self.settings,
        }
        first = RunningServer(
            self.workdir / "cp0", settings=settings, extra_args=["--store", self.store_url]
        ).start()
        self.replicas = [first]
        for i in range(1, self.count):
            copy = self.workdir / f"cp{i}"
            shutil.copytree(first.data_dir, copy, symlinks=True)
            # Its own agents' port: agents dial the balancer's (public_agent_port).
            (copy / "agent.port").unlink()
            self.replicas.append(
                RunningServer(copy, settings=settings, extra_args=["--store", self.store_url])
            )
        try:
            for replica in self.replicas[1:]:
                replica.start()
            self.lb.backends = [Backend(r.port, r.agent_port) for r in self.replicas]
            self.lb.start()
        except BaseException:
            self.stop()
            raise
        return self

    def restart_all(self) -> None:
        for replica in self.replicas:
            replica.stop()
        for replica in self.replicas:
            replica.port = 0
            replica.start()
        assert self.lb is not None
        self.lb.stop()
        self.lb.backends = [Backend(r.port, r.agent_port) for r in self.replicas]
        self.lb.start()

    def stop(self) -> None:
        if self.lb is not None:
            self.lb.stop()
        for replica in self.replicas:
            replica.stop(signal.SIGTERM)

    @property
    def url(self) -> str:
        assert self.lb is not None
        return self.lb.url

    def health(self, replica: RunningServer) -> dict:
        with replica.api() as api:
            return dict(api.get("/healthz").json())

    def leader(self) -> RunningServer | None:
        leaders = [r for r in self.live() if self.health(r)["leader"]]
        assert len(leaders) <= 1, "two replicas lead at once"
        return leaders[0] if leaders else None

    def live(self) -> list[RunningServer]:
        return [r for r in self.replicas if r.proc is not None and r.proc.poll() is None]

    def holder_of(self, count: int = 1) -> RunningServer | None:
        """The live replica with at least ``count`` agents' channels."""
        for replica in self.live():
            if self.health(replica)["connected"] >= count:
                return replica
        return None

    def api(self) -> httpx.Client:
        """The admin's client, through HAProxy."""
        first = self.replicas[0]
        return httpx.Client(
            base_url=self.url,
            verify=first.ssl_context(),
            headers={"Authorization": f"Bearer {first.admin_token}"},
            timeout=30.0,
        )
