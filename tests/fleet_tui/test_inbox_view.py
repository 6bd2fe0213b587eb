"""The remediation inbox on fed data: what waits for approval first, then the recent
ones; the badge in the header; approve and reject (the REST calls they make, the
dialog, the refusals); Enter opens the agent."""

from __future__ import annotations

import pytest

from fleet.protocol import RemediationUpdate, replace, to_builtins
from fleet_tui.app import attention_badges
from fleet_tui.keymap import binding_ids
from fleet_tui.remediations import decided_words
from fleet_tui.sample import NOW, sample_remediations
from fleet_tui.screens.agent_detail import AgentDetailScreen
from fleet_tui.screens.decisions import DecisionModal
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.inbox import InboxScreen, inbox_summary

from .conftest import sample_app
from .helpers import Recorder, notices, static_text, wait_for_text
from .test_live import until

RESTART = "rem_4c1f8a2e90"
"""The sample's restart of build-us-0001, waiting: its budget is spent."""


def deciding():
    """A control plane that answers a decision with the remediation decided."""
    remediations = {r.id: r for r in sample_remediations()}

    def answer(method, path, body):
        rem_id, verb = path.split("/")[3:5]
        state = "running" if verb == "approve" else "rejected"
        decided = replace(
            remediations[rem_id],
            state=state,
            decided_by="carol",
            decided_at=NOW,
            detail=body["note"] or verb,
        )
        return 200, to_builtins(decided)

    return Recorder(answer)


async def open_inbox(app, pilot):
    await pilot.press("I")
    await pilot.pause()
    assert isinstance(app.screen, InboxScreen)
    return app.screen


def test_words_for_the_inbox():
    assert inbox_summary(2, 3) == "2 waiting for approval · 3 recent"
    assert inbox_summary(0, 3) == "Nothing waits for approval · 3 recent"
    assert inbox_summary(0, 0).startswith("Nothing waits for approval. A pool's remediation")
    by = {r.id: r for r in sample_remediations()}
    assert decided_words(by["rem_71ab3e08d6"], NOW) == (
        "rejected by bob 45m ago: network blip in rack 4, leave it"
    )
    assert decided_words(by["rem_d40c9f2a17"], NOW) == (
        "by itself 55m ago: restarted; back after 4 s"
    )


