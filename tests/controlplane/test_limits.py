"""Limits against abuse, on a real server: a flooding agent, a junk-sending stream
client, an oversized body, failed authentications and pending connections per
address. Other clients must stay unaffected, measured against their own unloaded
run in the same test."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from fleet.protocol import AGENT_CHANNEL_PATH, CloseCode
from tests.helpers.rawhttp import push_chunked, read_status, tls_socket
from tests.helpers.server import FAST, RunningServer, wait_for
from tests.helpers.stream import start_agent, stop_agent, subscribe

LOOPBACK_RAISED = ("auth_failures", "pending_connections")
"""FAST raises these for loopback; here the defaults (or explicit values) apply."""


def _server(tmp_path: Path, **settings: str) -> RunningServer:
    values = {k: v for k, v in FAST.items() if k not in LOOPBACK_RAISED}
    return RunningServer(tmp_path / "cp", settings={**values, **settings})


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Starts a control plane with the default limits, or the values given."""
    started: list[RunningServer] = []

    def run(**settings: str) -> RunningServer:
        server = _server(tmp_path, **settings).start()
        started.append(server)
        return server

    try:
        yield run
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def limited(start: Callable[..., RunningServer]) -> RunningServer:
    """A control plane with the default limits."""
    return start()


def _audit(server: RunningServer, action: str) -> list[dict[str, str]]:
    with server.api() as api:
        rows = api.get("/v1/audit", params={"limit": 10_000}).json()
    return [r for r in rows if r["action"] == action]


FLOOD = """
import ssl, sys, time, httpx
url, ca, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
statuses = set()
body = {"token": "flte_" + "x" * 40, "csr_pem": "y"}
with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=ca)) as api:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        statuses.add(api.post("/v1/enroll", json=body).status_code)
print(*sorted(statuses))
"""
"""Failed enrollments from one address for a few seconds; prints the statuses seen."""


def _p50(server: RunningServer, n: int = 40) -> float:
    """Median latency of a well-behaved client's GET /v1/agents, in seconds."""
    times = []
    with server.api() as api:
        for _ in range(n):
            start = time.perf_counter()
            assert api.get("/v1/agents").status_code == 200
            times.append(time.perf_counter() - start)
    return statistics.median(times)


async def test_a_flooding_agent_is_closed_and_others_do_not_notice(limited):
    good, good_task = await start_agent(limited, "calm")
    abuser, abuser_task = await start_agent(limited, "noisy", heartbeating=False)
    before = await asyncio.to_thread(_p50, limited)

    flooding = True
    closes: list[int] = []

    async def flood() -> None:
        # Floods again after each reconnect, as fast as the socket takes frames.
        while flooding:
            await asyncio.wait_for(abuser.connected.wait(), 10)
            try:
                while True:
                    for _ in range(100):
                        await abuser.send_heartbeat()
                    await asyncio.sleep(0)
            except websockets.ConnectionClosed as exc:
                closes.append(exc.rcvd.code if exc.rcvd else 1006)
                await asyncio.sleep(0.05)

    flooder = asyncio.create_task(flood())
    # Measured over several flood episodes (closed, back after its backoff, again).
    deadline = time.monotonic() + 4
    during = []
    while time.monotonic() < deadline:
        during.append(await asyncio.to_thread(_p50, limited, 10))
    await asyncio.to_thread(wait_for, lambda: closes, 15, what="the abuser closed")
    flooding = False
    flooder.cancel()
    await asyncio.gather(flooder, return_exceptions=True)
    ratio = statistics.median(during) / before

    assert closes and set(closes) == {CloseCode.RATE_LIMITED}, closes
    assert ratio < 3, (before, during)
    assert good.connected.is_set() and good.close_code is None
    rows = [r for r in _audit(limited, "channel.close") if r["target"] == abuser.identity.agent_id]
    # Audited once per episode (close), not per message.
    assert 1 <= len(rows) <= len(closes), rows
    assert "messages a second" in rows[0]["detail"]
    await stop_agent(abuser_task)
    await stop_agent(good_task)


async def test_legit_traffic_stays_under_the_default_message_rate(limited):
    # A heartbeat every 0.5 s (ten times the default rate), clock probes every 2 s.
    agent, task = await start_agent(limited, "steady")
    await asyncio.sleep(3)
    assert agent.connected.is_set() and agent.close_code is None
    await stop_agent(task)


