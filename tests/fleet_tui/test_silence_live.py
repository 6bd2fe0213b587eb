"""Acknowledge, silence and maintenance from the dashboard, against a real control plane."""

from __future__ import annotations

import pytest
from textual.widgets import Input, OptionList

from fleet.protocol import AlertInfo
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.silence import (
    AckModal,
    MaintenanceModal,
    SilenceModal,
    parse_matchers,
)
from fleet_tui.widgets.alerts import AlertsPanel
from fleet_tui.widgets.alerts.panel import alert_line

from .test_live import live_app, until

pytestmark = pytest.mark.timeout(90)


def panel_text(app) -> str:
    [screen] = [s for s in app.screen_stack if isinstance(s, FleetScreen)]
    olist = screen.query_one(AlertsPanel).query_one(OptionList)
    return "\n".join(str(olist.get_option_at_index(i).prompt) for i in range(olist.option_count))


def offline_alert(app, agent_id: str) -> AlertInfo | None:
    found = [a for a in app.model.alerts.values() if a.target == agent_id and a.kind == "offline"]
    return found[0] if found else None


async def open_alerts(pilot, app, agent_id: str) -> AlertInfo:
    await until(pilot, lambda: offline_alert(app, agent_id) is not None, what="offline alert")
    await until(pilot, lambda: "agent is offline" in panel_text(app), what="alert shown")
    app.screen.query_one(AlertsPanel).focus_list()
    await pilot.pause()
    alert = offline_alert(app, agent_id)
    assert alert is not None
    return alert


async def test_an_operator_acknowledges_then_silences_the_selected_alert(
    control_plane, gone, tmp_path
):
    token = control_plane.user("alice", "operator")
    app = live_app(control_plane, tmp_path, token=token)
    agent_id = gone.identity.agent_id
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: app.gate.role == "operator", what="operator role")
        await open_alerts(pilot, app, agent_id)

        await pilot.press("A")
        assert isinstance(app.screen, AckModal)
        await pilot.press(*"on it", "enter")
        await until(pilot, lambda: isinstance(app.screen, FleetScreen), what="modal closed")
        await until(pilot, lambda: "✓ alice: on it" in panel_text(app), what="ack and note")
        acked = offline_alert(app, agent_id)
        assert acked is not None and acked.ack_note == "on it"

        await pilot.press("Z")
        assert isinstance(app.screen, SilenceModal)
        assert app.screen.query_one("#silence-matchers", Input).value == "agent=etl-07"
        app.screen.query_one("#silence-for", Input).value = "30m"
        app.screen.query_one("#silence-reason", Input).value = "patching"
        await pilot.click("#silence-go")
        await until(pilot, lambda: isinstance(app.screen, FleetScreen), what="modal closed")
        await until(pilot, lambda: "⊘ silenced by alice" in panel_text(app), what="silence")
        assert "patching" in panel_text(app)

        await pilot.press("U")
        await until(pilot, lambda: "✓ alice" not in panel_text(app), what="ack taken back")


async def test_maintenance_of_the_agents_pool_from_the_fleet_view(control_plane, gone, tmp_path):
    app = live_app(control_plane, tmp_path)
    agent_id = gone.identity.agent_id
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: offline_alert(app, agent_id) is not None, what="alert")
        assert isinstance(app.screen, FleetScreen)
        app.screen.table.focus()
        await pilot.press("home", "M")
        assert isinstance(app.screen, MaintenanceModal)
        await pilot.click("#mnt-pool")
        app.screen.query_one("#mnt-reason", Input).focus()
        await pilot.press(*"kernel", "enter")
        await until(pilot, lambda: isinstance(app.screen, FleetScreen), what="modal closed")
        await until(pilot, lambda: "maintenance of pool etl" in panel_text(app), what="maintenance")


async def test_a_viewer_is_told_the_keys_need_an_operator(control_plane, gone, tmp_path):
    token = control_plane.user("wall", "viewer")
    app = live_app(control_plane, tmp_path, token=token)
    agent_id = gone.identity.agent_id
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: app.gate.role == "viewer", what="viewer role")
        await open_alerts(pilot, app, agent_id)
        for key in ("A", "Z"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, FleetScreen)  # no modal opened
        messages = [n.message for n in app._notifications]
        assert any("needs the operator role; you are a viewer" in m for m in messages)
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert commands["Silence alerts"].startswith("Unavailable: Silence alerts needs the")


def test_held_alerts_say_who_and_why_and_matchers_parse():
    alert = AlertInfo(
        id="a", kind="offline", severity="critical", target="ag", message="agent is offline",
        raised_at=0.0, acked_by="bob", suppressed="maintenance of pool etl until 14:00 UTC",
    )  # fmt: skip
    line = alert_line(alert, "etl-07", 60.0)
    assert line.endswith("✓ bob  ⊘ maintenance of pool etl until 14:00 UTC")
    assert parse_matchers("pool=etl kind=stale") == {"pool": "etl", "kind": "stale"}
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_matchers("etl")
