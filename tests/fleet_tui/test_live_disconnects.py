"""The dashboard against a real control plane: a stopped agent, and an agent's
disconnect history with the control plane's hint in its detail screen."""

from __future__ import annotations

import time

import pytest

from fleet.protocol import Disconnect, Disconnects, Goodbye, dump
from fleet_tui.app import FleetApp
from fleet_tui.screens.agent_detail import AgentDetailScreen
from fleet_tui.widgets.agents import FleetTable
from tests.helpers.stream import start_agent, stop_agent

from .helpers import static_text, table_lines
from .test_live import live_app, until

pytestmark = pytest.mark.timeout(90)


async def test_detail_shows_the_disconnects_and_the_hint(control_plane, tmp_path):
    agent, task = await start_agent(control_plane, "behind-nat", interval_s=0.5)
    now = time.time()
    records = [
        Disconnect(
            cause="reset",
            detail="connection closed without a close frame: TCP reset or FIN",
            connected_at=now - 2000 + i * 400 - 350,
            ended_at=now - 2000 + i * 400,
            age_s=350.0 + i,
        )
        for i in range(3)
    ]
    await agent.send_raw(dump(Disconnects(records=records)))
    app: FleetApp = live_app(control_plane, tmp_path)
    try:
        async with app.run_test(size=(140, 50)) as pilot:
            await until(pilot, lambda: len(app.model.agents) == 1, what="the agent")
            await pilot.press("home", "enter")
            assert isinstance(app.screen, AgentDetailScreen)
            await until(
                pilot,
                lambda: app.screen.query_one("#detail-disconnects").display,
                what="disconnects shown",
            )
            text = static_text(app, "#detail-disconnects")
            assert "hint: closed after ~351 s each time (3 of the last 3 channels)" in text
            assert text.count("connection cut after 5m") == 3
    finally:
        await stop_agent(task)


async def test_a_stopped_agent_reads_stopped_in_the_table(control_plane, tmp_path):
    agent, task = await start_agent(control_plane, "patched", interval_s=0.5)
    app: FleetApp = live_app(control_plane, tmp_path)
    try:
        async with app.run_test(size=(140, 30)) as pilot:
            await until(pilot, lambda: len(app.model.agents) == 1, what="the agent")
            await agent.send_raw(dump(Goodbye(reason="systemctl stop for patching")))
            await stop_agent(task)
            table = app.screen.query_one(FleetTable)
            await until(
                pilot, lambda: "■ stopped" in "\n".join(table_lines(table)), what="stopped row"
            )
            [shown] = app.model.agents.values()
            assert shown.stop_reason == "systemctl stop for patching"
            assert shown.reasons[0].startswith("stopped on purpose at ")
            assert not app.model.alerts
    finally:
        await stop_agent(task)
