"""The remediation inbox against a real control plane with a simulated agent (the real
protocol): a policy that asks for approval queues a restart of a wedged agent; the
dashboard shows it waiting, with the header's count; an operator rejects it with a
note from the inbox, then approves the next one, and the agent is restarted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_tui.app import FleetApp
from fleet_tui.screens.agent_detail import AgentDetailScreen
from fleet_tui.screens.decisions import DecisionModal
from fleet_tui.screens.inbox import InboxScreen
from tests.helpers.server import FAST, RunningServer
from tests.helpers.stream import start_agent, stop_agent

from .helpers import notices, static_text, wait_for_text
from .test_live import until

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(
        tmp_path / "cp",
        # Stale, never offline: the server would close a silent agent's channel after
        # offline_after_stale_s, and an approved restart then races the close.
        settings={**FAST, "remediation_min_check_s": "0.2", "offline_after_stale_s": "600"},
    ).start()
    try:
        yield server
    finally:
        server.stop()


async def _get(cp: RunningServer, path: str) -> dict:
    async with cp.aapi() as api:
        r = await api.get(path)
        assert r.status_code == 200, r.text
        return r.json()


async def test_an_operator_rejects_then_approves_a_restart_from_the_inbox(cp, tmp_path):
    operator = cp.user("olga", "operator")
    agent, task = await start_agent(cp, "stuck", pool="batch", obeys_actions=True)
    agent.heartbeating = False  # the socket stays open: stale, and still reachable
    async with cp.aapi() as api:
        rule = {"condition": "stale_or_offline", "action": "restart", "automatic": False}
        r = await api.put(
            "/v1/pools/batch/remediation",
            json={"check_interval_s": 0.2, "rules": [{**rule, "checks": 2}]},
        )
        assert r.status_code == 200, r.text
    app = FleetApp(server_url=cp.url, token=operator, ca_file=cp.ca_file, tick=0.2, backoff_cap=1.0)
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.model.pending_approvals(), what="a restart queued")
            await until(pilot, lambda: "⚑ 1 to approve" in app.sub_title, what="the badge")
            first = app.model.pending_approvals()[0]
            await pilot.press("I")
            assert isinstance(app.screen, InboxScreen)
            await wait_for_text(
                pilot,
                app,
                "⚑ restart stuck · pool batch",
                "stale or offline for 2 checks · waits: the policy asks for approval",
            )

            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, DecisionModal), what="rejecting")
            await pilot.press(*"flapping switch", "enter")
            await until(pilot, lambda: any(n.startswith("Rejected") for n in notices(app)))
            said = await _get(cp, f"/v1/remediations/{first.id}")
            assert said["state"] == "rejected" and said["decided_by"] == "olga"
            assert said["detail"] == "flapping switch"
            await wait_for_text(pilot, app, "rejected by olga <1m ago: flapping switch")

            # The agent is still wedged: the policy queues the next restart.
            await until(
                pilot,
                lambda: [r for r in app.model.pending_approvals() if r.id != first.id],
                what="the next restart queued",
            )
            app.tick()
            await pilot.pause()
            agent.heartbeating = True  # what a restart mends
            restarts = agent.restarts
            # It came after the rejection: the cursor stayed where it was; home is the
            # first one waiting (the section's heading cannot be highlighted).
            await pilot.press("home", "a")
            await until(pilot, lambda: isinstance(app.screen, DecisionModal), what="approving")
            await pilot.press("enter")
            await until(pilot, lambda: any(n.startswith("Approved") for n in notices(app)))
            await until(pilot, lambda: agent.restarts > restarts, what="the agent restarted")
            second = next(
                r for r in app.model.remediations.values() if r.decided_by and r.id != first.id
            )
            assert second.action == "restart" and second.state in ("running", "done")

            # The agent's detail lists both decisions.
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, AgentDetailScreen))

            def listed() -> str:
                return static_text(app, "#detail-remediations")

            await until(pilot, lambda: "approved by olga" in listed(), what="both decisions")
            assert "⊘ rejected  restart · stale or offline for 2 checks · rejected by olga" in (
                listed()
            )
    finally:
        await stop_agent(task)
