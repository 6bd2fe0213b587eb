"""The rollouts view on fed data: each rollout's state and progress, the selected one's
waves and agents, and the keys that pause, resume and abort it (the REST calls they
make, the confirmation, the refusals)."""

from __future__ import annotations

import pytest

from fleet.protocol import RolloutUpdate, replace, to_builtins
from fleet_tui.keymap import binding_ids
from fleet_tui.rollouts import progress_bar, rollout_phase, upgrade_mark, upgrade_words
from fleet_tui.sample import NOW, sample_rollouts, sample_snapshot
from fleet_tui.screens.decisions import AbortRolloutModal
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.rollouts import RolloutsScreen, rollouts_summary

from .conftest import sample_app
from .helpers import Recorder, notices, static_text, wait_for_text
from .test_live import until

ETL = "ro_3f9a1c07e2"
"""The sample's rollout of 1.5.0 to pool etl, in its first wave."""


def answering(state: str):
    """A control plane that answers a rollout action with the rollout in ``state``."""
    rollouts = {r.id: r for r in sample_rollouts()}

    def answer(method, path, body):
        rollout_id = path.split("/")[3]
        return 200, to_builtins(replace(rollouts[rollout_id], state=state, detail="by test"))

    return Recorder(answer)


async def open_rollouts(app, pilot):
    await pilot.press("R")
    await pilot.pause()
    assert isinstance(app.screen, RolloutsScreen)
    return app.screen


def test_words_for_rollouts_and_upgrades():
    assert progress_bar(1, 0, 3, 9) == "███░░░░░░"
    assert progress_bar(0, 1, 10, 10) == "▓░░░░░░░░░"  # one failure never rounds away
    assert progress_bar(3, 0, 3, 5) == "█████"
    assert (
        rollouts_summary(sample_rollouts()) == "4 rollouts: 1 halted, 1 running, 1 waiting, 1 done"
    )
    assert rollouts_summary([]).startswith("No rollouts: an admin starts one")
    agents = {a.id: a for a in sample_snapshot(50, upgrades=True).agents}
    assert upgrade_words(agents["ag-00013"].upgrade) == "upgrading to 1.5.0: installing"
    assert upgrade_words(agents["ag-00018"].upgrade) == (
        "upgrading to 1.5.0: downloading (4.1 of 9.8 MiB)"
    )
    assert upgrade_words(agents["ag-00000"].upgrade) == (
        "rolled back from 1.5.0: exited at start twice (exit code 1)"
    )
    assert upgrade_words(agents["ag-00003"].upgrade) is None  # it runs 1.5.0
    assert upgrade_words(replace(agents["ag-00003"].upgrade, step="refused", detail="busy")) == (
        "upgrade to 1.5.0 refused: busy"
    )
    assert upgrade_mark(agents["ag-00013"]) == ("→1.5.0", "")
    assert upgrade_mark(agents["ag-00000"]) == ("↺1.4.2", "warn")
    assert upgrade_mark(agents["ag-00003"]) is None
    etl = sample_rollouts()[0]
    assert rollout_phase(replace(etl, state="soaking", phase_ends_at=NOW + 470), NOW) == (
        "soak ends in 8m"
    )
    assert rollout_phase(replace(etl, state="pausing", phase_ends_at=NOW - 1), NOW) == (
        "next wave now"
    )
    assert rollout_phase(etl, NOW) is None


