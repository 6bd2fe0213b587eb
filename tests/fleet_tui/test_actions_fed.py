"""Actions, read-only enforcement, keymaps and wall mode, on fed data."""

from __future__ import annotations

from textual import events
from textual.widgets import Input

from fleet.protocol import ProbeResult
from fleet_tui.permissions import ACTIONS, Gate
from fleet_tui.screens.confirm import LogsModal, PinModal, RevokeModal
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.keys import KeysScreen
from fleet_tui.screens.logs import LogViewer, matching_lines
from fleet_tui.screens.probe import ProbeModal, ProbeResultModal, result_lines
from fleet_tui.screens.wall import WallScreen

from .conftest import sample_app
from .helpers import screen_text, static_text


def test_gate_ranks_roles_and_explains_refusals():
    assert not Gate("viewer").allows("probe")
    assert Gate("operator").allows("probe") and Gate("operator").allows("logs")
    assert not Gate("operator").allows("revoke") and not Gate("operator").allows("pin")
    assert all(Gate("admin").allows(a) for a in ACTIONS)
    assert "needs the admin role; you are an operator" in (Gate("operator").why_not("pin") or "")
    wall = Gate("admin", wall=True)
    assert wall.allows("quit") and not wall.allows("probe") and not wall.allows("filter")


async def test_viewer_sees_every_action_unavailable_and_nothing_opens():
    app = sample_app(role="viewer")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        for action in ACTIONS:
            assert app.check_action(action, ()) is None  # shown, but disabled
        footer = {b.binding.action: b.enabled for b in app.screen.active_bindings.values()}
        assert footer["probe"] is False and footer["revoke"] is False
        for key in ("p", "l", "v", "x"):
            await pilot.press(key)
            await pilot.pause()
            assert isinstance(app.screen, FleetScreen)  # no modal opened
        # ... but each key said why, rather than nothing at all.
        said = [n.message for n in app._notifications]
        assert sum("; you are a viewer" in m for m in said) == 4, said
        assert any("Probe from agent needs the operator role; you are a viewer" in m for m in said)
        assert any("Revoke agent needs the admin role; you are a viewer" in m for m in said)
        app.clear_notifications()
        # The command palette lists them as unavailable, saying why.
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        probe = next(help for title, help in commands.items() if title.startswith("Probe"))
        assert probe.startswith("Unavailable: Probe from agent needs the operator role")
        # Running one anyway (as the palette does) refuses with a clear message.
        app.action_revoke()
        await pilot.pause()
        assert any("needs the admin role" in n.message for n in app._notifications)
        assert isinstance(app.screen, FleetScreen)


async def test_operator_may_probe_and_fetch_logs_but_not_pin_or_revoke():
    app = sample_app(role="operator")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        assert app.check_action("probe", ()) and app.check_action("logs", ())
        assert app.check_action("pin", ()) is None and app.check_action("revoke", ()) is None
        await pilot.press("x")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        said = [n.message for n in app._notifications]
        assert any("Revoke agent needs the admin role; you are an operator" in m for m in said)
        await pilot.press("p")
        assert isinstance(app.screen, ProbeModal)


async def test_probe_modal_says_what_it_will_do_and_validates():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        modal = app.screen
        assert isinstance(modal, ProbeModal)
        assert modal.agent_name == "build-us-0006"
        assert "TLS handshake: off" in screen_text(app)  # in words, for monochrome
        await pilot.press(*"db.internal", "tab", *"5432", "tab", "space")
        await pilot.pause()
        assert "TLS handshake: on" in screen_text(app)
        does = static_text(app, "#probe-does")
        assert does.startswith(
            "Will ask agent build-us-0006 to open a TLS handshake with db.internal:5432"
        )
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("p", "enter")  # no host yet: refuses to send
        await pilot.pause()
        assert "Give a host" in static_text(app, "#probe-error")


def test_probe_result_shows_timings_and_failure_class():
    ok = ProbeResult(
        host="db",
        port=5432,
        tls=True,
        ok=True,
        resolved=["10.0.0.5"],
        dns_ms=1.25,
        connect_ms=3.5,
        tls_ms=12.0,
        peer_cert_subject="CN=db",
        peer_cert_not_after=1_800_000_000 + 3 * 3600,
    )
    text = "\n".join(result_lines("edge-1", ok, now=1_800_000_000))
    assert "TLS db:5432 from edge-1: OK" in text
    assert "dns        1.2 ms" in text or "dns        1.3 ms" in text
    assert "tls        12.0 ms" in text and "CN=db" in text
    assert "valid to   2027-01-15 11:00Z (in 3h)  ⚠ renew soon" in text
    bad = ProbeResult(
        host="db", port=5432, tls=False, ok=False, failure="refused", error="Connection refused"
    )
    text = "\n".join(result_lines("edge-1", bad))
    assert "FAILED (refused)" in text and "error: Connection refused" in text


