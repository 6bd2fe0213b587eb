"""The held-back view (silences and maintenance windows) and the maintenance dialog's
start, against a real control plane."""

from __future__ import annotations

import time

import pytest

from fleet_tui.holds import Hold, hold_from, in_order
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.holds import HoldsScreen
from fleet_tui.screens.silence import EndHoldModal, MaintenanceModal

from .helpers import screen_text, static_text, wait_for_text
from .test_live import live_app, until
from .test_silence_live import open_alerts, panel_text

pytestmark = pytest.mark.timeout(90)


async def _post(cp, path: str, body: dict, token: str | None = None) -> dict:
    async with cp.aapi(token) as api:
        response = await api.post(path, json=body)
        response.raise_for_status()
        return response.json()


async def _get(cp, path: str) -> list[dict]:
    async with cp.aapi() as api:
        response = await api.get(path)
        response.raise_for_status()
        return response.json()


async def test_the_held_view_lists_a_window_that_holds_nothing_stays_live_and_ends_one(
    control_plane, tmp_path
):
    window = await _post(control_plane, "/v1/maintenance", {
        "pool": "etl", "starts_at": time.time() + 1800, "duration_s": 3600,
        "reason": "switch swap",
    })  # fmt: skip
    app = live_app(control_plane, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.model.has_snapshot, what="snapshot")
        await pilot.press("h")
        assert isinstance(app.screen, HoldsScreen)
        text = await wait_for_text(
            pilot, app, "⚒ maintenance  pool etl", "by admin: switch swap", "ends "
        )
        assert "Held back: 0 silences, 1 maintenance window (1 planned)" in text
        # From the stream, not fetched: the view polls nothing.
        assert app.model.holds_live
        assert "(in 30m)" in text or "(in 29m)" in text

        # Made elsewhere (the CLI, another dashboard) while the view is open: it
        # comes without a key pressed.
        silence = await _post(control_plane, "/v1/silences", {
            "pool": "etl", "kind": "stale", "duration_s": 7200, "reason": "migration",
        })  # fmt: skip
        text = await wait_for_text(
            pilot, app, "⊘ silence  pool=etl kind=stale", "by admin: migration", timeout=15
        )
        assert "active, ends " in text and "(2h left)" in text
        assert "Held back: 1 silence, 1 maintenance window (1 planned)" in text

        # The cursor stayed on the window as the silence came in above it.
        await pilot.press("up", "d")
        assert isinstance(app.screen, EndHoldModal)
        await wait_for_text(pilot, app, f"End silence {silence['id']} now?", "End now")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HoldsScreen), what="back")
        await until(
            pilot, lambda: "pool=etl kind=stale" not in screen_text(app), what="silence gone"
        )
        assert await _get(control_plane, "/v1/silences") == []
        [left] = await _get(control_plane, "/v1/maintenance")
        assert left["id"] == window["id"]
        assert "⚒ maintenance  pool etl" in screen_text(app)

        # A planned one is called off, not ended; Escape keeps it.
        await pilot.press("d")
        await wait_for_text(pilot, app, f"Call off the planned maintenance window {window['id']}?")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HoldsScreen), what="back")
        assert len(await _get(control_plane, "/v1/maintenance")) == 1

        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_the_maintenance_dialog_takes_a_start_and_says_what_is_wrong_with_one(
    control_plane, gone, tmp_path
):
    token = control_plane.user("alice", "operator")
    app = live_app(control_plane, tmp_path, token=token)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.gate.role == "operator", what="operator role")
        await until(pilot, lambda: len(app.model.agents) == 1, what="the agent")
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("home", "M")
        assert isinstance(app.screen, MaintenanceModal)
        # Typed in one burst, as over a slow link: Tab from the scope to the start.
        await pilot.press("tab", *"14:00", "enter")
        await pilot.pause()
        assert isinstance(app.screen, MaintenanceModal)  # not planned
        error = static_text(app, "#mnt-error")
        assert error.startswith("start: '14:00' has no date: write ")
        assert "is in maintenance" in static_text(app, "#mnt-does")
        assert "from a start that is not a time yet" in static_text(app, "#mnt-does").lower()

        await pilot.press(*["backspace"] * 5, *"+30m", "tab", "tab", *"kernel", "enter")
        await until(pilot, lambda: isinstance(app.screen, FleetScreen), what="dialog closed")
        [window] = await _get(control_plane, "/v1/maintenance")
        assert window["state"] == "pending" and window["reason"] == "kernel"
        assert window["created_by"] == "alice" and window["target_name"] == "etl-07"
        assert abs(window["starts_at"] - (time.time() + 1800)) < 10
        messages = [n.message for n in app._notifications]
        assert any("will be in maintenance from" in m for m in messages), messages

        # Planned, it holds nothing yet: only the held view shows it.
        await pilot.press("h")
        await wait_for_text(pilot, app, "⚒ maintenance  agent etl-07", "by alice: kernel")