async def test_a_stream_client_sending_junk_is_closed_once(limited):
    ws = await subscribe(limited)
    await ws.recv()  # the snapshot
    code = None
    try:
        for _ in range(10_000):
            await ws.send("junk")
        await asyncio.wait_for(ws.recv(), 5)
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    except websockets.ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
    assert code == CloseCode.RATE_LIMITED
    rows = _audit(limited, "stream.close")
    assert len(rows) == 1 and "frames a second" in rows[0]["detail"], rows
    # Another dashboard is served as before.
    other = await subscribe(limited)
    assert await asyncio.wait_for(other.recv(), 5)
    await other.close()


def test_a_large_body_is_refused_before_it_is_read(limited):
    head = "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    # Declared: answered from the headers alone.
    with tls_socket(limited) as sock:
        sock.sendall(f"{head}Content-Length: {200 << 20}\r\n\r\n".encode())
        assert read_status(sock) == 413

    # Streamed (chunked), 200 MiB: cut off after the limit, RSS stays flat.
    pushed = push_chunked(limited, head, 200 << 20)
    assert pushed.status == 413, pushed
    assert pushed.answered_at < 64 << 20, (
        f"the answer came only after {pushed.answered_at >> 20} MiB"
    )
    assert pushed.rss_growth < 30 << 20, pushed
    rows = _audit(limited, "http.body")
    assert rows and "max_body_bytes" in rows[0]["detail"]
    # An ordinary body is still read (and refused for its token, not its size).
    with httpx.Client(base_url=limited.url, verify=limited.ssl_context()) as api:
        assert api.post("/v1/enroll", json={"token": "x", "csr_pem": "y"}).status_code == 401