async def test_probe_result_modal_renders():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        result = ProbeResult(
            host="db", port=1, tls=False, ok=False, failure="refused", error="[Errno 111] refused"
        )
        app.push_screen(ProbeResultModal("edge-1", result))
        await pilot.pause()
        assert "FAILED (refused)" in screen_text(app)
        assert "error: [Errno 111] refused" in screen_text(app)  # brackets are not markup
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_revoke_needs_the_name_typed_in_full():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("x")
        assert isinstance(app.screen, RevokeModal)
        assert "Will revoke agent build-us-0006" in screen_text(app)
        go = app.screen.query_one("#revoke-go")
        await pilot.press(*"build-us-000")
        assert go.disabled
        await pilot.press("enter")
        assert isinstance(app.screen, RevokeModal)  # not confirmed
        await pilot.press("6")
        assert not go.disabled
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_pin_modal_describes_agent_or_pool_scope():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("v")
        assert isinstance(app.screen, PinModal)
        assert "Will pin agent build-us-0006 to version 1.4.2." in static_text(app, "#pin-does")
        app.screen.query_one("#pin-pool").value = True
        await pilot.pause()
        assert "every agent in pool build-us" in static_text(app, "#pin-does")
        await pilot.press("escape")


async def test_logs_modal_names_the_directory(tmp_path):
    app = sample_app(logs_dir=tmp_path / "logs")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("l")
        assert isinstance(app.screen, LogsModal)
        assert str(tmp_path / "logs") in screen_text(app).replace("\n", "")
        await pilot.press("escape")


async def test_log_viewer_search_keeps_matching_lines(tmp_path):
    app = sample_app(logs_dir=tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        path = app.save_logs("edge/1", "alpha one\nbeta two\nALPHA three\n")
        assert path.parent == tmp_path and path.name.startswith("edge_1-")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        app.push_screen(LogViewer("edge/1", path))
        await pilot.pause()
        assert "3 of 3 lines" in static_text(app, "#log-count")
        await pilot.press("slash", *"alpha")
        await pilot.pause()
        assert "2 of 3 lines match 'alpha'" in static_text(app, "#log-count")
    assert matching_lines(["a", "B"], "b") == ["B"]


async def test_keys_can_be_remapped_with_a_keymap():
    app = sample_app()
    app.set_keymap({"fleet.probe": "P", "fleet.revoke": "ctrl+r"})
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        assert isinstance(app.screen, FleetScreen)  # the old key no longer probes
        await pilot.press("P")
        assert isinstance(app.screen, ProbeModal)
        await pilot.press("escape", "ctrl+r")
        assert isinstance(app.screen, RevokeModal)


async def test_question_mark_lists_the_dashboards_keys_as_mapped_and_what_is_unavailable():
    app = sample_app(role="viewer")
    app.set_keymap({"fleet.probe": "P"})
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, KeysScreen)
        text = screen_text(app)
        assert "Filter" in text and "Detail" in text and "Connections" not in text
        assert "Conns" in text and "Sort by column" in text
        assert "Scroll" not in text  # Textual's container keys are not ours to list
        probe = next(line for line in text.splitlines() if "Probe" in line)
        assert "P " in probe and "needs operator" in probe
        await pilot.press("question_mark")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)
        await pilot.press("down", "enter", "question_mark")
        await pilot.pause()
        text = screen_text(app)
        assert "Back" in text and "Filter" not in text
        assert "Scroll" in text  # the detail scrolls at 80x24, and says so
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, KeysScreen)


async def test_wall_mode_locks_every_input_but_quit_and_turns_pages():
    app = sample_app(n=120, wall=True)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        wall = app.screen
        assert isinstance(wall, WallScreen)
        text = screen_text(app)
        assert "connected" in text and "degraded" in text and "alerts" in text
        assert wall.pages > 1
        first = static_text(app, "#wall-list").splitlines()[0]
        assert first.startswith("✗ offline")  # unhealthy first
        for key in ("p", "x", "slash", "enter", "c", "ctrl+p", "question_mark", "a"):
            await pilot.press(key)
        await pilot.pause()
        assert app.screen is wall and len(app.screen_stack) == 2
        page = wall.page
        await pilot.pause(1.3)
        assert wall.page != page  # turned on its own
        await pilot.press("q")
    assert app.return_code == 0 or app.return_code is None


async def test_command_palette_lists_actions_and_views():
    app = sample_app(role="admin")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert commands["Probe from agent on build-us-0006"].startswith("Asks the agent to open")
        assert commands["Revoke agent on build-us-0006"].startswith("Revokes the agent")
        for title in ("Filter", "Group by pool", "Alerts", "Connections", "Sort by queue"):
            assert title in commands
        await pilot.press("ctrl+p")
        await pilot.pause()
        await pilot.press(*"group by pool", "enter")
        await pilot.pause(0.3)
        assert app.model.group_by_pool


async def test_keys_typed_right_after_p_land_in_the_probe_modal():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        burst = [("p", "p"), *((c if c != "." else "full_stop", c) for c in "db.internal")]
        for key, char in burst:
            app.post_message(events.Key(key, char))
        await pilot.pause(0.3)
        assert isinstance(app.screen, ProbeModal)
        assert app.screen.query_one("#probe-host", Input).value == "db.internal"