async def test_a_viewer_opens_the_held_view_from_the_alerts_panel_and_is_told_why_not(
    control_plane, gone, tmp_path
):
    await _post(control_plane, "/v1/silences", {"agent": "etl-07", "duration_s": 600})
    token = control_plane.user("wall", "viewer")
    app = live_app(control_plane, tmp_path, token=token)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: app.gate.role == "viewer", what="viewer role")
        await open_alerts(pilot, app, gone.identity.agent_id)
        assert "⊘ silenced by admin" in panel_text(app)
        await pilot.press("h")
        assert isinstance(app.screen, HoldsScreen)
        await wait_for_text(pilot, app, "⊘ silence  agent=etl-07", "by admin")
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, HoldsScreen)  # no dialog
        messages = [n.message for n in app._notifications]
        assert any(
            "End silence or maintenance needs the operator role; you are a viewer" in m
            for m in messages
        ), messages
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert commands["End silence or maintenance"].startswith("Unavailable: ")
        # The agent keys do not reach through to the fleet's hidden cursor.
        assert app.current_agent() is None


async def test_the_palette_opens_the_held_view(control_plane, tmp_path):
    app = live_app(control_plane, tmp_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.model.has_snapshot, what="snapshot")
        await pilot.press("ctrl+p")
        await pilot.press(*"silences and maint")
        await until(
            pilot, lambda: "List the active and planned" in screen_text(app), what="command"
        )
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, HoldsScreen), what="held view")
        await wait_for_text(pilot, app, "Nothing is held back", "Held back: 0 silences")
        # An agent's key here says there is no agent, not "put the cursor on one".
        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, HoldsScreen)
        messages = [n.message for n in app._notifications]
        assert any("escape goes back to the agents" in m for m in messages), messages


def test_holds_read_as_the_server_sends_them_and_come_in_order():
    now = 1_790_000_000.0  # 2026-09-21 14:13:20Z
    silence = hold_from("silence", {
        "id": "sil_1", "starts_at": now - 60, "ends_at": now + 4800, "reason": "",
        "created_by": "bob", "pool": "etl", "kind": "stale", "agent": None,
    })  # fmt: skip
    window = hold_from("maintenance", {
        "id": "mnt_1", "scope": "agent", "target": "ag-1", "target_name": "etl-07",
        "starts_at": now + 1500, "ends_at": now + 5100, "reason": "kernel",
        "created_by": "alice",
    })  # fmt: skip
    assert isinstance(silence, Hold) and isinstance(window, Hold)
    assert silence.what == "pool=etl kind=stale" and window.what == "agent etl-07"
    assert silence.timing(now) == "active, ends 15:33Z (1h20m left)"
    assert silence.said() == "by bob"
    assert window.timing(now) == "starts 14:38Z (in 25m), ends 15:38Z"
    assert window.said() == "by alice: kernel"
    ended = Hold("silence", "sil_0", "pool=x", now - 600, now - 1, "bob", "")
    assert in_order([window, ended, silence], now) == [silence, window]
    assert hold_from("silence", {"id": "sil_2"}) is None  # a newer server's: skipped


def test_a_snapshot_without_holds_leaves_them_to_be_fetched_one_with_them_is_live():
    from fleet.protocol import PROTOCOL_VERSION, HoldInfo, HoldsUpdate, Snapshot
    from fleet_tui.model import FleetModel

    model = FleetModel()
    old_server = Snapshot(protocol_version=PROTOCOL_VERSION, seq=1, server_time=0.0, agents=[])
    model.apply(old_server)
    assert model.holds is None and not model.holds_live
    info = HoldInfo(
        kind="silence", id="s1", what="pool=etl", starts_at=0.0, ends_at=9e9, created_by="a"
    )
    model.apply(HoldsUpdate(seq=2, holds=[info]))
    assert model.holds_live and [h.what for h in model.holds or []] == ["pool=etl"]
