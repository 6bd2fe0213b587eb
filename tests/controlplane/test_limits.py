"""Limits against abuse, on a real server: a flooding agent, a junk-sending stream
client, an oversized body, failed authentications and pending connections per
address. Other clients must stay unaffected, measured against their own unloaded
run in the same test."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import select
import socket
import ssl
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from fleet.protocol import (
    AGENT_CHANNEL_PATH,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    CloseCode,
    Subscribe,
    dump,
)
from tests.helpers.rawhttp import read_status, ready, rss, tls_socket
from tests.helpers.server import FAST, REPO, RunningServer, wait_for
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


ELSEWHERE = "127.0.0.2"
"""A well-behaved client's address when the abuser holds 127.0.0.1's per-address cap."""


def _p50(server: RunningServer, n: int = 40, source: str = "127.0.0.1") -> float:
    """Median latency of a well-behaved client's GET /v1/agents from ``source``, in seconds."""
    times = []
    with httpx.Client(
        base_url=server.url,
        transport=httpx.HTTPTransport(verify=server.ssl_context(), local_address=source),
        headers={"Authorization": f"Bearer {server.admin_token}"},
        timeout=30.0,
    ) as api:
        for _ in range(n):
            start = time.perf_counter()
            assert api.get("/v1/agents").status_code == 200
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _p50s(server: RunningServer, seconds: float, source: str) -> list[float]:
    """The p50s of batches of 10 requests, one after another for ``seconds``."""
    end = time.monotonic() + seconds
    p50s = [_p50(server, 10, source)]
    while time.monotonic() < end:
        p50s.append(_p50(server, 10, source))
    return p50s


@dataclass
class Abused:
    """A well-behaved client's p50 unloaded and under one abuser, and what the abuser saw."""

    unloaded: float
    during: float
    seen: dict[str, Any]

    @property
    def ratio(self) -> float:
        return self.during / self.unloaded


def _under_abuse(
    server: RunningServer,
    mode: str,
    seconds: float = 3.0,
    source: str = "127.0.0.1",
    token: str | None = None,
) -> Abused:
    """A well-behaved client's p50 while ``tests/helpers/abuse.py MODE`` abuses
    ``server`` from 127.0.0.1, and unloaded: before and after it, so that a change
    in the machine's other load (other tests) weighs on both sides alike. Each is
    the median of the p50s of batches of 10 requests."""
    unloaded = _p50s(server, seconds / 2, source)
    args = [mode, server.url, str(server.ca_file), str(seconds), str(server.agent_port)]
    abuser = subprocess.Popen(
        [sys.executable, "-m", "tests.helpers.abuse", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "FLEET_TOKEN": token or ""},
    )
    assert abuser.stdout is not None
    try:
        assert abuser.stdout.readline() == "started\n", abuser.communicate(timeout=60)[1]
        # Until the abuser's time is up (not until it exits: its report, unread
        # meanwhile, may fill the pipe).
        during = _p50s(server, seconds - 0.3, source)
    finally:
        out, err = abuser.communicate(timeout=60)
    assert abuser.returncode == 0, err
    unloaded += _p50s(server, seconds / 2, source)
    abused = Abused(statistics.median(unloaded), statistics.median(during), json.loads(out))
    # Shown with the test's output (pytest -rP), and when it fails.
    print(
        f"{mode}: p50 {abused.unloaded * 1e3:.2f} ms unloaded, "
        f"{abused.during * 1e3:.2f} ms abused, ratio {abused.ratio:.2f}; "
        f"{abused.seen.get('attempts')} attempts"
    )
    return abused


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
    # And REST answers as fast as before while a client subscribes and sends junk
    # again and again.
    abused = await asyncio.to_thread(_under_abuse, limited, "junk", token=limited.admin_token)
    assert abused.seen["seen"] == [str(int(CloseCode.RATE_LIMITED))], abused.seen
    assert abused.ratio < 3, abused


