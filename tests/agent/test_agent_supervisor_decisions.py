"""The supervisor's and the agent's decisions on ``STATE/versions/state.json``, alone.

Pure functions of the state, the exit code and the time (agent/versions.py,
agent/supervisor.py); the process tests (test_agent_upgrade.py) run them for real.
"""

from __future__ import annotations

import json

import pytest

from agent.cli import _parser, child_argv
from agent.supervisor import (
    BACKOFF_CAP_S,
    after_exit,
    before_start,
    crash_delay,
    past_deadline,
)
from agent.versions import (
    EXIT_RESTART,
    LastStep,
    Trial,
    Versions,
    VersionState,
    begin_trial,
    confirm,
    interrupted,
    roll_back,
    trial_of,
)

NOW = 1_000_000.0


def on_trial(starts: int = 1, deadline_s: float = 120.0) -> VersionState:
    state = begin_trial(VersionState(active=None), "0.2.0", "0.1.0", deadline_s, NOW)
    assert state.trial is not None
    return state._replace(trial=state.trial._replace(starts=starts))


def installed(tmp_path, *versions: str) -> Versions:
    store = Versions(tmp_path)
    for version in versions:
        (store.path(version) / "agent").mkdir(parents=True)
        (store.path(version) / "agent" / "__init__.py").write_text("")
    return store


def test_begin_trial_keeps_the_running_version_as_previous():
    state = begin_trial(VersionState(active="0.2.0"), "0.3.0", "0.2.0", 60, NOW)
    assert state.active == "0.3.0" and state.previous == "0.2.0"
    assert state.trial == Trial("0.3.0", "0.2.0", NOW, 60)
    assert state.last == LastStep("0.3.0", "restarting", NOW, from_version="0.2.0")
    assert trial_of(state) is state.trial


def test_a_clean_exit_during_a_trial_is_a_failure_and_the_second_rolls_back():
    first = after_exit(on_trial(starts=1), 0, stopping=False, ran_s=0.5, crashes=0, now=NOW)
    assert first.exit_code is None and first.delay_s > 0
    assert first.state.active == "0.2.0"  # tried once more
    second = after_exit(on_trial(starts=2), 1, stopping=False, ran_s=0.5, crashes=1, now=NOW)
    assert second.exit_code is None and second.delay_s == 0
    assert second.state.active is None and second.state.trial is None
    assert second.state.last is not None
    assert second.state.last.step == "rolled_back" and second.state.last.version == "0.2.0"
    assert "exited (exit code 1) 2 times" in second.state.last.detail


@pytest.mark.parametrize("code", [0, 2, 3, 4, 1, -9])
def test_a_stop_on_request_ends_the_supervisor_even_during_a_trial(code):
    done = after_exit(on_trial(), code, stopping=True, ran_s=5, crashes=0, now=NOW)
    assert done.exit_code == (code if code >= 0 else 128 + 9)
    assert done.state == on_trial()  # a stop is no verdict on the version


@pytest.mark.parametrize("code", [0, 2, 3, 4])
def test_final_codes_end_the_supervisor_outside_a_trial(code):
    done = after_exit(VersionState(), code, stopping=False, ran_s=5, crashes=0, now=NOW)
    assert done.exit_code == code


def test_exit_75_restarts_at_once_and_is_no_failure_even_on_trial():
    done = after_exit(VersionState(), EXIT_RESTART, stopping=False, ran_s=1, crashes=3, now=NOW)
    assert done.exit_code is None and done.delay_s == 0
    trial = after_exit(
        on_trial(starts=2), EXIT_RESTART, stopping=False, ran_s=1, crashes=0, now=NOW
    )
    assert trial.state == on_trial(starts=2) and trial.delay_s == 0
    stopped = after_exit(VersionState(), EXIT_RESTART, stopping=True, ran_s=1, crashes=0, now=NOW)
    assert stopped.exit_code == 0


def test_crashes_back_off_from_1_s_doubling_to_60_s_and_reset_after_a_long_run():
    delays = [crash_delay(n) for n in range(8)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60] and max(delays) == BACKOFF_CAP_S
    crashed = after_exit(VersionState(), 1, stopping=False, ran_s=2, crashes=3, now=NOW)
    assert crashed.exit_code is None and crashed.delay_s == 8
    long_run = after_exit(VersionState(), 1, stopping=False, ran_s=3600, crashes=9, now=NOW)
    assert long_run.delay_s == 1


