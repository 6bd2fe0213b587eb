"""The fleet model, without Textual."""

from __future__ import annotations

from fleet.protocol import (
    AgentRemoved,
    AgentUpdate,
    AlertCleared,
    AlertRaised,
    CommandEvent,
    ConnectionRemoved,
    ConnectionUpdate,
    Presence,
    RemediationUpdate,
    RolloutUpdate,
    replace,
)
from fleet_tui import model as model_module
from fleet_tui.model import AgentFilter, GroupHeader, SortKey
from fleet_tui.sample import NOW, sample_snapshot

from .conftest import fixed_model


def loaded(n: int = 50):
    model = fixed_model()
    model.apply(sample_snapshot(n))
    return model


def test_snapshot_fills_the_model_and_records_role_and_seq():
    model = loaded()
    assert len(model.agents) == 50
    assert model.role == "admin"
    assert model.seq == 100
    assert len(model.history["ag-00000"].cpu) == 60
    assert {a.id for a in model.open_alerts()} == {"al-1", "al-2", "al-3", "al-4"}


def test_unhealthy_agents_come_first_by_default():
    model = loaded()
    states = [model.agents[r].state for r in model.rows() if isinstance(r, str)]
    assert states[0] is Presence.OFFLINE
    assert states[1] is Presence.STALE
    assert all(s is Presence.CONNECTED for s in states[7:])


def test_sort_by_column_and_flip_direction():
    model = loaded()
    model.set_sort(SortKey.QUEUE)
    first = model.agents[model.rows()[0]]
    assert first.queue_depth == 4812
    model.set_sort(SortKey.QUEUE)  # the same key again flips
    assert model.sort_reverse
    depths = [model.agents[r].queue_depth for r in model.rows()]
    assert depths[0] == 0 and 4812 in depths[-3:]
    assert depths[-1] is None  # no value: last, whichever the direction
    model.set_sort(SortKey.NAME, reverse=False)
    names = [model.agents[r].name for r in model.rows() if isinstance(r, str)]
    assert names == sorted(names, key=str.lower)


def test_filter_by_text_label_version_and_state():
    model = loaded()
    model.set_filter("etl")
    assert {model.agents[r].pool for r in model.rows()} == {"etl"}
    model.set_filter("tier=test region=us")
    assert all(model.agents[r].labels == {"region": "us", "tier": "test"} for r in model.rows())
    model.set_filter("1.3.9")
    assert [model.agents[r].name for r in model.rows()] == ["edge-0004"]
    model.set_filter("state:stale,offline")
    assert {model.agents[r].state for r in model.rows()} == {Presence.STALE, Presence.OFFLINE}
    model.set_filter("is:unhealthy")
    assert model.shown_count() == 6
    model.set_filter("")
    assert model.shown_count() == 50


def test_filter_parse_ignores_unknown_states():
    flt = AgentFilter.parse("state:bogus web")
    assert flt.states == frozenset() and flt.words == ("web",)


def test_grouping_puts_a_header_before_each_pool_unhealthy_pools_first():
    model = loaded()
    model.set_grouping(True)
    rows = model.rows()
    headers = [r for r in rows if isinstance(r, GroupHeader)]
    assert len(headers) == 5
    assert headers[0].unhealthy >= headers[-1].unhealthy
    assert sum(h.total for h in headers) == 50
    # Each agent sits under its pool's header.
    current = None
    for row in rows:
        if isinstance(row, GroupHeader):
            current = row.pool
        else:
            assert model.agents[row].pool == current


def test_update_adds_a_sample_on_a_new_heartbeat_and_marks_dirty():
    model = loaded()
    model.take_dirty()
    agent = model.agents["ag-00010"]
    gen = model.generation
    newer = replace(agent, last_heartbeat_at=NOW + 1, cpu_percent=99.0)
    model.apply(AgentUpdate(seq=101, agent=newer))
    assert model.history["ag-00010"].cpu[-1] == 99.0
    assert model.take_dirty() == {"ag-00010"}
    assert model.generation > gen
    assert model.seq == 101
    # The same heartbeat again adds no sample.
    before = len(model.history["ag-00010"].cpu)
    model.apply(AgentUpdate(seq=102, agent=newer))
    assert len(model.history["ag-00010"].cpu) == before


def test_state_change_reorders_but_a_metric_change_does_not_resort():
    model = loaded()
    rows = model.rows()
    agent = model.agents["ag-00010"]
    model.apply(AgentUpdate(seq=101, agent=replace(agent, cpu_percent=50.0)))
    assert model.rows() is rows  # same list: no re-sort for a metric under the health sort
    model.apply(AgentUpdate(seq=102, agent=replace(agent, state=Presence.OFFLINE)))
    assert model.rows() is not rows
    assert model.agents[model.rows()[0]].state is Presence.OFFLINE