def test_a_large_body_is_refused_before_it_is_read(limited):
    head = "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    # Declared: answered from the headers alone.
    with tls_socket(limited) as sock:
        sock.sendall(f"{head}Content-Length: {200 << 20}\r\n\r\n".encode())
        assert read_status(sock) == 413

    # Streamed (chunked), 200 MiB: cut off after the limit, RSS stays flat.
    rss_before = rss(limited)
    peak = rss_before
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss(limited))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    sent = 0
    chunk = b"x" * (64 << 10)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    status = None
    early = b""
    try:
        with tls_socket(limited) as sock:
            sock.sendall(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
            while sent < 200 << 20:
                try:
                    sock.sendall(framed)
                except OSError:
                    break  # the server answered and closed
                sent += len(chunk)
                if early := ready(sock):
                    break  # the answer came while we were still sending
            status = read_status(sock, early)
            answered_at = sent
            # Keep pushing the rest, as an attacker would: the server must not keep it.
            with contextlib.suppress(OSError):
                while sent < 200 << 20:
                    sock.sendall(framed)
                    sent += len(chunk)
    finally:
        stop.set()
        sampler.join()
    assert status == 413, answered_at
    assert answered_at < 64 << 20, f"the answer came only after {answered_at >> 20} MiB"
    assert peak - rss_before < 30 << 20, (rss_before, peak, sent >> 20)
    rows = _audit(limited, "http.body")
    assert rows and "max_body_bytes" in rows[0]["detail"]
    # An ordinary body is still read (and refused for its token, not its size).
    with httpx.Client(base_url=limited.url, verify=limited.ssl_context()) as api:
        assert api.post("/v1/enroll", json={"token": "x", "csr_pem": "y"}).status_code == 401
    # Other clients are answered as fast as before while large bodies stream in.
    abused = _under_abuse(limited, "big-body")
    assert abused.seen["seen"] == ["413"], abused.seen
    assert abused.ratio < 3, abused


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
    # while the flood goes on (one abusive client, DESIGN's wave-2 target).
    abused = _under_abuse(limited, "enroll", 4)
    assert abused.seen["seen"] == ["429"], abused.seen
    assert abused.ratio < 3, abused


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
    # A valid token from the same address is answered as fast as before while
    # unknown tokens keep coming.
    abused = await asyncio.to_thread(_under_abuse, limited, "bad-token")
    assert abused.seen["seen"] == ["429"], abused.seen
    assert abused.ratio < 3, abused


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
    # REST is answered as fast as before while more channels are opened and refused
    # (measured from another address: the API port's connections count against the
    # same cap before their request is read).
    abused = await asyncio.to_thread(_under_abuse, limited, "agent-pending", source=ELSEWHERE)
    assert abused.seen["seen"] == [str(int(CloseCode.RATE_LIMITED))], abused.seen
    assert abused.ratio < 3, abused
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


async def test_an_oversized_stream_frame_is_audited_before_and_after_subscribing(limited):
    url = limited.ws_url + "/v1/events"
    auth = {"Authorization": f"Bearer {limited.admin_token}"}
    codes = []
    for subscribed in (False, True):
        async with websockets.connect(
            url, ssl=limited.ssl_context(), additional_headers=auth, max_size=None
        ) as ws:
            if subscribed:
                await ws.send(dump(Subscribe(protocol_version=PROTOCOL_VERSION)))
                await ws.recv()  # the snapshot
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.send("x" * (MAX_FRAME_BYTES + 1))
                while True:
                    await asyncio.wait_for(ws.recv(), 5)
            # 1009; or 1006 when the reset of our unread upload beat the close frame
            # (docs/decisions.md, "Oversized frames").
            codes.append(closed.value.rcvd.code if closed.value.rcvd else 1006)
    assert set(codes) <= {1009, 1006}, codes
    before = _audit(limited, "stream.subscribe")
    assert len(before) == 1 and "(1009)" in before[0]["detail"], before
    assert before[0]["actor"] == "admin" and before[0]["result"] == "refused", before
    after = _audit(limited, "stream.close")
    assert len(after) == 1 and "(1009)" in after[0]["detail"], after
    assert after[0]["actor"] == "admin" and after[0]["target"] == "127.0.0.1", after


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
        # Nor slowed down while more bodies are started and refused (measured from
        # another address, so that the measuring client's own connections never
        # meet the cap).
        abused = _under_abuse(limited, "slow-body", source=ELSEWHERE)
        assert abused.seen["seen"] == ["429"], abused.seen
        assert abused.ratio < 3, abused
    finally:
        for sock in slow:
            sock.close()
    rows = _audit(limited, "http.connections")
    assert len(rows) == 1 and "pending_connections" in rows[0]["detail"], rows


def _most_at_once(spans: list[tuple[float, float]]) -> int:
    """The most of ``spans`` (start, end) that overlap at any one time."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


def _count(detail: str) -> int:
    match = re.search(r"\((once|\d+ times) in", detail)
    assert match, detail
    return 1 if match.group(1) == "once" else int(match.group(1).split()[0])


def test_stalled_connections_per_address_are_capped_and_timed_out(start):
    # The slowloris: connections that finish TLS, then trickle header bytes (one a
    # tenth of a second each) and never end a request; twelve wanted at all times.
    cap, timeout = 4, 2.0
    limited = start(pending_connections=str(cap), header_timeout_s=str(timeout))
    abused = _under_abuse(limited, "slowloris", 3 * timeout, source=ELSEWHERE)
    ended = abused.seen["ended"]
    refused = [(opened, closed, said) for opened, closed, said in ended if closed - opened < 1]
    stalled = [(opened, closed, said) for opened, closed, said in ended if closed - opened >= 1]
    # Over the cap: closed at once (429 said first, unless the reset of our own bytes won).
    assert len(refused) >= 20, ended
    assert {said for *_, said in refused} <= {"429", "closed", "ConnectionResetError"}, refused
    assert "429" in {said for *_, said in refused}, refused
    # Under it: closed with 408 when the header timeout ends, although bytes kept coming.
    assert len(stalled) >= cap and {said for *_, said in stalled} == {"408"}, stalled
    assert all(timeout - 0.2 < closed - opened < timeout + 1.5 for opened, closed, _ in stalled)
    assert all(now - opened < timeout + 1.5 for opened, now in abused.seen["open"])
    # Never more than the cap at once (less the time we took to notice a close; the
    # youngest may yet be refused).
    spans = [(opened, closed - 0.25) for opened, closed, _ in stalled]
    spans += [(opened, now) for opened, now in abused.seen["open"] if now - opened > 0.5]
    assert _most_at_once(spans) <= cap, spans
    # A well-behaved client (on another address) is answered as fast as before.
    assert abused.ratio < 3, abused
    # One row per refusal kind, with the count.
    (refusals,) = [r for r in _audit(limited, "http.connections") if r["target"] == "127.0.0.1"]
    assert "pending_connections" in refusals["detail"]
    assert _count(refusals["detail"]) >= len(refused), (refusals, len(refused))
    (timeouts,) = [r for r in _audit(limited, "http.headers") if r["target"] == "127.0.0.1"]
    assert "header_timeout_s" in timeouts["detail"]
    assert len(stalled) <= _count(timeouts["detail"]) <= len(stalled) + cap, timeouts


def _read_response(sock: ssl.SSLSocket) -> int:
    """Read one whole answer (headers and ``Content-Length`` bytes); its status."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: (\d+)", head)
    assert length, head
    while len(body) < int(length.group(1)):
        body += sock.recv(4096)
    return int(head.split()[1])