async def test_the_view_lists_halted_first_and_shows_the_selected_waves_and_agents():
    app = sample_app(upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_rollouts(app, pilot)
        text = await wait_for_text(pilot, app, "4 rollouts: 1 halted")
        assert "4 rollouts: 1 halted, 1 running, 1 waiting, 1 done" in text
        lines = text.splitlines()
        states = [line.split()[1] for line in lines if line[:3].strip() in "✗▶○✓" and "→" in line]
        assert states[:4] == ["halted", "wave", "waiting", "done"], lines
        # The halted one is selected: why it halted, whole, and its canary rolled back.
        assert screen.selected().pool == "build-eu"
        assert "build-eu-0000 (canary) rolled back: exited at start twice (exit code 1)" in text
        assert "canary  ▓▓▓▓▓▓▓▓▓▓  0/1  1 failed" in text
        # The waiting one says until when.
        assert "pool deploy is outside its maintenance windows until Tue 02:00" in text
        await pilot.press("down")
        await pilot.pause()
        assert screen.selected().id == ETL
        text = await wait_for_text(pilot, app, "etl → 1.5.0  ro_3f9a1c07e2")
        assert "etl → 1.5.0  ro_3f9a1c07e2" in text
        assert "canary  ██████████  1/1  done" in text
        assert "wave 1  ███░░░░░░░  1/3  upgrading" in text
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_at_160_columns_the_waves_and_the_agents_sit_side_by_side():
    app = sample_app(upgrades=True)
    async with app.run_test(size=(160, 50)) as pilot:
        await open_rollouts(app, pilot)
        await pilot.press("down")
        await pilot.pause()
        lines = (await wait_for_text(pilot, app, "↻ upgrading  etl-0013")).splitlines()
        [row] = [line for line in lines if "canary  ████" in line]
        # The agents in trouble or upgrading come first, beside the waves.
        assert "↻ upgrading  etl-0013  wave 1  installing (from 1.4.2)" in row
        assert any("✓ upgraded   etl-0003  canary  runs 1.5.0 (from 1.4.2)" in li for li in lines)


async def test_an_update_on_the_stream_moves_the_rollout_and_the_cursor_stays():
    app = sample_app(upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_rollouts(app, pilot)
        await pilot.press("down")
        etl = app.model.rollouts[ETL]
        app.feed(
            RolloutUpdate(seq=101, rollout=replace(etl, state="paused", detail="paused by bob"))
        )
        app.tick()
        await pilot.pause()
        text = await wait_for_text(pilot, app, "‖ paused   etl → 1.5.0")
        assert "‖ paused   etl → 1.5.0" in text
        assert "paused by bob" in text
        assert screen.selected().id == ETL


async def test_p_and_r_pause_and_resume_the_selected_rollout():
    recorder = answering("paused")
    app = sample_app(role="operator", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.rest = recorder.client()
        screen = await open_rollouts(app, pilot)
        await pilot.press("down", "p")
        said = "Paused the rollout of 1.5.0 to pool etl: paused."
        await until(pilot, lambda: said in notices(app), what="the pause's answer")
        assert recorder.calls == [("POST", f"/v1/rollouts/{ETL}/pause", None)]
        assert app.model.rollouts[ETL].state == "paused"  # the answer, shown at once
        await wait_for_text(pilot, app, "‖ paused")
        recorder.answer = answering("wave").answer
        await pilot.press("r")
        await until(pilot, lambda: len(recorder.calls) == 2, what="the resume")
        await until(pilot, lambda: app.model.rollouts[ETL].state == "wave", what="its answer")
        assert recorder.calls[-1] == ("POST", f"/v1/rollouts/{ETL}/resume", None)
        assert app.model.rollouts[ETL].state == "wave"
        assert screen.selected().id == ETL


async def test_x_asks_before_it_aborts_and_escape_keeps_the_rollout():
    recorder = answering("aborted")
    app = sample_app(role="operator", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.rest = recorder.client()
        await open_rollouts(app, pilot)
        await pilot.press("down", "x")
        await pilot.pause()
        assert isinstance(app.screen, AbortRolloutModal)
        await wait_for_text(pilot, app, "Abort the rollout of 1.5.0 to pool etl?")
        assert static_text(app, "#abort-does") == (
            "Rollout ro_3f9a1c07e2 stops now: no further wave starts, and it rolls back "
            "the agents it upgraded or is upgrading (4: etl-0003, etl-0008, etl-0013, "
            "etl-0018). It cannot be resumed; the audit log keeps who aborted it."
        )
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, RolloutsScreen) and recorder.calls == []
        await pilot.press("x", "enter")  # the Abort button has the focus
        await until(pilot, lambda: app.model.rollouts[ETL].state == "aborted", what="abort")
        assert recorder.calls == [("POST", f"/v1/rollouts/{ETL}/abort", None)]
        assert app.model.rollouts[ETL].state == "aborted"


async def test_a_finished_rollout_is_not_aborted_and_the_server_refusal_is_shown():
    def refuse(method, path, body):
        return 409, {"detail": "rollout ro_3f9a1c07e2 is paused already: nothing to pause"}

    recorder = Recorder(refuse)
    app = sample_app(role="operator", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.rest = recorder.client()
        await open_rollouts(app, pilot)
        await pilot.press("x")  # on the halted one
        await pilot.pause()
        assert isinstance(app.screen, RolloutsScreen)
        assert "Rollout ro_81d2e4b6a0 is halted already: nothing to abort." in notices(app)
        await pilot.press("down", "p")
        said = "rollout ro_3f9a1c07e2 is paused already: nothing to pause (HTTP 409)"
        await until(pilot, lambda: said in notices(app), what="the refusal")
        assert app.model.rollouts[ETL].state == "wave"  # unchanged


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("p", "Pause rollout needs the operator role; you are a viewer"),
        ("r", "Resume rollout needs the operator role; you are a viewer"),
        ("x", "Abort rollout needs the operator role; you are a viewer"),
    ],
)
async def test_a_viewer_is_told_which_role_each_key_needs(key, says):
    recorder = answering("paused")
    app = sample_app(role="viewer", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.rest = recorder.client()
        await open_rollouts(app, pilot)
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, RolloutsScreen), "no dialog opened"
        assert any(says in n for n in notices(app)), notices(app)
        assert recorder.calls == []
        # The palette lists them as unavailable, saying why.
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert commands["Abort rollout"].startswith("Unavailable: Abort rollout needs")


async def test_agent_keys_do_not_reach_the_hidden_fleet_cursor():
    app = sample_app(role="admin", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_rollouts(app, pilot)
        assert app.current_agent() is None
        assert app.check_action("logs", ()) is False
        await pilot.press("l")
        await pilot.pause()
        assert isinstance(app.screen, RolloutsScreen)
        assert any("This view lists rollouts" in n for n in notices(app))


async def test_the_palette_opens_the_view_and_the_keys_have_ids():
    assert {"fleet.rollouts", "rollouts.pause", "rollouts.resume", "rollouts.abort"} <= (
        binding_ids()
    )
    app = sample_app(upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        [command] = [c for c in app.get_system_commands(app.screen) if c.title == "Rollouts"]
        command.callback()
        await pilot.pause()
        assert isinstance(app.screen, RolloutsScreen)


async def test_with_no_rollout_the_view_says_how_one_starts():
    app = sample_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await open_rollouts(app, pilot)
        await wait_for_text(
            pilot, app, "No rollouts: an admin starts one with fleet rollouts start"
        )
