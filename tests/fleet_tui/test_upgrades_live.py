"""An agent's upgrade as the dashboard shows it, against a real control plane with a
stored release and simulated agents (the real protocol): the version cell and the
detail follow what the control plane records on the agent (``AgentState.upgrade``).

The rollouts view and the inbox are tested on fed data (test_rollouts_view.py,
test_inbox_view.py) until the rollout and remediation routes are on main.
"""

from __future__ import annotations

import pytest

from fleet.protocol import CommandError
from fleet_tui.screens.agent_detail import AgentDetailScreen
from tests.helpers.answers import Answers
from tests.helpers.releases import release_wheel
from tests.helpers.stream import start_agent, stop_agent

from .helpers import table_lines, wait_for_text
from .test_live import live_app, until

pytestmark = pytest.mark.timeout(90)


async def _upload(cp, tmp_path, version: str) -> None:
    data = release_wheel(tmp_path, version).read_bytes()
    async with cp.aapi() as api:
        r = await api.put(f"/v1/releases/{version}", content=data)
    assert r.status_code == 200, r.text


def _row(app, name: str) -> str:
    return next((line for line in table_lines(app.screen.table) if name in line), "")


async def test_an_upgrade_sent_and_one_refused_show_on_their_agents(control_plane, tmp_path):
    await _upload(control_plane, tmp_path, "0.2.0")
    sent, refused = Answers(), Answers()
    refused.refuse = CommandError(code="busy", message="queue depth 500 is over 100")
    up, up_task = await start_agent(control_plane, "up-1", version="0.1.0", handler=sent)
    busy, busy_task = await start_agent(control_plane, "busy-1", version="0.1.0", handler=refused)
    app = live_app(control_plane, tmp_path)
    try:
        async with app.run_test(size=(200, 40)) as pilot:
            await until(pilot, lambda: len(app.model.agents) == 2, what="both agents")
            async with control_plane.aapi() as api:
                r = await api.post(
                    f"/v1/agents/{up.identity.agent_id}/upgrade", json={"version": "0.2.0"}
                )
                assert r.status_code == 200, r.text
                r = await api.post(
                    f"/v1/agents/{busy.identity.agent_id}/upgrade", json={"version": "0.2.0"}
                )
                assert r.status_code == 409, r.text
            # Sent and accepted: the agent's steps follow; until then it is upgrading.
            await until(pilot, lambda: _row(app, "up-1").endswith("→0.2.0"), what="→0.2.0")
            # Refused (busy): it still runs 0.1.0, marked.
            await until(pilot, lambda: _row(app, "busy-1").endswith("✗0.1.0"), what="✗0.1.0")
            app.open_detail(busy.identity.agent_id)
            await pilot.pause()
            assert isinstance(app.screen, AgentDetailScreen)
            text = await wait_for_text(pilot, app, "upgrade to 0.2.0 refused")
            assert "upgrade to 0.2.0 refused: busy: queue depth 500 is over 100 ·" in text
    finally:
        await stop_agent(up_task)
        await stop_agent(busy_task)