def test_a_second_request_trickled_on_a_kept_alive_connection_is_timed_out(start):
    timeout = 1.5
    limited = start(header_timeout_s=str(timeout))
    with tls_socket(limited) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert _read_response(sock) == 200
        answered = time.monotonic()
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        said = b""
        while not said and time.monotonic() < answered + timeout + 3:
            # A byte every 0.2 s: each would have reset uvicorn's keep-alive timer.
            if select.select([sock], [], [], 0.2)[0]:
                with contextlib.suppress(ssl.SSLWantReadError):
                    said = sock.recv(4096) or b"closed"
            else:
                sock.sendall(b"a")
        waited = time.monotonic() - answered
    assert said.startswith(b"HTTP/1.1 408"), (said, waited)
    assert b"header_timeout_s" in said
    assert timeout - 0.2 < waited < timeout + 1.5, waited
    rows = _audit(limited, "http.headers")
    assert len(rows) == 1 and "once" in rows[0]["detail"], rows


def _end(sock: ssl.SSLSocket) -> str:
    """How the server ends ``sock``: the status it answers, ``closed`` or the error."""
    try:
        data = sock.recv(4096)
        while data and b"\r\n" not in data:
            data += sock.recv(4096)
    except OSError as exc:
        return type(exc).__name__
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return match.group(1).decode() if match else "closed"


