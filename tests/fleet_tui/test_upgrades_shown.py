"""An agent's upgrade and remediations where people look at the agent: the fleet
table's version column, the agent's detail, and the wall (with a halted rollout and
the approvals waiting), on fed data."""

from __future__ import annotations

from fleet.protocol import RemediationUpdate, replace, to_builtins
from fleet_tui.app import FleetApp
from fleet_tui.sample import NOW, sample_remediations, sample_snapshot
from fleet_tui.screens.agent_detail import AgentDetailScreen
from fleet_tui.screens.wall import WallScreen

from .conftest import fixed_model, sample_app
from .helpers import Recorder, static_text, table_lines, wait_for_text
from .test_live import until


async def test_the_version_column_marks_an_upgrade_under_way_or_rolled_back():
    app = sample_app(upgrades=True)
    async with app.run_test(size=(120, 24)) as pilot:
        await pilot.press("slash", *"etl-00", "enter")
        await pilot.pause()
        rows = {line.split()[2]: line for line in table_lines(app.screen.table)[1:] if line}
        assert rows["etl-0013"].endswith("→1.5.0")  # upgrading to 1.5.0
        assert rows["etl-0018"].endswith("→1.5.0")
        assert rows["etl-0023"].endswith("1.4.2")  # not its turn yet
        await pilot.press("escape", "slash", *"build-eu-0000", "enter")
        await pilot.pause()
        [row] = [line for line in table_lines(app.screen.table) if "build-eu-0000" in line]
        assert row.endswith("↺1.4.2")  # rolled back: runs 1.4.2 again


async def test_the_detail_shows_the_latest_step_the_rollout_and_the_remediations():
    app = sample_app(upgrades=True)
    async with app.run_test(size=(200, 60)) as pilot:
        app.open_detail("ag-00000")
        await pilot.pause()
        text = await wait_for_text(pilot, app, "rolled back from 1.5.0")
        lines = [" ".join(line.split()) for line in text.splitlines()]
        upgrade = "upgrade rolled back from 1.5.0: exited at start twice (exit code 1) · 23m ago"
        assert any(line.startswith(upgrade) for line in lines), lines
        rollout = "rollout build-eu → 1.5.0 (halted): canary, rolled back"
        assert any(line.startswith(rollout) for line in lines), lines
        # No remediation of this agent: no section for them.
        assert not app.screen.query_one("#detail-remediations-label").display

        await pilot.press("escape")
        # Under load the escape could pop the next detail instead of this one.
        await until(pilot, lambda: not isinstance(app.screen, AgentDetailScreen), what="back")
        app.open_detail("ag-00001")
        # The detail fills in on its first refresh: under load, later than one pause.

        def shown() -> bool:
            if not isinstance(app.screen, AgentDetailScreen) or app.screen.agent_id != "ag-00001":
                return False
            labels = app.screen.query("#detail-remediations-label")
            return bool(labels) and labels.first().display

        await until(pilot, shown, what="ag-00001's remediations")
        lines = static_text(app, "#detail-remediations").splitlines()
        assert lines == [
            "⚑ waits for approval  restart · stale or offline for 3 checks · budget spent: "
            "1 restart per agent per hour, 4m ago (I: inbox)",
            "⊘ rejected  restart · stale or offline for 3 checks · rejected by bob 45m ago: "
            "network blip in rack 4, leave it",
            "✓ done  restart · stale or offline for 3 checks · by itself 55m ago: restarted; "
            "back after 4 s",
        ]
        # A decision made elsewhere shows on the agent at the next tick.
        waiting = sample_remediations()[0]
        approved = replace(
            waiting, state="running", decided_by="carol", decided_at=NOW, detail="sent"
        )
        app.feed(RemediationUpdate(seq=101, remediation=approved))
        app.tick()
        await pilot.pause()
        first = static_text(app, "#detail-remediations").splitlines()[0]
        assert first == (
            "↻ running  restart · stale or offline for 3 checks · approved by carol <1m ago: sent"
        )


async def test_an_agent_with_no_upgrade_shows_no_upgrade_field():
    app = sample_app()
    async with app.run_test(size=(200, 60)) as pilot:
        app.open_detail("ag-00013")
        await pilot.pause()
        text = await wait_for_text(pilot, app, "pinned version")
        assert " upgrade " not in text and " rollout " not in text


async def test_the_wall_shows_a_halted_rollout_and_the_approvals_waiting():
    app = FleetApp(model=fixed_model(), wall=True, tick=0.2, page_s=3600)
    app.feed(sample_snapshot(50, upgrades=True))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "!!" in static_text(app, "#wall-alerts"), what="the wall")
        assert isinstance(app.screen, WallScreen)
        box = static_text(app, "#wall-alerts").splitlines()
        assert box == [
            "!!  1m ago  connection warehouse: no healthy agent in pool etl-dr",
            "!! 23m ago  rollout build-eu → 1.5.0 halted: build-eu-0000 (canary) rolled "
            "back: exited at start twice (exit code 1)",
            "!   4m ago  ⚑ 2 to approve: restart build-us-0001, move the connections of "
            "build-eu-0005",
        ]
        text = await wait_for_text(pilot, app, "rolled ba…")
        assert "rollout build-eu → 1.5.0 halted: build-eu-0000 (canary) rolled ba…" in text
        # The rolled-back agent says so on its row.
        [row] = [li for li in static_text(app, "#wall-list").splitlines() if "build-eu-0000" in li]
        assert "rolled back from 1.5.0: exited at start" in row


async def test_on_the_wall_a_halt_older_than_a_day_is_not_called_out():
    snapshot = sample_snapshot(50, upgrades=True)
    old = [
        replace(r, finished_at=NOW - 2 * 86400) if r.state == "halted" else r
        for r in snapshot.rollouts
    ]
    app = FleetApp(model=fixed_model(), wall=True, tick=0.2, page_s=3600)
    app.feed(replace(snapshot, rollouts=old, remediations=[]))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: "!!" in static_text(app, "#wall-alerts"), what="the wall")
        assert "rollout" not in static_text(app, "#wall-alerts")
        assert "to approve" not in static_text(app, "#wall-alerts")


async def test_the_detail_adds_the_older_remediations_the_control_plane_keeps():
    old = replace(
        sample_remediations()[4], id="rem_old", agent_id="ag-00013", agent_name="etl-0013",
        pool="etl", created_at=NOW - 7200, finished_at=NOW - 7190,
    )  # fmt: skip
    app = sample_app(upgrades=True)

    def answer(method, path, body):
        if path == "/v1/agents/ag-00013":
            agent = to_builtins(app.model.agents["ag-00013"])
            return 200, {"agent": agent, "events": [], "remediations": [to_builtins(old)]}
        return 200, {}

    recorder = Recorder(answer)
    async with app.run_test(size=(120, 60)) as pilot:
        app.rest = recorder.client()
        app.open_detail("ag-00013")
        await pilot.pause()
        assert isinstance(app.screen, AgentDetailScreen)
        await until(pilot, lambda: "2h ago" in static_text(app, "#detail-remediations"))
        assert static_text(app, "#detail-remediations") == (
            "✓ done  restart · stale or offline for 3 checks · by itself 2h ago: restarted; "
            "back after 4 s"
        )
        assert ("GET", "/v1/agents/ag-00013", None) in recorder.calls