def test_alerts_connections_and_command_events():
    model = loaded()
    alert = model.alerts["al-1"]
    model.apply(AlertCleared(seq=101, alert=replace(alert, cleared_at=NOW)))
    assert "al-1" not in model.alerts
    new = replace(alert, id="al-9", raised_at=NOW + 5)
    model.apply(AlertRaised(seq=102, alert=new))
    assert model.open_alerts()[0].id == "al-9"
    conn = replace(model.connections["warehouse"], routable=True)
    model.apply(ConnectionUpdate(seq=103, connection=conn))
    assert model.connections["warehouse"].routable
    model.apply(
        CommandEvent(
            seq=104,
            agent_id="ag-00001",
            request_id="r1",
            kind="probe",
            actor="admin",
            ok=False,
            summary="refused",
            at=NOW,
        )
    )
    assert model.events["ag-00001"][-1].summary == "refused"


def test_counts_by_state():
    counts = loaded().counts()
    assert counts[Presence.DEGRADED] == 4
    assert counts[Presence.STALE] == 1 and counts[Presence.OFFLINE] == 1
    assert sum(counts.values()) == 50


def test_merge_events_deduplicates_and_orders():
    model = loaded()

    def event(rid, at):
        return CommandEvent(
            seq=1,
            agent_id="ag-00001",
            request_id=rid,
            kind="logs",
            actor="a",
            ok=True,
            summary=rid,
            at=at,
        )

    model.apply(replace(event("r2", NOW + 2), seq=101))
    model.merge_events("ag-00001", [event("r1", NOW + 1), event("r2", NOW + 2)])
    assert [e.request_id for e in model.events["ag-00001"]] == ["r1", "r2"]


def test_removed_agents_and_connections_leave_the_view():
    model = loaded()
    gone = "ag-00003"
    assert gone in model.rows()
    name = next(iter(model.connections))
    before = model.generation
    model.apply(AgentRemoved(seq=101, agent_id=gone))
    model.apply(ConnectionRemoved(seq=102, name=name))
    assert gone not in model.agents and gone not in model.history
    assert gone not in model.rows() and model.row_of(gone) is None
    assert len(model.rows()) == 49
    assert gone not in model.take_dirty()
    assert name not in model.connections
    assert model.seq == 102 and model.generation > before
    model.apply(AgentRemoved(seq=103, agent_id="never-known"))  # harmless
    assert len(model.agents) == 49


def test_rollouts_and_remediations_come_with_the_snapshot_and_move_with_updates():
    model = fixed_model()
    model.apply(sample_snapshot(50, upgrades=True))
    assert set(model.rollouts) == {
        "ro_3f9a1c07e2", "ro_81d2e4b6a0", "ro_c5077f19d3", "ro_0a6e29c4f8"
    }  # fmt: skip
    assert [r.agent_name for r in model.pending_approvals()] == ["build-us-0001", "build-eu-0005"]
    assert [r.state for r in model.remediations_of("ag-00001")] == [
        "pending_approval",
        "rejected",
        "done",
    ]  # fmt: skip, newest first

    etl = model.rollouts["ro_3f9a1c07e2"]
    before = model.generation
    model.apply(RolloutUpdate(seq=101, rollout=replace(etl, state="paused", detail="by bob")))
    assert model.rollouts["ro_3f9a1c07e2"].state == "paused"
    assert model.seq == 101 and model.generation > before

    waiting = model.pending_approvals()[0]
    decided = replace(waiting, state="running", decided_by="carol", decided_at=NOW + 5)
    model.apply(RemediationUpdate(seq=102, remediation=decided))
    assert [r.agent_name for r in model.pending_approvals()] == ["build-eu-0005"]
    assert model.remediations["rem_4c1f8a2e90"].decided_by == "carol"

    # A fresh snapshot (after a gap the server could not replay) replaces both.
    model.apply(sample_snapshot(50, seq=200))
    assert model.rollouts == {} and model.remediations == {}
    assert model.pending_approvals() == []


def test_a_pool_keeps_its_running_rollout_and_only_its_latest_finished_one():
    model = fixed_model()
    model.apply(sample_snapshot(50, upgrades=True))
    halted = model.rollouts["ro_81d2e4b6a0"]  # build-eu, halted
    retry = replace(halted, id="ro_new", state="canary", created_at=NOW + 60, finished_at=None)
    model.apply(RolloutUpdate(seq=101, rollout=retry))
    # Running beside the halted one before it, as a fresh snapshot would have them.
    assert {"ro_81d2e4b6a0", "ro_new"} <= set(model.rollouts)
    model.apply(RolloutUpdate(seq=102, rollout=replace(retry, state="done", finished_at=NOW + 900)))
    assert "ro_81d2e4b6a0" not in model.rollouts  # the newer finished one replaces it
    assert model.rollouts["ro_new"].state == "done"
    assert "ro_3f9a1c07e2" in model.rollouts  # other pools untouched


def test_finished_remediations_are_kept_up_to_a_limit_pending_ones_always(monkeypatch):
    monkeypatch.setattr(model_module, "REMEDIATIONS_KEPT", 3)
    model = fixed_model()
    model.apply(sample_snapshot(50, upgrades=True))
    done = model.remediations["rem_d40c9f2a17"]
    for i in range(5):
        model.apply(
            RemediationUpdate(
                seq=101 + i,
                remediation=replace(done, id=f"rem_{i}", created_at=NOW + i, finished_at=NOW + i),
            )
        )
    over = [r.id for r in model.remediations.values() if r.state != "pending_approval"]
    assert sorted(over) == ["rem_2", "rem_3", "rem_4"]  # the newest three
    assert len(model.pending_approvals()) == 2
