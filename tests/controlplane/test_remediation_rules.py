"""Remediation rules as pure functions of given facts and times: conditions, streaks,
budgets (a sliding hour), the move of a connection's pools, the policy's shape."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from pydantic import ValidationError

from controlplane.remediation_rules import (
    Budget,
    RemediationPolicy,
    Streaks,
    describe,
    holds,
    moved_order,
    renewal_due,
)
from fleet.protocol import Presence

T0 = 1_800_000_000.0
DAY = 86400.0


@dataclass
class Facts:
    state: Presence = Presence.CONNECTED
    queue_depth: int | None = 0
    cert_not_after: float | None = T0 + DAY


def policy(*rules: dict, **fields) -> RemediationPolicy:
    return RemediationPolicy.model_validate({"rules": list(rules), **fields})


def rule(**fields):
    return policy({"action": "restart", **fields}).rules[0]


def test_stale_or_offline_holds_only_for_those_states():
    r = rule(condition="stale_or_offline")
    judged = {p: holds(r, Facts(state=p), T0, DAY, None) for p in Presence}
    assert {p for p, held in judged.items() if held} == {Presence.STALE, Presence.OFFLINE}


def test_queue_over_is_strictly_over_and_only_while_connected():
    r = rule(condition="queue_over", depth=100)
    assert not holds(r, Facts(queue_depth=100), T0, DAY, None)
    assert holds(r, Facts(queue_depth=101), T0, DAY, None)
    assert holds(r, Facts(state=Presence.DEGRADED, queue_depth=101), T0, DAY, None)
    # An agent away reports no queue: its last one is not judged.
    assert not holds(r, Facts(state=Presence.STALE, queue_depth=5000), T0, DAY, None)
    assert not holds(r, Facts(queue_depth=None), T0, DAY, None)


def test_renewal_failing_past_two_thirds_of_the_certificate_life():
    life = 24 * 3600.0
    issued = T0
    not_after = issued + life
    assert not renewal_due(not_after, life, issued + life * 0.66)
    assert renewal_due(not_after, life, issued + life * 2 / 3)
    assert renewal_due(not_after, life, not_after + 1)  # expired: still failing
    assert not renewal_due(None, life, T0)
    r = rule(condition="renewal_failing")
    assert holds(r, Facts(cert_not_after=not_after), issued + life * 0.7, life, None)
    assert not holds(r, Facts(cert_not_after=not_after), issued + life * 0.5, life, None)


def test_probe_failing_holds_on_a_failed_probe_only():
    r = rule(condition="probe_failing", connection="pg")
    assert holds(r, Facts(), T0, DAY, False)
    assert not holds(r, Facts(), T0, DAY, True)
    assert not holds(r, Facts(), T0, DAY, None), "not probed is not failing"


def test_streak_needs_k_in_a_row_and_starts_again_after_firing():
    s = Streaks()
    key = ("db", "ag_1", 0)
    seen = [s.observe(key, held, 3) for held in (True, True, False, True, True, True, True)]
    assert seen == [False, False, False, False, False, True, False]
    assert s.count(key) == 1
    assert s.observe(("db", "ag_2", 0), True, 1) is True
    s.observe(("etl", "ag_3", 0), True, 5)
    s.forget("db")
    assert s.count(key) == 0 and s.count(("etl", "ag_3", 0)) == 1


def test_budget_per_agent_per_hour_is_a_sliding_window():
    p = policy({"condition": "stale_or_offline", "action": "restart"}, per_agent_per_hour=1)
    b = Budget()
    assert b.spent("ag_1", "db", "restart", p, T0) is None
    b.charge("ag_1", "db", "restart", T0)
    assert b.spent("ag_1", "db", "restart", p, T0 + 60) == (
        "budget spent: 1 restart per agent per hour"
    )
    assert b.spent("ag_1", "db", "restart", p, T0 + 3599) is not None
    assert b.spent("ag_1", "db", "restart", p, T0 + 3600) is None, "an hour later it is free"
    # Counted per kind of action and per agent.
    b.charge("ag_1", "db", "restart", T0 + 3600)
    assert b.spent("ag_1", "db", "renew", p, T0 + 3601) is None
    assert b.spent("ag_2", "db", "restart", p, T0 + 3601) is None


def test_budget_per_pool_counts_every_agent_of_the_pool():
    p = policy(
        {"condition": "stale_or_offline", "action": "restart"},
        per_agent_per_hour=5,
        per_pool_per_hour=2,
    )
    b = Budget()
    b.charge("ag_1", "db", "restart", T0)
    b.charge("ag_2", "db", "restart", T0 + 10)
    assert b.spent("ag_3", "db", "restart", p, T0 + 20) == (
        "budget spent: 2 restarts per pool per hour"
    )
    assert b.spent("ag_3", "etl", "restart", p, T0 + 20) is None
    assert b.used("ag_1", "db", "restart", T0 + 20) == (1, 2)
    assert b.spent("ag_3", "db", "restart", p, T0 + 3601) is None
    # Charges loaded from the store in any order still slide right.
    b2 = Budget()
    b2.charge("ag_1", "db", "renew", T0 + 100)
    b2.charge("ag_1", "db", "renew", T0)
    assert b2.used("ag_1", "db", "renew", T0 + 3650) == (1, 1)


def test_a_zero_budget_sends_every_action_to_approval():
    p = policy({"condition": "stale_or_offline", "action": "renew"}, per_agent_per_hour=0)
    assert Budget().spent("ag_1", "db", "renew", p, T0) == (
        "budget spent: 0 renewals per agent per hour"
    )


def test_moved_order_swaps_the_pool_with_the_next_one():
    assert moved_order(["a", "b"], "a") == ["b", "a"]
    assert moved_order(["x", "a", "b", "c"], "a") == ["x", "b", "a", "c"]
    assert moved_order(["a", "b"], "b") is None, "the last pool has nowhere to go"
    assert moved_order(["b", "c"], "a") is None


def test_describe_says_the_condition_and_the_count():
    assert describe(rule(condition="queue_over", depth=100, checks=3)) == (
        "queue depth over 100 for 3 checks"
    )
    assert describe(rule(condition="stale_or_offline", checks=1)) == "stale or offline for 1 check"
    assert "connection pg failing" in describe(rule(condition="probe_failing", connection="pg"))


def test_policy_defaults_are_off_by_default_in_spirit():
    p = policy({"condition": "stale_or_offline", "action": "restart"})
    r = p.rules[0]
    assert (r.checks, r.automatic) == (3, False), "an action waits for approval unless marked"
    assert (p.check_interval_s, p.per_agent_per_hour, p.per_pool_per_hour) == (30.0, 1, 5)


STALE = {"condition": "stale_or_offline", "action": "restart"}


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"rules": [{"condition": "disk_full", "action": "restart"}]}, "does not match any"),
        ({"rules": [{**STALE, "action": "reboot"}]}, "action"),
        ({"rules": [{**STALE, "checks": 0}]}, "checks"),
        ({"rules": [{"condition": "probe_failing", "action": "restart"}]}, "connection"),
        ({"rules": [{"condition": "queue_over", "action": "restart"}]}, "depth"),
        ({"rules": []}, "rules"),
        ({"rules": [{**STALE, "auto": True}]}, "auto"),
        ({"rules": [STALE], "check_interval_s": 0}, "check_interval_s"),
        ({"rules": [STALE], "per_agent_per_hour": -1}, "per_agent_per_hour"),
    ],
)
def test_policy_refusals_name_the_field(body, says):
    with pytest.raises(ValidationError) as caught:
        RemediationPolicy.model_validate(body)
    assert says in str(caught.value)
