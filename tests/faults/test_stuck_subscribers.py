"""Event-stream subscribers that stop reading must not slow ingest or other dashboards.

A simulated fleet (``python -m fleet.simfleet``, its own process) heartbeats
every 0.5 s; a well-behaved dashboard measures heartbeat-to-dashboard latency
(receipt time minus the server's ``last_heartbeat_at``), first alone, then with
20 subscribers that never read (tiny receive buffers, a one-frame queue).  Both
the latency and the ingest rate are compared with the unloaded phase, as ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websockets

from fleet.protocol import (
    MAX_STREAM_FRAME_BYTES,
    PROTOCOL_VERSION,
    AgentUpdate,
    Subscribe,
    dump,
    parse_stream_message,
)
from tests.helpers.server import REPO, RunningServer, wait_for
from tests.helpers.stream import subscribe

pytestmark = pytest.mark.timeout(60)

FLEET = 60
STUCK = 20
PHASE_S = 6.0
LATENCY_RATIO = 3.0
INGEST_RATIO = 0.7


def healthz(server: RunningServer) -> dict[str, int]:
    with server.api() as api:
        return dict(api.get("/healthz").json())


async def stuck_subscriber(server: RunningServer) -> websockets.ClientConnection:
    """A dashboard that subscribes and then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    ws = await websockets.connect(
        server.ws_url + "/v1/events",
        sock=sock,
        ssl=server.ssl_context(),
        server_hostname="127.0.0.1",
        additional_headers={"Authorization": f"Bearer {server.admin_token}"},
        max_size=MAX_STREAM_FRAME_BYTES,
        max_queue=1,
        ping_interval=None,
    )
    await ws.send(dump(Subscribe(protocol_version=PROTOCOL_VERSION)))
    return ws


@dataclass
class GoodDashboard:
    """Reads all the time; keeps (arrival, heartbeat-to-dashboard latency) per new heartbeat."""

    ws: websockets.ClientConnection
    samples: list[tuple[float, float]] = field(default_factory=list)

    async def read(self) -> None:
        last_beat: dict[str, float] = {}
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                received = time.time()
                msg = parse_stream_message(raw)
                if not isinstance(msg, AgentUpdate) or msg.agent.last_heartbeat_at is None:
                    continue
                # Only updates that carry a new heartbeat (a time probe republishes too).
                beat, seen = msg.agent.last_heartbeat_at, last_beat.get(msg.agent.id)
                if seen is not None and beat > seen:
                    self.samples.append((time.monotonic(), received - beat))
                last_beat[msg.agent.id] = max(beat, seen or beat)

    def between(self, start: float, end: float) -> list[float]:
        return [latency for at, latency in self.samples if start <= at < end]


async def phase(
    good: GoodDashboard, server: RunningServer, seconds: float
) -> tuple[list[float], float]:
    """Latencies the good dashboard saw for ``seconds``, and heartbeats ingested per second."""
    before = await asyncio.to_thread(healthz, server)
    start = time.monotonic()
    await asyncio.sleep(seconds)
    after = await asyncio.to_thread(healthz, server)
    end = time.monotonic()
    return good.between(start, end), (after["heartbeats"] - before["heartbeats"]) / (end - start)


def start_simfleet(server: RunningServer, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``python -m fleet.simfleet`` with FLEET agents, its output in a file."""
    token_file = tmp_path / "admin.token"
    token_file.write_text(server.admin_token)
    args = ["--server", server.url, "--ca-file", str(server.ca_file)]
    args += ["--admin-token-file", str(token_file), "--count", str(FLEET)]
    with (tmp_path / "simfleet.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "fleet.simfleet", *args], cwd=REPO, stdout=log, stderr=log
        )


def p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1]


async def test_subscribers_that_never_read_slow_neither_ingest_nor_a_good_dashboard(
    control_plane, tmp_path
):
    fleet = start_simfleet(control_plane, tmp_path)
    stuck: list[websockets.ClientConnection] = []
    good = GoodDashboard(await subscribe(control_plane))
    reader = asyncio.create_task(good.read())
    try:
        await asyncio.to_thread(
            wait_for,
            lambda: healthz(control_plane)["connected"] >= FLEET * 0.9,
            30,
            0.2,
            f"{FLEET} simulated agents connected",
        )
        await asyncio.sleep(1.0)  # past the connect burst
        alone, alone_rate = await phase(good, control_plane, PHASE_S)

        stuck = [await stuck_subscriber(control_plane) for _ in range(STUCK)]
        await asyncio.sleep(1.0)  # their buffers fill within a few deltas
        loaded, loaded_rate = await phase(good, control_plane, PHASE_S)
        subscribers = (await asyncio.to_thread(healthz, control_plane))["subscribers"]
        reading = [ws.transport.is_reading() for ws in stuck]
    finally:
        for ws in stuck:
            ws.transport.abort()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await good.ws.close()
        fleet.terminate()
        fleet.wait(10)

    assert subscribers == STUCK + 1, "the stuck subscribers were still subscribed"
    assert not any(reading), "every stuck subscriber had stopped reading"
    assert len(alone) > 100 and len(loaded) > 100, (len(alone), len(loaded))
    ratios = {q: p(loaded, q) / p(alone, q) for q in (50, 95)}
    print(
        f"p50 {p(alone, 50) * 1000:.0f} -> {p(loaded, 50) * 1000:.0f} ms, "
        f"p95 {p(alone, 95) * 1000:.0f} -> {p(loaded, 95) * 1000:.0f} ms; "
        f"ingest {alone_rate:.0f} -> {loaded_rate:.0f} heartbeats/s"
    )
    assert all(r <= LATENCY_RATIO for r in ratios.values()), ratios
    assert loaded_rate >= INGEST_RATIO * alone_rate, (alone_rate, loaded_rate)