def test_failed_enrollments_get_429_and_one_audit_row(start):
    limited = start(auth_failures="5", auth_failure_window_s="60")
    with httpx.Client(base_url=limited.url, verify=limited.ssl_context()) as api:
        statuses = []
        for _ in range(30):
            r = api.post("/v1/enroll", json={"token": "flte_" + "x" * 40, "csr_pem": "y"})
            statuses.append(r.status_code)
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
        assert 0 < int(r.headers["retry-after"]) <= 60
        assert "wait" in r.json()["detail"]
    rows = [r for r in _audit(limited, "enroll") if r["target"] == "127.0.0.1"]
    assert len(rows) == 1 and "30 times" in rows[0]["detail"], rows
    # The admin's valid token from the same address still works, as fast as before
    # while the flood goes on.
    before = _p50(limited)
    # One abusive client (DESIGN's wave-2 target), in a process of its own so that
    # it shares no GIL with the client being measured: what is compared is the
    # server's answer time.
    flooders = [
        subprocess.Popen(
            [sys.executable, "-c", FLOOD, limited.url, str(limited.ca_file), "4"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(1)
    ]
    try:
        time.sleep(0.5)  # let the flood start
        during = _p50(limited)
    finally:
        outputs = [proc.communicate(timeout=30)[0] for proc in flooders]
    flood_statuses = {int(code) for out in outputs for code in out.split()}
    assert flood_statuses == {429}, outputs
    assert during / before < 3, (before, during)


async def test_bad_api_tokens_get_429_on_rest_and_a_close_on_the_stream(start):
    limited = start(auth_failures="5", auth_failure_window_s="60")
    async with httpx.AsyncClient(base_url=limited.url, verify=limited.ssl_context()) as api:
        statuses = []
        for _ in range(8):
            r = await api.get("/v1/agents", headers={"Authorization": "Bearer flta_wrong"})
            statuses.append(r.status_code)
    assert statuses[:4] == [401] * 4 and set(statuses[4:]) == {429}, statuses
    assert "retry-after" in r.headers
    with pytest.raises(websockets.ConnectionClosed) as closed:
        ws = await subscribe(limited, token="flta_wrong")
        while True:
            await asyncio.wait_for(ws.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.RATE_LIMITED
    rows = [r for r in _audit(limited, "http.auth") if r["target"] == "127.0.0.1"]
    assert len(rows) == 1 and "8 times" in rows[0]["detail"], rows
    assert len(_audit(limited, "stream.auth")) == 1


async def test_bad_agent_auth_is_counted_and_closed_with_4010(start):
    limited = start(auth_failures="3", auth_failure_window_s="60")
    # Enrolled before (enrollment from an address over its failures waits).
    legit, task = await start_agent(limited, "legit")
    await stop_agent(task)
    codes = []
    url = f"wss://127.0.0.1:{limited.agent_port}{AGENT_CHANNEL_PATH}"
    for _ in range(6):
        async with websockets.connect(url, ssl=limited.ssl_context()) as ws:
            await ws.recv()  # hello
            await ws.send('{"type": "auth"}')
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await ws.recv()
            codes.append(closed.value.rcvd.code if closed.value.rcvd else None)
    assert codes[:2] == [CloseCode.PROTOCOL_ERROR] * 2, codes
    assert set(codes[2:]) == {CloseCode.RATE_LIMITED}, codes
    rows = _audit(limited, "channel.auth")
    assert len(rows) == 1 and "6 times" in rows[0]["detail"], rows
    # A real agent from the same address still gets in.
    legit.connected.clear()
    task = asyncio.create_task(legit.run())
    await asyncio.wait_for(legit.connected.wait(), 10)
    await stop_agent(task)


async def test_unauthenticated_connections_per_address_are_capped(start):
    limited = start(pending_connections="4")
    url = f"wss://127.0.0.1:{limited.agent_port}{AGENT_CHANNEL_PATH}"
    idle = []
    for _ in range(4):  # connected, never authenticating
        ws = await websockets.connect(url, ssl=limited.ssl_context())
        await ws.recv()
        idle.append(ws)
    over = await websockets.connect(url, ssl=limited.ssl_context())
    with pytest.raises(websockets.ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(over.recv(), 5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CloseCode.RATE_LIMITED
    for ws in idle:
        await ws.close()
    # Freed: an agent gets in once the idle ones went.
    _agent, task = await start_agent(limited, "after")
    await stop_agent(task)
    rows = _audit(limited, "channel.connections")
    assert len(rows) == 1 and "unauthenticated connections" in rows[0]["detail"]


async def test_an_oversized_frame_before_auth_is_audited(limited):
    url = f"wss://127.0.0.1:{limited.agent_port}{AGENT_CHANNEL_PATH}"
    for _ in range(3):
        async with websockets.connect(url, ssl=limited.ssl_context(), max_size=None) as ws:
            await ws.recv()  # hello
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.send("x" * (2 << 20))
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    rows = _audit(limited, "channel.auth")
    assert len(rows) == 1 and "byte limit" in rows[0]["detail"], rows
    assert "3 times" in rows[0]["detail"], rows


def test_repeated_403s_are_one_audit_row_with_a_count(limited):
    viewer = limited.user("vera", "viewer")
    with limited.api(viewer) as api:
        for _ in range(25):
            assert api.delete("/v1/users/admin").status_code == 403
    with limited.api() as api:
        rows = api.get("/v1/audit", params={"actor": "vera"}).json()
    assert len(rows) == 1 and rows[0]["action"] == "http.delete", rows
    assert rows[0]["result"] == "forbidden" and "25 times" in rows[0]["detail"]


def test_unknown_api_tokens_are_audited_per_address(limited):
    with httpx.Client(base_url=limited.url, verify=limited.ssl_context()) as api:
        for _ in range(10):
            r = api.get("/v1/agents", headers={"Authorization": "Bearer flta_" + "x" * 40})
            assert r.status_code == 401
    rows = [r for r in _audit(limited, "http.auth") if r["target"] == "127.0.0.1"]
    assert len(rows) == 1 and "10 times" in rows[0]["detail"], rows


def test_slow_bodies_per_address_are_capped_and_others_still_served(start):
    limited = start(pending_connections="3")
    head = (
        "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{"
    )
    slow = [tls_socket(limited) for _ in range(3)]
    try:
        for sock in slow:  # a body started and never finished
            sock.sendall(head.encode())
        time.sleep(0.3)  # the server has started reading them
        with tls_socket(limited) as over:
            over.sendall(head.encode())
            assert read_status(over) == 429
        # Requests without a body (a dashboard's reads) are not held back.
        with limited.api() as api:
            assert api.get("/v1/agents").status_code == 200
    finally:
        for sock in slow:
            sock.close()
    rows = _audit(limited, "http.connections")
    assert len(rows) == 1 and "pending_connections" in rows[0]["detail"], rows
