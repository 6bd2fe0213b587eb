"""Real agent processes: a purposeful stop shows ``stopped`` (no alert); a
middlebox that cuts the channel at the same age, and a firewall that starts
inspecting TLS, show in the disconnect history with their fix (issue 9, points 4
and 6)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.agents import AgentProcess, agent_env, enroll
from tests.agent.certs import ca_and_leaf
from tests.fleet.run import clean_env, fleet
from tests.helpers.proxies import ConnectProxy, InspectionSwitch, Relay
from tests.helpers.server import FAST, RunningServer, wait_for

pytestmark = pytest.mark.timeout(120)

STALE_AND_OFFLINE_S = 3 * float(FAST["heartbeat_interval_s"]) + float(FAST["offline_after_stale_s"])
"""With the test timings: stale after 1.5 s of silence, offline 3 s later."""


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def detail(server: RunningServer, agent_id: str) -> dict:
    with server.api() as api:
        response = api.get(f"/v1/agents/{agent_id}")
        response.raise_for_status()
        return dict(response.json())


def state_of(server: RunningServer, agent_id: str) -> str:
    return str(detail(server, agent_id)["agent"]["state"])


def alerts_of(server: RunningServer, agent_id: str) -> list[dict]:
    with server.api() as api:
        return [a for a in api.get("/v1/alerts?all=true").json() if a["target"] == agent_id]


def enrolled(server: RunningServer, tmp_path: Path, name: str) -> Path:
    state_dir = tmp_path / name
    done = enroll(server, state_dir, name=name)
    assert done.returncode == 0, done.stderr
    return state_dir


def test_sigterm_shows_stopped_with_its_reason_and_raises_no_alert(control_plane, tmp_path, agents):
    agent = AgentProcess(enrolled(control_plane, tmp_path, "patch-1")).start()
    agents.append(agent)
    agent_id = agent.agent_id
    wait_for(lambda: state_of(control_plane, agent_id) == "connected", 20, 0.1, "connected")
    child = agent.child()

    # SIGTERM to the supervisor (systemd's main process): it passes it on, the agent
    # says goodbye, both end with 0.
    assert agent.stop() == 0
    assert not child.is_running()
    stopped = wait_for(
        lambda: (a := detail(control_plane, agent_id)["agent"])["state"] == "stopped" and a,
        10,
        0.1,
        "stopped",
    )
    assert stopped["stop_reason"].startswith("received SIGTERM")
    assert stopped["reasons"][0].startswith("stopped on purpose at ")
    assert "received SIGTERM" in stopped["reasons"][0]

    # Well past stale plus offline: still stopped, and never an alert for it.
    deadline = time.monotonic() + STALE_AND_OFFLINE_S + 2
    while time.monotonic() < deadline:
        assert state_of(control_plane, agent_id) == "stopped"
        assert alerts_of(control_plane, agent_id) == []
        time.sleep(0.25)
    with control_plane.api() as api:
        audit = api.get("/v1/audit", params={"actor": agent_id}).json()
    assert any(e["action"] == "agent.goodbye" for e in audit)

    # A restart of the control plane keeps it stopped (the write-behind status).
    control_plane.restart()
    assert state_of(control_plane, agent_id) == "stopped"
    assert detail(control_plane, agent_id)["agent"]["stop_reason"] == stopped["stop_reason"]

    agent.start()
    wait_for(lambda: state_of(control_plane, agent_id) == "connected", 30, 0.1, "back")
    back = detail(control_plane, agent_id)["agent"]
    assert back["stop_reason"] is None and back["stopped_at"] is None
    assert alerts_of(control_plane, agent_id) == []


def test_a_middlebox_cutting_at_the_same_age_shows_in_history_with_the_fix(
    control_plane, tmp_path, agents
):
    state_dir = enrolled(control_plane, tmp_path, "behind-lb")
    relay = Relay("127.0.0.1", ("127.0.0.1", control_plane.agent_port), cut_after_s=7.0)
    try:
        identity = json.loads((state_dir / "agent.json").read_text())
        identity["channel_port"] = relay.port
        (state_dir / "agent.json").write_text(json.dumps(identity))
        agent = AgentProcess(state_dir).start()
        agents.append(agent)
        agent_id = agent.agent_id

        def hinted() -> dict | None:
            d = detail(control_plane, agent_id)
            return d if any(h["kind"] == "same_age" for h in d["disconnect_hints"]) else None

        found = wait_for(hinted, 80, 0.5, "three cuts reported with the same-age hint")
    finally:
        relay.close()
    records = found["disconnects"]
    assert len(records) >= 3
    for record in records:
        assert record["cause"] == "reset", record
        assert 5.0 <= record["age_s"] <= 7.5
        assert record["connected_at"] is not None and record["ended_at"] > record["connected_at"]
        assert record["tls_issuer"]  # the fleet CA, as the agent saw it
    [hint] = [h for h in found["disconnect_hints"] if h["kind"] == "same_age"]
    # The relay cuts 7 s after accepting; the welcome comes a moment later.
    assert re.search(r"closed after ~[67] s each time", hint["message"]), hint["message"]
    assert "ping interval (20 s)" in hint["message"]

    # `fleet agents show` prints the newest records and the hint.
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    assert fleet("login", "--data-dir", str(control_plane.data_dir), env=env).returncode == 0
    out = fleet("agents", "show", "behind-lb", env=env)
    assert out.returncode == 0, out.stderr
    assert "state:" in out.stdout and "stopped:" in out.stdout
    assert "disconnects (newest " in out.stdout
    assert re.search(r"Z  connection cut after \d+s: connection closed without a close", out.stdout)
    assert "hint: closed after ~" in out.stdout


def test_a_proxy_refusal_is_one_record_with_its_attempts_once_it_lets_the_agent_through(
    control_plane, tmp_path, agents
):
    state_dir = enrolled(control_plane, tmp_path, "proxied-later")
    proxy = ConnectProxy(refuse="403 Forbidden")
    try:
        env = agent_env(HTTPS_PROXY=proxy.url)
        env.pop("NO_PROXY")
        agent = AgentProcess(state_dir, env=env).start()
        agents.append(agent)
        wait_for(lambda: len(proxy.requests) >= 2, 20, 0.1, "two refused CONNECTs")
        proxy.refuse = None  # the firewall team fixed the rule

        def reported() -> list[dict] | None:
            records = detail(control_plane, agent.agent_id)["disconnects"]
            return records or None

        [record] = wait_for(reported, 30, 0.2, "the refusals reported")
    finally:
        proxy.close()
    assert record["cause"] == "proxy"
    assert "403" in record["detail"]
    assert record["attempts"] >= 2
    assert record["connected_at"] is None and record["age_s"] is None


def test_ssl_inspection_switched_on_shows_as_a_changed_issuer_with_the_fix(
    control_plane, tmp_path, agents
):
    state_dir = enrolled(control_plane, tmp_path, "inspected")
    _, leaf = ca_and_leaf("Corp Inspection CA")
    cert_file, key_file = leaf.write(tmp_path, "inspect-leaf")
    firewall = InspectionSwitch(
        cert_file, key_file, ("127.0.0.1", control_plane.agent_port), control_plane.ca_file
    )
    try:
        identity = json.loads((state_dir / "agent.json").read_text())
        identity["channel_port"] = firewall.port
        (state_dir / "agent.json").write_text(json.dumps(identity))
        agent = AgentProcess(state_dir).start()
        agents.append(agent)
        agent_id = agent.agent_id
        wait_for(lambda: state_of(control_plane, agent_id) == "connected", 20, 0.1, "connected")

        # The firewall starts inspecting: the open channel is cut, and every new
        # handshake meets a certificate the agent's pin refuses.
        firewall.inspecting = True
        firewall.cut()

        def refused() -> int:
            lines = agent.output().splitlines()
            return sum("channel failed" in line and "Corp Inspection CA" in line for line in lines)

        wait_for(lambda: refused() >= 3, 40, 0.2, "three handshakes refused")
        # Exempted from inspection: the agent gets through and reports the history.
        firewall.inspecting = False

        def hinted() -> dict | None:
            d = detail(control_plane, agent_id)
            return d if any(h["kind"] == "tls_issuer" for h in d["disconnect_hints"]) else None

        found = wait_for(hinted, 60, 0.5, "the history reported with the TLS-issuer hint")
    finally:
        firewall.close()
    assert found["agent"]["state"] == "connected"
    cut, failed = found["disconnects"][-2:]
    assert cut["cause"] == "reset" and cut["connected_at"] is not None, cut
    assert cut["tls_issuer"] == "CN=fleet control plane CA", cut
    assert failed["cause"] == "tls" and failed["connected_at"] is None, failed
    assert failed["tls_issuer"] == "CN=Corp Inspection CA", failed
    assert failed["attempts"] >= 3, failed
    [hint] = [h for h in found["disconnect_hints"] if h["kind"] == "tls_issuer"]
    assert hint["message"].startswith(
        "the control plane's certificate, as the agent saw it, changed issuer from "
        "'CN=fleet control plane CA' to 'CN=Corp Inspection CA'"
    ), hint["message"]
    assert "SSL-inspecting proxy" in hint["message"]
    assert "exempt the control plane's address from inspection" in hint["message"]

    # `fleet agents show` prints both records and the hint.
    home = tmp_path / "home"
    home.mkdir()
    env = clean_env(home)
    assert fleet("login", "--data-dir", str(control_plane.data_dir), env=env).returncode == 0
    out = fleet("agents", "show", "inspected", env=env)
    assert out.returncode == 0, out.stderr
    assert "disconnects (newest " in out.stdout
    assert "TLS verification failed" in out.stdout, out.stdout
    assert "hint: the control plane's certificate, as the agent saw it, changed issuer" in (
        out.stdout
    )