def test_connections_before_the_agent_upgrade_are_capped_per_address(start):
    cap = 4
    limited = start(pending_connections=str(cap))
    upgrade = f"GET {AGENT_CHANNEL_PATH} HTTP/1.1\r\nHost: x\r\n".encode()  # never ended
    held = [tls_socket(limited, limited.agent_port) for _ in range(cap)]
    try:
        for sock in held:
            sock.sendall(upgrade)
        ends = []
        for _ in range(3):
            with tls_socket(limited, limited.agent_port) as over:
                started = time.monotonic()
                with contextlib.suppress(OSError):
                    over.sendall(upgrade)
                ends.append(_end(over))
                assert time.monotonic() - started < 1
        assert set(ends) <= {"429", "closed", "ConnectionResetError"} and "429" in ends, ends
        assert all(_still_open(sock) for sock in held), "a held connection was closed"
    finally:
        for sock in held:
            sock.close()
    rows = [r for r in _audit(limited, "channel.connections") if r["target"] == "127.0.0.1"]
    assert len(rows) == 1 and "3 times" in rows[0]["detail"], rows
    assert "pending_connections" in rows[0]["detail"], rows

    # Freed as they go: the next one is let through to the upgrade (404: not the
    # channel's path, so answered at once).
    def served() -> bool:
        with tls_socket(limited, limited.agent_port) as sock:
            with contextlib.suppress(OSError):
                sock.sendall(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n")
            return _end(sock) == "404"

    wait_for(served, 5, what="the agents' port to serve 127.0.0.1 again")


def _still_open(sock: ssl.SSLSocket) -> bool:
    """The server has neither answered nor closed ``sock`` (without blocking)."""
    if not select.select([sock], [], [], 0)[0]:
        return True
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except ssl.SSLWantReadError:
        return True  # a TLS 1.3 session ticket, not data
    except OSError:
        return False
    finally:
        sock.settimeout(10)
    return False


def _silent_until_closed(port: int, limit: float) -> float:
    """Open a TCP connection, send nothing (no TLS ClientHello), and return how long
    the server took to close it (``limit`` when it did not)."""
    with socket.create_connection(("127.0.0.1", port), timeout=limit) as sock:
        opened = time.monotonic()
        try:
            while sock.recv(4096):
                pass
        except TimeoutError:
            return limit
        except OSError:
            pass
        return time.monotonic() - opened


def test_a_tls_handshake_never_finished_is_closed_on_time(start):
    limited = start(tls_handshake_timeout_s="1")
    # The API port: tls_handshake_timeout_s (the loop's default was 60 s).
    took = _silent_until_closed(limited.port, 10.0)
    assert 0.8 < took < 4.0, took
    # The agents' port keeps 30 s for a reconnect storm's queue: still open after 3 s.
    assert _silent_until_closed(limited.agent_port, 3.0) == 3.0
    # Others are served meanwhile.
    with limited.api() as api:
        assert api.get("/healthz").status_code == 200


def test_a_body_trickled_past_its_deadline_is_answered_408(start):
    timeout = 1.5
    limited = start(body_timeout_s=str(timeout))
    head = (
        "POST /v1/enroll HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 1000\r\n\r\n{"
    )
    with tls_socket(limited) as sock:
        sock.sendall(head.encode())
        started = time.monotonic()
        said = b""
        while not said and time.monotonic() < started + timeout + 5:
            # A byte every 0.2 s: the body keeps coming, and never ends in time.
            if select.select([sock], [], [], 0.2)[0]:
                with contextlib.suppress(ssl.SSLWantReadError):
                    said = sock.recv(4096) or b"closed"
            else:
                with contextlib.suppress(OSError):
                    sock.sendall(b" ")
        waited = time.monotonic() - started
        with contextlib.suppress(OSError):
            while b"body_timeout_s" not in said and (more := sock.recv(4096)):
                said += more
    assert said.startswith(b"HTTP/1.1 408"), (said, waited)
    assert b"body_timeout_s" in said
    assert timeout - 0.2 < waited < timeout + 1.5, waited
    rows = _audit(limited, "http.body")
    assert len(rows) == 1 and "body_timeout_s" in rows[0]["detail"], rows


def test_bodies_over_their_address_bandwidth_are_read_slower_and_others_are_not(start):
    rate = 128 * 1024
    limited = start(body_rate_per_address=str(rate))
    big = b"x" * (512 * 1024)  # a second's worth at once, then 3 s at the rate

    def post(body: bytes, source: str) -> float:
        transport = httpx.HTTPTransport(verify=limited.ssl_context(), local_address=source)
        with httpx.Client(base_url=limited.url, transport=transport, timeout=30) as client:
            started = time.monotonic()
            answer = client.post(
                "/v1/enroll", content=body, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code in (400, 401, 422), answer.text  # read, then refused
            return time.monotonic() - started

    with ThreadPoolExecutor(2) as pool:
        slow = pool.submit(post, big, "127.0.0.1")
        time.sleep(0.5)
        quick = pool.submit(post, b"x" * (64 * 1024), ELSEWHERE)
        assert quick.result() < 1.5, "another address was slowed down"
        took = slow.result()
    assert 2.5 < took < 10, took