async def test_waiting_ones_come_first_with_why_and_the_header_counts_them():
    app = sample_app(upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "⚑ 2 to approve" in app.sub_title  # on the fleet view already
        screen = await open_inbox(app, pilot)
        text = await wait_for_text(pilot, app, "Recent (3)")
        assert "2 waiting for approval · 3 recent" in text
        assert text.index("Waiting for approval (2)") < text.index("Recent (3)")
        assert "⚑ restart build-us-0001 · pool build-us" in text
        assert "waits: budget spent: 1 restart per agent per" in text
        assert "1m ago, expires in 59m" in text
        assert "⚑ move the connections of build-eu-0005 · pool build-eu" in text
        assert "⊘ restart build-us-0001 · pool build-us · rejected" in text
        assert "rejected by bob 45m ago: network blip in" in text
        assert "✗ renew the certificate of etl-0003 · pool etl · failed" in text
        assert screen.selected().id == RESTART  # the one waiting longest


async def test_a_approves_with_a_note_and_the_inbox_and_header_follow():
    recorder = deciding()
    app = sample_app(role="operator", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.rest = recorder.client()
        screen = await open_inbox(app, pilot)
        await pilot.press("a")
        await pilot.pause()
        assert isinstance(app.screen, DecisionModal)
        await wait_for_text(pilot, app, "Approve: restart build-us-0001?")
        assert static_text(app, "#decision-why") == (
            "stale or offline for 3 checks (queued 4m ago, expires in 1 day). "
            "Waits for approval: budget spent: 1 restart per agent per hour."
        )
        assert static_text(app, "#decision-does").startswith(
            "Runs it now, as you: the control plane will restart build-us-0001 (pool build-us)."
        )
        await pilot.press(*"checked the host", "enter")
        said = "Approved: restart build-us-0001 (running)."
        await until(pilot, lambda: said in notices(app), what="the approval's answer")
        assert recorder.calls == [
            ("POST", f"/v1/remediations/{RESTART}/approve", {"note": "checked the host"})
        ]
        assert isinstance(app.screen, InboxScreen)
        assert app.model.remediations[RESTART].state == "running"
        app.tick()
        await pilot.pause()
        text = await wait_for_text(pilot, app, "approved by carol")
        assert "1 waiting for approval · 4 recent" in text
        assert "⚑ 1 to approve" in app.sub_title
        assert "approved by carol" in text
        assert screen.selected().id == "rem_9b03d7e1c4"  # on to the next one waiting


async def test_r_rejects_after_the_dialog_and_escape_leaves_it_waiting():
    recorder = deciding()
    app = sample_app(role="operator", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.rest = recorder.client()
        await open_inbox(app, pilot)
        await pilot.press("down", "r")
        await pilot.pause()
        assert isinstance(app.screen, DecisionModal)
        await wait_for_text(pilot, app, "Reject: move the connections of build-eu-0005?")
        assert static_text(app, "#decision-does").startswith(
            "It will not run: build-eu-0005 is left as it is."
        )
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen) and recorder.calls == []
        assert app.model.remediations["rem_9b03d7e1c4"].state == "pending_approval"
        await pilot.press("r", "enter")
        await until(pilot, lambda: any(n.startswith("Rejected") for n in notices(app)))
        assert recorder.calls == [("POST", "/v1/remediations/rem_9b03d7e1c4/reject", {"note": ""})]
        assert app.model.remediations["rem_9b03d7e1c4"].state == "rejected"


async def test_only_a_waiting_one_is_decided_and_the_server_refusal_is_shown():
    def refuse(method, path, body):
        return 409, {"detail": "agent build-us-0001 is offline: a restart cannot reach it"}

    recorder = Recorder(refuse)
    app = sample_app(role="operator", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.rest = recorder.client()
        await open_inbox(app, pilot)
        await pilot.press("a", "enter")
        await until(pilot, lambda: any("a restart cannot reach it" in n for n in notices(app)))
        assert app.model.remediations[RESTART].state == "pending_approval"
        await pilot.press("down", "down", "a")  # the failed renewal, under Recent
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen)
        assert any("This remediation is failed: only one that waits" in n for n in notices(app))
        assert len(recorder.calls) == 1


@pytest.mark.parametrize(
    ("key", "says"),
    [
        ("a", "Approve remediation needs the operator role; you are a viewer"),
        ("r", "Reject remediation needs the operator role; you are a viewer"),
    ],
)
async def test_a_viewer_is_told_which_role_each_key_needs(key, says):
    recorder = deciding()
    app = sample_app(role="viewer", upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        app.rest = recorder.client()
        await open_inbox(app, pilot)
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen), "no dialog opened"
        assert any(says in n for n in notices(app)), notices(app)
        assert recorder.calls == []
        commands = {c.title: c.help for c in app.get_system_commands(app.screen)}
        assert commands["Reject remediation"].startswith("Unavailable: Reject remediation needs")


async def test_enter_opens_the_agent_and_escape_comes_back():
    app = sample_app(upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_inbox(app, pilot)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, AgentDetailScreen)
        assert app.screen.agent_id == "ag-00001"
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, InboxScreen)
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_a_remediation_that_comes_on_the_stream_shows_and_the_palette_counts():
    app = sample_app(upgrades=True)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_inbox(app, pilot)
        queued = replace(
            sample_remediations()[0], id="rem_00ff", agent_id="ag-00006",
            agent_name="build-us-0006", created_at=NOW + 1,
        )  # fmt: skip
        app.feed(RemediationUpdate(seq=101, remediation=queued))
        app.tick()
        await pilot.pause()
        await wait_for_text(pilot, app, "⚑ restart build-us-0006 · pool build-us")
        assert attention_badges(app.model) == "⚑ 3 to approve · ✗ 1 rollout halted"
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Remediation inbox (3 to approve)" in titles
        assert {"fleet.inbox", "inbox.approve", "inbox.reject"} <= binding_ids()


async def test_without_remediations_the_inbox_says_where_they_come_from():
    app = sample_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        assert "to approve" not in app.sub_title
        await open_inbox(app, pilot)
        await wait_for_text(pilot, app, "Nothing waits for approval. A pool's remediation policy")
