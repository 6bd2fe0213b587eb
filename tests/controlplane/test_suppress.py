"""What acknowledgements, silences and maintenance windows hold back (controlplane.suppress).

The module is pure: a small fleet view stands in for the live fleet (the same
three questions :class:`controlplane.fleet.Fleet` answers), and time is a number.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from controlplane.errors import BadRequest
from controlplane.store.base import AckRecord, MaintenanceRecord, SilenceRecord
from controlplane.suppress import Suppression, hold_reason
from controlplane.suppress_edits import span
from fleet.protocol import AlertInfo

NOW = 1_800_000_000.0


@dataclass
class FleetView:
    agents: dict[str, tuple[str, str]] = field(default_factory=dict)
    connections: dict[str, list[str]] = field(default_factory=dict)
    shortfall: dict[str, tuple[int, list[str]]] = field(default_factory=dict)

    def agent_of(self, agent_id: str) -> tuple[str, str] | None:
        return self.agents.get(agent_id)

    def pools_of_connection(self, name: str) -> list[str]:
        return self.connections.get(name, [])

    def pool_shortfall(self, pool: str) -> tuple[int, list[str]]:
        return self.shortfall.get(pool, (0, []))


def alert(target: str, kind: str = "offline", id: str = "a1") -> AlertInfo:
    return AlertInfo(
        id=id, kind=kind, severity="critical", target=target, message="m", raised_at=NOW - 60
    )


def silence(ends_in: float = 3600, starts_in: float = 0, **matchers: str) -> SilenceRecord:
    return SilenceRecord(
        id="sil_1",
        starts_at=NOW + starts_in,
        ends_at=NOW + ends_in,
        reason="patching",
        created_by="alice",
        created_at=NOW,
        **matchers,
    )


def window(scope: str, target: str, ends_in: float = 3600) -> MaintenanceRecord:
    return MaintenanceRecord(
        id=f"mnt_{target}",
        scope="agent" if scope == "agent" else "pool",
        target=target,
        starts_at=NOW,
        ends_at=NOW + ends_in,
        reason="kernel",
        created_by="bob",
        created_at=NOW,
    )


@pytest.fixture
def view() -> FleetView:
    return FleetView(
        agents={"ag_1": ("etl-07", "etl"), "ag_2": ("web-01", "web")},
        connections={"warehouse": ["etl", "etl-dr"]},
    )


def test_an_acknowledgement_is_shown_until_it_expires_but_holds_nothing_back(view):
    # Repeats stop (the notifier's ack hook); escalations and Alertmanager's
    # re-sends go on, so the hold hook must not name the acknowledgement.
    s = Suppression(view)
    s.acks["a1"] = AckRecord("a1", "alice", "looking", NOW, expires_at=NOW + 600)
    assert s.hold(alert("ag_1"), NOW) is None
    assert s.ack_of("a1", NOW) is not None
    shown = s.annotate(alert("ag_1"), NOW)
    assert (shown.acked_by, shown.ack_note, shown.suppressed) == ("alice", "looking", None)
    assert s.ack_of("a1", NOW + 601) is None
    assert s.annotate(alert("ag_1"), NOW + 601).acked_by is None
    assert s.expire(NOW + 601) and not s.acks


def test_a_cleared_alert_is_never_held(view):
    s = Suppression(view)
    s.silences["sil_1"] = silence(pool="etl")
    cleared = AlertInfo(
        id="a1", kind="offline", severity="critical", target="ag_1", message="m",
        raised_at=NOW - 60, cleared_at=NOW,
    )  # fmt: skip
    assert hold_reason(s, alert("ag_1"), NOW) is not None
    assert hold_reason(s, cleared, NOW) is None


def test_a_silence_by_pool_holds_that_pools_agents_only_while_it_lasts(view):
    s = Suppression(view)
    s.silences["sil_1"] = silence(ends_in=600, pool="etl")
    reason = s.hold(alert("ag_1"), NOW)
    assert reason is not None and reason.startswith("silenced by alice until ")
    assert reason.endswith(": patching")
    assert s.hold(alert("ag_2"), NOW) is None
    assert s.hold(alert("pool:etl", "pool_below_min"), NOW) is not None
    assert s.annotate(alert("ag_1"), NOW).silenced_until == NOW + 600
    # Expiry releases it.
    assert s.hold(alert("ag_1"), NOW + 600) is None


def test_every_matcher_given_must_match_and_agents_match_by_id_or_name(view):
    s = Suppression(view)
    s.silences["sil_1"] = silence(pool="etl", kind="stale")
    assert s.hold(alert("ag_1", "offline"), NOW) is None
    assert s.hold(alert("ag_1", "stale"), NOW) is not None
    s.silences["sil_1"] = silence(agent="etl-07")
    assert s.hold(alert("ag_1"), NOW) is not None
    s.silences["sil_1"] = silence(agent="ag_1")
    assert s.hold(alert("ag_1"), NOW) is not None
    s.silences["sil_1"] = silence(connection="warehouse")
    assert s.hold(alert("connection:warehouse", "unroutable"), NOW) is not None
    assert s.hold(alert("ag_1"), NOW) is None


def test_a_silence_that_starts_later_holds_nothing_yet(view):
    s = Suppression(view)
    s.silences["sil_1"] = silence(starts_in=300, ends_in=900, pool="etl")
    assert s.hold(alert("ag_1"), NOW) is None
    assert s.hold(alert("ag_1"), NOW + 300) is not None


def test_maintenance_of_a_pool_holds_its_agents_its_minimum_and_connections_only_through_it(view):
    s = Suppression(view)
    s.windows["mnt_etl"] = window("pool", "etl")
    assert s.hold(alert("ag_1"), NOW).startswith("maintenance of pool etl until ")  # type: ignore[union-attr]
    assert s.hold(alert("pool:etl", "pool_below_min"), NOW) is not None
    # The connection also routes through etl-dr, which is not in maintenance.
    assert s.hold(alert("connection:warehouse", "unroutable"), NOW) is None
    s.windows["mnt_etl-dr"] = window("pool", "etl-dr")
    assert s.hold(alert("connection:warehouse", "unroutable"), NOW) is not None
    assert s.hold(alert("ag_2"), NOW) is None


def test_maintenance_of_an_agent_holds_it_and_the_pool_shortfall_it_explains(view):
    s = Suppression(view)
    s.windows["mnt_ag_1"] = window("agent", "ag_1", ends_in=600)
    assert s.hold(alert("ag_1"), NOW).startswith("maintenance of agent etl-07")  # type: ignore[union-attr]
    view.shortfall["etl"] = (1, ["ag_1"])
    assert s.hold(alert("pool:etl", "pool_below_min"), NOW) is not None
    # Two missing, one of them in maintenance: the pool is short for another reason.
    view.shortfall["etl"] = (2, ["ag_1", "ag_3"])
    assert s.hold(alert("pool:etl", "pool_below_min"), NOW) is None
    # The window's end releases everything.
    view.shortfall["etl"] = (1, ["ag_1"])
    assert s.hold(alert("pool:etl", "pool_below_min"), NOW + 600) is None
    assert s.hold(alert("ag_1"), NOW + 600) is None


@pytest.mark.parametrize(
    ("given", "says"),
    [
        ({}, "say how long"),
        ({"ends_at": NOW - 10}, "end in the past"),
        ({"duration_s": 8 * 86400}, "more than the 604800 s"),
        ({"starts_at": NOW - 3600, "duration_s": 60}, "start in the past"),
        ({"starts_at": NOW + 8 * 86400, "duration_s": 60}, "start more than"),
        ({"duration_s": 60, "ends_at": NOW + 3600}, "disagree"),
    ],
)
def test_spans_that_make_no_sense_are_refused_with_what_to_do(given, says):
    kw: dict[str, float | None] = {"starts_at": None, "duration_s": None, "ends_at": None}
    with pytest.raises(BadRequest, match=says):
        span(NOW, 7 * 86400, **{**kw, **given}, what="silence")  # type: ignore[arg-type]


def test_a_span_from_now_or_a_later_start():
    assert span(NOW, 86400, starts_at=None, duration_s=60, ends_at=None, what="x") == (
        NOW,
        NOW + 60,
    )
    assert span(NOW, 86400, starts_at=NOW + 10, duration_s=None, ends_at=NOW + 70, what="x") == (
        NOW + 10,
        NOW + 70,
    )


def test_the_next_change_is_the_soonest_start_end_or_lapse(view):
    s = Suppression(view)
    assert s.next_change(NOW) == float("inf")
    s.silences["sil_1"] = silence(starts_in=300, ends_in=900, pool="etl")
    assert s.next_change(NOW) == NOW + 300
    assert s.next_change(NOW + 300) == NOW + 900
    s.acks["a1"] = AckRecord("a1", "alice", "", NOW, expires_at=NOW + 100)
    assert s.next_change(NOW) == NOW + 100
    s.windows["mnt_ag_1"] = window("agent", "ag_1", ends_in=50)
    assert s.next_change(NOW) == NOW + 50 and s.agent_windows
