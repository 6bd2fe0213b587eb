"""Real agent processes against a real control plane on loopback (issue 3, item 11)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from websockets.sync.client import connect as ws_connect

from agent.cli import EXIT_REVOKED
from fleet import __version__
from fleet.protocol import (
    PROTOCOL_VERSION,
    AgentUpdate,
    CloseCode,
    Snapshot,
    parse_stream_message,
)
from fleet.simagent import Identity as SimIdentity
from tests.agent.agents import AgentProcess, agent_env, enroll
from tests.agent.certs import ca_and_leaf, self_signed
from tests.helpers.proxies import ConnectProxy
from tests.helpers.server import REPO, RunningServer, wait_for
from tests.helpers.stream import connect_once

pytestmark = pytest.mark.timeout(120)


def agent_state(server: RunningServer, agent_id: str) -> dict:
    with server.api() as api:
        response = api.get(f"/v1/agents/{agent_id}")
        response.raise_for_status()
        return dict(response.json()["agent"])


def wait_connected(
    server: RunningServer, agent_id: str, timeout: float = 15.0, states=("connected",)
) -> dict:
    def check():
        state = agent_state(server, agent_id)
        # uptime_s comes only with a heartbeat (last_heartbeat_at is set on connect).
        return state if state["state"] in states and state["uptime_s"] is not None else None

    return wait_for(check, timeout, 0.1, f"agent {agent_id} connected")


@pytest.fixture
def agents(tmp_path) -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def start_agent(
    server: RunningServer,
    tmp_path: Path,
    agents: list[AgentProcess],
    name: str,
    toml: str | None = None,
    args: list[str] | None = None,
) -> AgentProcess:
    state_dir = tmp_path / name
    done = enroll(server, state_dir, name=name)
    assert done.returncode == 0, done.stderr
    if toml is not None:
        (state_dir / "agent.toml").write_text(toml)
    agent = AgentProcess(state_dir, args=args or []).start()
    agents.append(agent)
    return agent


# --------------------------------------------------------------------------
# Enrollment


def test_enroll_connect_and_heartbeats_visible_in_rest_and_event_stream(
    control_plane, tmp_path, agents
):
    state_dir = tmp_path / "edge-1"
    done = enroll(control_plane, state_dir, name="edge-1", via_env=True)
    assert done.returncode == 0, done.stderr
    assert "enrolled edge-1" in done.stdout
    assert (state_dir / "key.pem").stat().st_mode & 0o777 == 0o600
    assert state_dir.stat().st_mode & 0o077 == 0
    doc = json.loads((state_dir / "agent.json").read_text())
    assert doc["name"] == "edge-1" and doc["pool"] == "default"
    assert doc["server"] == control_plane.url
    assert (state_dir / "ca.pem").read_text() == control_plane.ca_file.read_text()

    agent = AgentProcess(state_dir).start()
    agents.append(agent)
    state = wait_connected(control_plane, doc["agent_id"])
    assert state["name"] == "edge-1"
    assert state["version"] == __version__
    assert state["mem_rss_bytes"] > 0 and 0 <= state["mem_host_percent"] <= 100
    assert state["queue_depth"] == 0
    printed = subprocess.run(
        [sys.executable, "-m", "agent", "run", "--state-dir", str(state_dir), "--print-config"],
        cwd=REPO,
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert state["config_hash"] == json.loads(printed.stdout)["hash"]
    first_beat = state["last_heartbeat_at"]
    wait_for(
        lambda: agent_state(control_plane, doc["agent_id"])["last_heartbeat_at"] > first_beat,
        5,
        0.1,
        "a later heartbeat",
    )

    context = ssl.create_default_context(cafile=str(control_plane.ca_file))
    with ws_connect(
        control_plane.ws_url + "/v1/events",
        ssl=context,
        additional_headers={"Authorization": f"Bearer {control_plane.admin_token}"},
        max_size=None,
        open_timeout=10,
        proxy=None,
    ) as stream:
        stream.send(json.dumps({"type": "subscribe", "protocol_version": PROTOCOL_VERSION}))
        snapshot = parse_stream_message(stream.recv(timeout=10))
        assert isinstance(snapshot, Snapshot)
        assert [a.name for a in snapshot.agents if a.state == "connected"] == ["edge-1"]
        seen_at = next(a.last_heartbeat_at for a in snapshot.agents if a.name == "edge-1")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            message = parse_stream_message(stream.recv(timeout=10))
            if isinstance(message, AgentUpdate) and message.agent.name == "edge-1":
                beat = message.agent.last_heartbeat_at
                if beat is not None and seen_at is not None and beat > seen_at:
                    break
        else:
            raise AssertionError("no heartbeat delta on the event stream")

    assert agent.stop() == 0
    assert "connected to" in agent.output()


def test_wrong_ca_pin_is_refused_before_the_token_is_sent(control_plane, tmp_path):
    token = control_plane.enrollment_token()
    wrong = "sha256:" + hashlib.sha256(b"someone else's CA").hexdigest()
    done = enroll(control_plane, tmp_path / "a", token=token, pin=wrong)
    assert done.returncode == 1
    assert "token was NOT sent" in done.stderr and wrong in done.stderr
    assert not (tmp_path / "a" / "key.pem").exists()
    with control_plane.api() as api:
        [listed] = api.get("/v1/tokens").json()
        assert listed["uses_left"] == 1  # the single-use token was never presented
        audit = api.get("/v1/audit", params={"limit": 100}).json()
    assert not [entry for entry in audit if "enroll" in entry["action"]]
    # The same token still works with the right pin.
    assert enroll(control_plane, tmp_path / "b", token=token).returncode == 0


def test_bad_used_and_expired_tokens_and_unreachable_server_say_what_to_do(control_plane, tmp_path):
    bad = enroll(control_plane, tmp_path / "a", token="flte_" + "x" * 40)
    assert bad.returncode == 1
    assert "refused the token" in bad.stderr and "new enrollment token" in bad.stderr

    token = control_plane.enrollment_token()
    assert enroll(control_plane, tmp_path / "b", token=token).returncode == 0
    used = enroll(control_plane, tmp_path / "c", token=token)
    assert used.returncode == 1 and "refused the token" in used.stderr
    assert "used" in used.stderr.lower()

    short = control_plane.enrollment_token(ttl_s=0.5)
    time.sleep(1.0)
    expired = enroll(control_plane, tmp_path / "d", token=short)
    assert expired.returncode == 1 and "expired" in expired.stderr.lower()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    down = enroll(control_plane, tmp_path / "e", url=f"https://127.0.0.1:{closed}")
    assert down.returncode == 1
    assert "cannot reach the control plane" in down.stderr and "HTTPS_PROXY" in down.stderr

    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent",
            "enroll",
            "--server",
            control_plane.url,
            "--ca-pin",
            control_plane.ca_pin,
            "--state-dir",
            str(tmp_path / "f"),
        ],
        cwd=REPO,
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and "FLEET_ENROLL_TOKEN" in missing.stderr


# --------------------------------------------------------------------------
# Commands


@contextlib.contextmanager
def tcp_listener(host: str = "127.0.0.1", tls: ssl.SSLContext | None = None):
    """A real listener in a thread; yields (port, accepted connection count list)."""
    sock = socket.create_server((host, 0))
    sock.settimeout(0.2)
    accepted: list[int] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted.append(1)
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    if tls is not None:
                        with tls.wrap_socket(conn, server_side=True) as wrapped:
                            wrapped.recv(1)
                    else:
                        conn.recv(1)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], accepted
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def probe(server: RunningServer, agent_id: str, **body) -> dict:
    with server.api() as api:
        response = api.post(f"/v1/agents/{agent_id}/probe", json=body)
        assert response.status_code == 200, response.text
        return dict(response.json())


def test_probes_listener_closed_port_expiring_tls_and_local_denial(control_plane, tmp_path, agents):
    control_plane.set_policy(
        "default", allow_hosts=["localhost"], allow_cidrs=["127.0.0.0/8"], allow_ports=["1-65535"]
    )
    agent = start_agent(
        control_plane,
        tmp_path,
        agents,
        "prober",
        toml='[agent]\nallow_cidrs = ["127.0.0.1/32"]\nallow_hosts = ["localhost"]\n'
        'allow_ports = ["1024-65535"]\n',
    )
    agent_id = agent.agent_id
    wait_connected(control_plane, agent_id)

    with tcp_listener() as (port, accepted):
        result = probe(control_plane, agent_id, host="localhost", port=port)
    assert result["ok"] is True and result["connect_ms"] >= 0 and result["dns_ms"] >= 0
    assert accepted

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    result = probe(control_plane, agent_id, host="127.0.0.1", port=closed)
    assert (result["ok"], result["failure"]) == (False, "refused")
    assert "Connection refused" in result["error"] or "ConnectionRefused" in result["error"]

    issued = self_signed("expiring.internal", lifetime=dt.timedelta(hours=3))
    cert, key = issued.write(tmp_path, "expiring")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with tcp_listener(tls=context) as (port, _):
        result = probe(control_plane, agent_id, host="127.0.0.1", port=port, tls=True)
    assert result["ok"] is True, result
    assert result["tls_ms"] > 0
    assert result["peer_cert_not_after"] == issued.not_after.timestamp()
    assert result["peer_cert_subject"] == "CN=expiring.internal"

    # The pool allows 127.0.0.0/8; the agent's own allow-list does not allow 127.0.0.2.
    with tcp_listener("127.0.0.2") as (port, accepted):
        result = probe(control_plane, agent_id, host="127.0.0.2", port=port)
        time.sleep(0.3)
        assert accepted == []  # refused before anything was dialed
    assert (result["ok"], result["failure"]) == (False, "denied")
    assert "allow_cidrs" in result["error"]


def test_logs_are_fetched_redacted(control_plane, tmp_path, agents):
    state_dir = tmp_path / "logger"
    assert enroll(control_plane, state_dir, name="logger").returncode == 0
    (state_dir / "logs").mkdir(mode=0o700)
    # A line from an earlier run that carries credentials.
    (state_dir / "logs" / "agent.log").write_text(
        "2026-11-01T10:00:00.000Z WARNING agent.channel: upstream "
        "postgres://etl:Hunter2-Secret@warehouse.internal:5432/dw refused; "
        "Authorization: Bearer flta_" + "Q" * 40 + "\n"
    )
    agent = AgentProcess(state_dir).start()
    agents.append(agent)
    wait_connected(control_plane, agent.agent_id)
    with control_plane.api() as api:
        response = api.post(f"/v1/agents/{agent.agent_id}/logs", json={"lines": 50})
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="logger-')
    assert "filename*=UTF-8''logger-" in disposition
    text = response.text
    assert "warehouse.internal:5432" in text  # diagnostic value kept
    assert "Hunter2-Secret" not in text and "Q" * 40 not in text
    assert "connected to" in text  # this run's lines too
    with control_plane.api() as api:
        since = time.time() - 1.0
        recent = api.post(f"/v1/agents/{agent.agent_id}/logs", json={"lines": 50, "since": since})
    assert "warehouse.internal" not in recent.text


# --------------------------------------------------------------------------
# Lifecycle


def test_revoked_agent_exits_with_its_code_and_stays_out(control_plane, tmp_path, agents):
    agent = start_agent(control_plane, tmp_path, agents, "doomed")
    wait_connected(control_plane, agent.agent_id)
    with control_plane.api() as api:
        api.post(f"/v1/agents/{agent.agent_id}/revoke").raise_for_status()
    assert agent.wait(15) == EXIT_REVOKED
    assert "revoked this agent" in agent.output() and "will not reconnect" in agent.output()
    again = AgentProcess(agent.state_dir).start()
    agents.append(again)
    assert again.wait(15) == EXIT_REVOKED


def test_agents_come_back_on_their_own_after_sigkill_spread_in_time(
    control_plane, tmp_path, agents
):
    fleet = [start_agent(control_plane, tmp_path, agents, f"node-{i}") for i in range(5)]
    for agent in fleet:
        wait_connected(control_plane, agent.agent_id)
    control_plane.kill()
    time.sleep(3.0)  # agents fail to reconnect for a while: their windows widen
    control_plane.start()

    def all_back():
        with control_plane.api() as api:
            states = {a["id"]: a for a in api.get("/v1/agents").json()}
        back = [states.get(a.agent_id) for a in fleet]
        if all(s and s["state"] == "connected" and s["last_heartbeat_at"] for s in back):
            return back
        return None

    back = wait_for(all_back, 60, 0.2, "every agent reconnected")
    times = sorted(s["connected_at"] for s in back)
    assert times[-1] - times[0] > 0.1, f"agents reconnected in lockstep: {times}"
    for agent in fleet:
        assert agent.proc is not None and agent.proc.poll() is None
        assert "reconnecting in" in agent.output()


def _sim_identity(state_dir: Path, key_pem: bytes, cert_pem: bytes) -> SimIdentity:
    """A key and certificate of the agent, in hand, to authenticate with by hand."""
    doc = json.loads((state_dir / "agent.json").read_text())
    key = serialization.load_pem_private_key(key_pem, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = x509.load_pem_x509_certificate(cert_pem)
    return SimIdentity(
        agent_id=doc["agent_id"],
        name=doc["name"],
        pool=doc["pool"],
        key=key,
        certificate_pem=cert_pem.decode(),
        ca_pem=(state_dir / "ca.pem").read_text(),
        not_after=cert.not_valid_after_utc.timestamp(),
        channel_port=doc["channel_port"],
    )


def test_certificate_renewed_with_a_new_key_at_two_thirds_of_its_life_old_key_refused(
    tmp_path, agents
):
    # Certificates are backdated 5 min: a 156 s lifetime puts two thirds of the
    # 456 s validity about 4 s after issue.
    server = RunningServer(
        tmp_path / "cp",
        settings={
            "heartbeat_interval_s": "0.5",
            "tick_s": "0.2",
            "restart_grace_s": "0",
            "cert_lifetime_s": "156",
        },
    )
    server.data_dir.mkdir()
    server.start()
    try:
        agent = start_agent(server, tmp_path, agents, "renewer")
        key_path, cert_path = agent.state_dir / "key.pem", agent.state_dir / "cert.pem"
        old_key, old_cert = key_path.read_bytes(), cert_path.read_bytes()
        # A certificate this short-lived shows as degraded (expiry near): expected.
        up = ("connected", "degraded")
        first = wait_connected(server, agent.agent_id, states=up)["cert_not_after"]
        assert "certificate renewed" not in agent.output()  # not before it is due
        wait_for(lambda: "certificate renewed" in agent.output(), 20, 0.1, "renewal")
        # A new key, installed with its certificate: they match, the key is private.
        new_key, new_cert = key_path.read_bytes(), cert_path.read_bytes()
        assert new_key != old_key and new_cert != old_cert
        private = serialization.load_pem_private_key(new_key, None)
        assert x509.load_pem_x509_certificate(new_cert).public_key() == private.public_key()
        assert key_path.stat().st_mode & 0o777 == 0o600
        assert not list(agent.state_dir.glob("*.new"))
        # It reconnected with them at once, not after a backoff wait...
        wait_for(lambda: agent.output().count("connected to") == 2, 10, 0.1, "reconnected")
        assert "reconnecting at once with the new key" in agent.output()
        assert "reconnecting in" not in agent.output()
        wait_for(
            lambda: agent_state(server, agent.agent_id)["cert_not_after"] > first,
            10,
            0.1,
            "the renewed expiry reported",
        )
        # ...so the old key and certificate are refused from now on.
        old = asyncio.run(connect_once(server, _sim_identity(agent.state_dir, old_key, old_cert)))
        assert not old.connected.is_set() and old.close_code == CloseCode.UNAUTHENTICATED
        assert "superseded by a renewal with a new key" in (old.close_message or "")
        with server.api() as api:
            audit = api.get("/v1/audit", params={"limit": 1000}).json()
        assert [e["action"] for e in audit if e["target"] == agent.agent_id].count(
            "cert.supersede"
        ) == 1
        # It stays connected: heartbeats go on over the same channel.
        beat = agent_state(server, agent.agent_id)["last_heartbeat_at"]
        wait_for(
            lambda: agent_state(server, agent.agent_id)["last_heartbeat_at"] > beat + 2,
            10,
            0.1,
            "heartbeats 2 s later",
        )
        assert agent_state(server, agent.agent_id)["state"] in up
        assert agent.output().count("connected to") == 2
        assert "channel failed" not in agent.output()
        assert agent.output().count("certificate renewed") == 1  # no renewal storm
        # A planned reconnect: never offline, so no alert and nobody paged.
        with server.api() as api:
            alerts = api.get("/v1/alerts", params={"all": True}).json()
        assert [a for a in alerts if a["kind"] in ("offline", "stale")] == []
        # Restarted, it connects with the renewed pair.
        agent.stop()
        again = AgentProcess(agent.state_dir).start()
        agents.append(again)
        wait_for(lambda: again.output().count("connected to") == 3, 15, 0.1, "reconnected")
        wait_connected(server, agent.agent_id, states=up)
    finally:
        server.stop()


def test_enroll_force_drops_a_half_finished_renewal_of_the_identity_it_replaces(
    control_plane, tmp_path, agents
):
    state_dir = tmp_path / "reborn"
    assert enroll(control_plane, state_dir, name="reborn").returncode == 0
    # A crash left the old identity's renewal half done: its new key and certificate.
    stale = self_signed("stale")
    (state_dir / "key.pem.new").write_bytes(stale.key_pem)
    (state_dir / "key.pem.new").chmod(0o600)
    (state_dir / "cert.pem.new").write_bytes(stale.cert_pem)
    done = enroll(control_plane, state_dir, name="reborn", args=["--force"])
    assert done.returncode == 0, done.stderr
    assert not list(state_dir.glob("*.new"))
    # Not finished over the new identity at start: the agent connects with it.
    agent = AgentProcess(state_dir).start()
    agents.append(agent)
    wait_connected(control_plane, agent.agent_id)


def test_run_without_enrollment_or_with_a_readable_key_explains(tmp_path):
    def run(state_dir):
        return subprocess.run(
            [sys.executable, "-m", "agent", "run", "--state-dir", str(state_dir)],
            cwd=REPO,
            env=agent_env(),
            capture_output=True,
            text=True,
            timeout=30,
        )

    empty = run(tmp_path / "nothing")
    assert empty.returncode == 2 and "fleet agent enroll" in empty.stderr
    state = tmp_path / "leaky"
    state.mkdir()
    (state / "agent.json").write_text(
        json.dumps({"agent_id": "a", "name": "n", "pool": "p", "server": "https://x"})
    )
    for name in ("key.pem", "cert.pem", "ca.pem"):
        (state / name).write_text("x")
    (state / "key.pem").chmod(0o644)
    leaky = run(state)
    assert leaky.returncode == 2 and "chmod 600" in leaky.stderr
    (state / "key.pem").chmod(0o600)
    garbled = run(state)
    assert garbled.returncode == 2 and "cert.pem is unreadable" in garbled.stderr


def test_enrollment_and_channel_go_through_https_proxy_unless_no_proxy_says_otherwise(
    control_plane, tmp_path, agents
):
    state_dir = tmp_path / "proxied"
    proxy = ConnectProxy()
    try:
        proxy_url = proxy.url
        env = agent_env(HTTPS_PROXY=proxy_url)
        env.pop("NO_PROXY")
        done = enroll(control_plane, state_dir, name="proxied", env=env)
        assert done.returncode == 0, done.stderr
        enrolled_through = len(proxy.targets)
        assert enrolled_through >= 1  # GET /v1/ca and POST /v1/enroll went through it
        assert set(proxy.targets) == {f"127.0.0.1:{control_plane.port}"}
        agent_id = json.loads((state_dir / "agent.json").read_text())["agent_id"]

        agent = AgentProcess(state_dir, env=env).start()
        agents.append(agent)
        wait_connected(control_plane, agent_id)
        assert len(proxy.targets) == enrolled_through + 1  # the channel too
        assert agent.stop() == 0

        direct = AgentProcess(state_dir, env=agent_env(HTTPS_PROXY=proxy_url)).start()
        agents.append(direct)
        wait_for(lambda: direct.output().count("connected to") == 2, 15, 0.1, "reconnected")
        assert len(proxy.targets) == enrolled_through + 1  # NO_PROXY=127.0.0.1 bypassed it
    finally:
        proxy.close()


@contextlib.contextmanager
def inspecting_proxy(intercept: ssl.SSLContext, upstream: ssl.SSLContext):
    """A CONNECT proxy that terminates TLS with its own CA, as SSL inspection does.

    It runs an asyncio loop in a thread; yields (url, list of CONNECT targets).
    """
    import asyncio

    targets: list[str] = []
    ready = threading.Event()
    state: dict = {}
    open_writers: list = []
    handlers: list = []

    async def pump(reader, writer):
        with contextlib.suppress(OSError, ssl.SSLError, ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def handle(reader, writer):
        handlers.append(asyncio.current_task())
        open_writers.append(writer)
        head = await reader.readuntil(b"\r\n\r\n")
        target = head.split(b"\r\n", 1)[0].decode().split(" ")[1]
        targets.append(target)
        host, port = target.rsplit(":", 1)
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await writer.drain()
        try:
            await writer.start_tls(intercept)
        except (ssl.SSLError, OSError):
            writer.close()  # the agent refused our certificate, as it should without the CA
            return
        up_reader, up_writer = await asyncio.open_connection(host, int(port), ssl=upstream)
        open_writers.append(up_writer)
        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        state["port"] = server.sockets[0].getsockname()[1]
        state["stop"] = asyncio.Event()
        state["loop"] = asyncio.get_running_loop()
        ready.set()
        await state["stop"].wait()
        server.close()
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        for writer in open_writers:
            writer.close()
        for writer in open_writers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 2)
        await server.wait_closed()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{state['port']}", targets
    finally:
        state["loop"].call_soon_threadsafe(state["stop"].set)
        thread.join(5)


def test_ssl_inspection_needs_the_extra_ca_and_proof_of_possession_survives_it(
    control_plane, tmp_path, agents
):
    inspection_ca, leaf = ca_and_leaf()
    leaf_cert, leaf_key = leaf.write(tmp_path, "inspect")
    ca_file = tmp_path / "inspection-ca.pem"
    ca_file.write_bytes(inspection_ca.cert_pem)
    intercept = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    intercept.load_cert_chain(leaf_cert, leaf_key)
    upstream = ssl.create_default_context(cafile=str(control_plane.ca_file))

    state_dir = tmp_path / "inspected"
    assert enroll(control_plane, state_dir, name="inspected").returncode == 0
    agent_id = json.loads((state_dir / "agent.json").read_text())["agent_id"]
    with inspecting_proxy(intercept, upstream) as (proxy_url, targets):
        env = agent_env(HTTPS_PROXY=proxy_url)
        env.pop("NO_PROXY")
        refused = AgentProcess(state_dir, env=env).start()
        agents.append(refused)
        wait_for(lambda: "chain:" in refused.output(), 15, 0.1, "refusal")
        # The issuer the proxy presented is named: that is how inspection shows itself.
        assert "issued by 'CN=Inspection CA'" in refused.output()
        assert "extra_ca_file" in refused.output()
        assert refused.proc is not None and refused.proc.poll() is None  # keeps retrying
        assert refused.stop() == 0

        trusting = AgentProcess(state_dir, args=["--extra-ca-file", str(ca_file)], env=env)
        agents.append(trusting.start())
        state = wait_connected(control_plane, agent_id)
        assert state["state"] == "connected"
        assert len(targets) >= 2


def test_sigterm_stops_an_agent_that_cannot_reach_its_server(control_plane, tmp_path, agents):
    state_dir = tmp_path / "lonely"
    assert enroll(control_plane, state_dir, name="lonely").returncode == 0
    control_plane.stop()
    agent = AgentProcess(state_dir).start()
    agents.append(agent)
    wait_for(lambda: agent.output().count("reconnecting in") >= 2, 20, 0.1, "retries")
    assert agent.proc is not None and agent.proc.poll() is None  # keeps retrying
    started = time.monotonic()
    assert agent.stop() == 0
    assert time.monotonic() - started < 3.0
    assert "agent stopped" in agent.output()


def test_samples_can_be_turned_off(control_plane, tmp_path, agents):
    agent = start_agent(
        control_plane, tmp_path, agents, "quiet", args=["--no-samples", "--max-queue", "4"]
    )
    state = wait_connected(control_plane, agent.agent_id)
    assert state["cpu_percent"] is None and state["mem_rss_bytes"] is None
    assert state["mem_host_percent"] is None
    assert state["uptime_s"] > 0 and state["version"] == __version__  # the rest still comes
    assert state["queue_depth"] == 0 and state["cert_not_after"] > time.time()
    with control_plane.api() as api:
        config = api.get(f"/v1/agents/{agent.agent_id}/config").json()
    assert config["effective"]["samples"] is False and config["effective"]["max_queue"] == 4
    assert config["effective_hash"] == state["config_hash"]