def test_the_deadline_rolls_back_an_unconfirmed_trial_only():
    state = on_trial(deadline_s=30)
    assert past_deadline(state, NOW + 29.9) is None
    late = past_deadline(state, NOW + 30)
    assert late is not None and late.state.active is None
    assert late.state.last is not None and "within 30 s" in late.state.last.detail
    confirmed = confirm(state, "0.2.0", NOW + 10)
    assert past_deadline(confirmed, NOW + 3600) is None


def test_confirm_ends_the_trial_of_the_running_version_only():
    state = on_trial()
    assert confirm(state, "0.1.0", NOW) == state  # the old one, still up for a moment
    done = confirm(state, "0.2.0", NOW + 5)
    assert done.trial is None and done.active == "0.2.0" and done.previous is None
    assert done.last == LastStep("0.2.0", "running", NOW + 5, from_version="0.1.0")


def test_after_the_command_driver_the_restarted_agent_says_whether_it_worked():
    restarting = VersionState(last=LastStep("0.2.0", "restarting", NOW, from_version="0.1.0"))
    running = confirm(restarting, "0.2.0", NOW).last
    assert running is not None and running.step == "running"
    failed = confirm(restarting, "0.1.0", NOW).last
    assert failed is not None and failed.step == "failed" and "still runs 0.1.0" in failed.detail


def test_a_step_left_half_way_by_a_restart_becomes_failed():
    state = VersionState(last=LastStep("0.2.0", "downloading", NOW, reported=True))
    after = interrupted(state, NOW + 1)
    assert after.last is not None and after.last.step == "failed" and not after.last.reported
    done = VersionState(last=LastStep("0.2.0", "running", NOW))
    assert interrupted(done, NOW) == done


def test_rollback_goes_to_previous_and_previous_becomes_the_base_install():
    state = VersionState(active="0.3.0", previous="0.2.0")
    back = roll_back(state, "canary unhealthy", NOW)
    assert back.active == "0.2.0" and back.previous is None and back.trial is None
    assert back.last == LastStep("0.3.0", "rolled_back", NOW, detail="canary unhealthy")


def test_before_start_counts_trial_starts_and_leaves_a_missing_version(tmp_path):
    store = installed(tmp_path, "0.2.0")
    counted = before_start(on_trial(starts=0), store, NOW)
    assert counted.state.trial is not None and counted.state.trial.starts == 1
    gone = before_start(VersionState(active="0.3.0", previous="0.9.9"), store, NOW)
    assert gone.state.active is None  # neither is installed: the base install
    assert gone.state.last is not None and "missing" in gone.state.last.detail
    kept = before_start(VersionState(active="0.3.0", previous="0.2.0"), store, NOW)
    assert kept.state.active == "0.2.0"


def test_state_json_round_trips_and_a_damaged_file_means_the_base_install(tmp_path):
    store = Versions(tmp_path)
    assert store.read() == VersionState()
    state = on_trial()._replace(last=LastStep("0.2.0", "failed", NOW, "bad signature", "0.1.0"))
    store.update(lambda s: state)
    assert store.read() == state
    doc = json.loads(store.state_file.read_text())
    assert doc["trial"]["from"] == "0.1.0" and doc["active"] == "0.2.0"
    store.state_file.write_text("{not json")
    assert store.read() == VersionState()


def test_prune_keeps_active_previous_and_trial(tmp_path):
    store = installed(tmp_path, "0.1.5", "0.2.0", "0.3.0", "0.4.0")
    removed = store.prune(VersionState(active="0.3.0", previous="0.2.0"))
    assert removed == ["0.1.5", "0.4.0"]
    assert store.installed("0.2.0") and store.installed("0.3.0")


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--state-dir", "rel/dir"],
        [
            "run",
            "--state-dir",
            "/s",
            "--config",
            "/c.toml",
            "--no-samples",
            "--command-timeout",
            "90s",
            "--allow-host",
            "*.db",
            "--allow-host",
            "a.b",
            "--max-queue",
            "4",
            "--proxy",
            "http://p:3128",
            "--log-level",
            "debug",
        ],
    ],
)
def test_the_child_gets_the_same_run_flags_with_an_absolute_state_dir(argv):
    args = _parser().parse_args(argv)
    again = _parser().parse_args(["run", *child_argv(args)])
    assert again.state_dir.is_absolute()
    for name, value in vars(args).items():
        if name not in ("state_dir", "agent_action"):
            assert getattr(again, name) == value, name
    assert again.state_dir == args.state_dir.absolute()
