"""The control plane behind a real HAProxy in TCP passthrough (issue 11, point 5).

A real agent process enrolls through the balancer and holds its channel through it,
a dashboard follows the fleet through it and the CLI lists the agents through it.
HAProxy's ``timeout tunnel`` is shorter than the heartbeat interval: with the
control plane's ``channel_keepalive_s`` below it, quiet channels survive; with the
default (20 s), HAProxy cuts the channel every time it is quiet that long, and the
agent's disconnect history names the seconds and the fix.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_tui.app import FleetApp
from fleet_tui.client import ConnectionState
from tests.agent.agents import AgentProcess, enroll
from tests.fleet.run import clean_env, fleet
from tests.helpers.haproxy import Backend, HAProxy
from tests.helpers.server import FAST, RunningServer, wait_for

from .fleet_tui.test_live import until

pytestmark = pytest.mark.timeout(120)

TUNNEL_S = 1.5
"""HAProxy's timeout tunnel: shorter than the heartbeat interval below."""
HEARTBEAT_S = 4.0


def _behind_haproxy(
    tmp_path: Path,
    keepalive_s: float | None,
    tunnel_s: float = TUNNEL_S,
    heartbeat_s: float = HEARTBEAT_S,
    **more: str,
) -> tuple[RunningServer, HAProxy]:
    lb = HAProxy(tmp_path / "haproxy", tunnel_timeout_s=tunnel_s)
    settings = {
        **FAST,
        **more,
        "heartbeat_interval_s": str(heartbeat_s),
        "public_agent_port": str(lb.agent_port),
        # The dashboard's stream is a quiet connection too.
        "stream_heartbeat_s": "0.5",
    }
    if keepalive_s is not None:
        settings["channel_keepalive_s"] = str(keepalive_s)
    cp = RunningServer(tmp_path / "cp", settings=settings).start()
    lb.backends = [Backend(api_port=cp.port, agent_port=cp.agent_port)]
    try:
        lb.start()
    except BaseException:
        cp.stop()
        raise
    return cp, lb


@pytest.fixture
def through_haproxy(tmp_path: Path) -> Iterator[tuple[RunningServer, HAProxy]]:
    cp, lb = _behind_haproxy(tmp_path, keepalive_s=0.5)
    try:
        yield cp, lb
    finally:
        lb.stop()
        cp.stop()


def _agent_via(lb: HAProxy, cp: RunningServer, tmp_path: Path, name: str) -> AgentProcess:
    state = tmp_path / name
    out = enroll(cp, state, name=name, url=lb.url)
    assert out.returncode == 0, out.stderr
    enrolled = json.loads((state / "agent.json").read_text())
    # What the agent was told to dial: the balancer's agent port, not the server's.
    assert enrolled["channel_port"] == lb.agent_port != cp.agent_port
    assert enrolled["server"] == lb.url
    return AgentProcess(state).start()


def _agent(cp: RunningServer, name: str) -> dict:
    with cp.api() as api:
        agents = api.get("/v1/agents").json()
        [agent] = [a for a in agents if a["name"] == name]
        detail = api.get(f"/v1/agents/{agent['id']}").json()
    return dict(detail)


async def test_agents_the_dashboard_and_the_cli_go_through_haproxy_and_quiet_channels_survive(
    through_haproxy: tuple[RunningServer, HAProxy], tmp_path: Path
) -> None:
    cp, lb = through_haproxy
    agent = _agent_via(lb, cp, tmp_path, "behind-lb")
    try:
        wait_for(
            lambda: _agent(cp, "behind-lb")["agent"]["state"] == "connected",
            20,
            0.2,
            "the agent connected through HAProxy",
        )
        first = _agent(cp, "behind-lb")["agent"]["connected_at"]

        (tmp_path / "home").mkdir()
        env = clean_env(tmp_path / "home", FLEET_SERVER=lb.url, FLEET_CA_FILE=str(cp.ca_file))
        token_file = tmp_path / "admin.token"
        token_file.write_text(cp.admin_token + "\n")
        token_file.chmod(0o600)
        env["FLEET_TOKEN_FILE"] = str(token_file)

        app = FleetApp(server_url=lb.url, token=cp.admin_token, ca_file=cp.ca_file, tick=0.2)
        async with app.run_test(size=(120, 30)) as pilot:
            await until(
                pilot,
                lambda: any(a.name == "behind-lb" for a in app.model.agents.values()),
                what="the agent on the dashboard",
            )
            await until(pilot, lambda: app.link.state is ConnectionState.LIVE, what="live")
            live_since = app.link_since
            # Four tunnel timeouts, two heartbeats apart: nothing is cut.
            deadline = time.monotonic() + 4 * TUNNEL_S + HEARTBEAT_S
            while time.monotonic() < deadline:
                await pilot.pause(0.2)
            assert app.link.state is ConnectionState.LIVE
            assert app.link_since == live_since, "the dashboard's stream was cut"
            listed = fleet("agents", "list", "-o", "json", env=env)
            assert listed.returncode == 0, listed.stderr
            assert [a["name"] for a in json.loads(listed.stdout)] == ["behind-lb"]

        detail = _agent(cp, "behind-lb")
        assert detail["agent"]["state"] == "connected"
        assert detail["agent"]["connected_at"] == first, "the agent's channel was cut"
        assert detail["disconnects"] == []
    finally:
        agent.stop()


def test_without_a_keepalive_haproxy_cuts_quiet_channels_and_the_agent_says_so(
    tmp_path: Path,
) -> None:
    # Channels cut sooner than 5 s say nothing of a middlebox (a refusal, a flap): here
    # each lives the 6 s tunnel timeout, with nothing sent in between.
    cp, lb = _behind_haproxy(
        tmp_path, keepalive_s=None, tunnel_s=6.0, heartbeat_s=10.0, time_probe_interval_s="60"
    )
    agent = _agent_via(lb, cp, tmp_path, "cut-off")
    try:

        def hinted() -> dict | None:
            detail = _agent(cp, "cut-off")
            hints = [h for h in detail["disconnect_hints"] if h["kind"] == "same_age"]
            return hints[0] if hints else None

        # The agent reports the ends when it is back; three make a pattern.
        hint = wait_for(hinted, 90, 0.5, "the idle-timeout hint")
        assert "closed after ~6 s each time" in hint["message"]
        # Nobody closed it: the agent's log does not blame the control plane.
        assert "the channel was cut without a close (1006)" in agent.output()
        assert "control plane closed the channel (1006" not in agent.output()
        assert "channel_keepalive_s below" in hint["message"]
    finally:
        agent.stop()
        lb.stop()
        cp.stop()
