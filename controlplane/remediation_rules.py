"""Remediation rules, pure: the policy's shape, when a condition holds, streaks, budgets.

Nothing here reads a clock, the store or the network: every function takes the
time and the facts it judges, so the rules are tested with made-up times
(``tests/controlplane/test_remediation_rules.py``) and the engine
(:mod:`controlplane.remediation`) only feeds them.

A policy is a list of rules; each names a condition, how many consecutive checks
it must hold (``checks``), an action, and whether the action runs by itself
(``automatic``) or waits for an operator.  Budgets count the actions that ran by
themselves, per kind of action, over the last hour (a sliding window): at most
``per_agent_per_hour`` of one kind on one agent, ``per_pool_per_hour`` in its pool.
Over budget, the action waits for approval instead of being dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from fleet.protocol import Presence

from .api.names import ConnectionName
from .body_types import JsonInt

__all__ = [
    "ACTIONS",
    "AGENT_ACTIONS",
    "BUDGET_WINDOW_S",
    "Action",
    "AgentFacts",
    "Budget",
    "ProbeFailing",
    "QueueOver",
    "RemediationPolicy",
    "RenewalFailing",
    "Rule",
    "StaleOrOffline",
    "Streaks",
    "describe",
    "holds",
    "moved_order",
    "renewal_due",
]

Action = Literal["restart", "renew", "rollback", "move_connections"]
ACTIONS: tuple[Action, ...] = ("restart", "renew", "rollback", "move_connections")
AGENT_ACTIONS = frozenset({"restart", "renew", "rollback"})
"""Actions sent to the agent itself (they need its channel); ``move_connections``
changes the control plane's routing of the agent's pool instead."""

BUDGET_WINDOW_S = 3600.0
"""Budgets count the automatic actions of the last hour."""

MAX_RULES = 20

_NOUNS: dict[str, tuple[str, str]] = {
    "restart": ("restart", "restarts"),
    "renew": ("renewal", "renewals"),
    "rollback": ("rollback", "rollbacks"),
    "move_connections": ("connection move", "connection moves"),
}


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    checks: JsonInt = Field(
        default=3,
        ge=1,
        le=1000,
        description="Consecutive checks the condition must hold before the action.",
    )
    action: Action = Field(
        description="restart (the agent's process), renew (its certificate), rollback "
        "(to the version it ran before its last upgrade), move_connections (its pool's "
        "connections go to the next pool in their preference list)."
    )
    automatic: bool = Field(
        default=False,
        description="Run without a person (within the budgets); false: wait for approval.",
    )


class StaleOrOffline(_Rule):
    """The agent is stale (heartbeats stopped) or offline (its channel closed)."""

    condition: Literal["stale_or_offline"]


class QueueOver(_Rule):
    """The agent's queue depth is over ``depth``."""

    condition: Literal["queue_over"]
    depth: JsonInt = Field(ge=0, le=1_000_000_000, description="Queue depth to be over.")


class RenewalFailing(_Rule):
    """The agent's certificate is past two thirds of its life: the agent renews at two
    thirds, so an older one means its renewals do not go through (refused, lost, or
    never tried)."""

    condition: Literal["renewal_failing"]


class ProbeFailing(_Rule):
    """A probe of ``connection`` through the agent fails (the control plane probes
    it through each connected agent of the pool at each check)."""

    condition: Literal["probe_failing"]
    connection: ConnectionName
    tls: bool = Field(default=False, description="Shake hands with TLS after connecting.")
    timeout_s: float = Field(default=5.0, gt=0, le=60, description="Each probe's timeout.")


Rule = Annotated[
    StaleOrOffline | QueueOver | RenewalFailing | ProbeFailing,
    Field(discriminator="condition"),
]


class RemediationPolicy(BaseModel):
    """A pool's remediation policy: its rules, how often they are checked, the budgets."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rules: list[Rule] = Field(min_length=1, max_length=MAX_RULES)
    check_interval_s: float = Field(
        default=30.0,
        gt=0,
        le=86400,
        description="Seconds between checks (at least the server's remediation_min_check_s).",
    )
    per_agent_per_hour: JsonInt = Field(
        default=1,
        ge=0,
        le=1000,
        description="Automatic actions of one kind on one agent in any hour; past it, "
        "they wait for approval (0: every action waits).",
    )
    per_pool_per_hour: JsonInt = Field(
        default=5,
        ge=0,
        le=100_000,
        description="Automatic actions of one kind in the pool in any hour; past it, they "
        "wait for approval.",
    )


class AgentFacts(Protocol):
    """What a condition reads of an agent (a :class:`~controlplane.live.LiveAgent` has it)."""

    @property
    def state(self) -> Presence: ...
    @property
    def queue_depth(self) -> int | None: ...
    @property
    def cert_not_after(self) -> float | None: ...


def renewal_due(cert_not_after: float | None, lifetime_s: float, now: float) -> bool:
    """The certificate is past two thirds of its life (a certificate of ``lifetime_s``)."""
    return cert_not_after is not None and now >= cert_not_after - lifetime_s / 3


def holds(
    rule: Rule, agent: AgentFacts, now: float, cert_lifetime_s: float, probe_ok: bool | None
) -> bool:
    """Whether ``rule``'s condition holds for ``agent`` at this check.

    ``probe_ok`` is the outcome of this check's probe of the rule's connection
    through the agent (None: not probed, e.g. no channel, or the policy denied it);
    a condition that cannot be judged does not hold, which ends a streak.
    """
    connected = agent.state in (Presence.CONNECTED, Presence.DEGRADED)
    if isinstance(rule, StaleOrOffline):
        return agent.state in (Presence.STALE, Presence.OFFLINE)
    if isinstance(rule, QueueOver):
        return connected and (agent.queue_depth or 0) > rule.depth
    if isinstance(rule, RenewalFailing):
        return connected and renewal_due(agent.cert_not_after, cert_lifetime_s, now)
    return probe_ok is False


def describe(rule: Rule) -> str:
    """The rule's condition in words, with its count: ``queue depth over 100 for 3 checks``."""
    if isinstance(rule, StaleOrOffline):
        what = "stale or offline"
    elif isinstance(rule, QueueOver):
        what = f"queue depth over {rule.depth}"
    elif isinstance(rule, RenewalFailing):
        what = "certificate past two thirds of its life (renewal failing)"
    else:
        what = f"probe of connection {rule.connection} failing"
    return f"{what} for {rule.checks} check{'s' if rule.checks != 1 else ''}"


def noun(action: str, count: int) -> str:
    """``1 restart``, ``2 renewals``, ``0 connection moves``."""
    one, many = _NOUNS.get(action, (action, action))
    return f"{count} {one if count == 1 else many}"


class Streaks:
    """Consecutive checks each (agent, rule) held, restarted when it does not hold and
    after it reached its count (an action or a queued approval follows)."""

    def __init__(self) -> None:
        self._counts: dict[Hashable, int] = {}

    def observe(self, key: Hashable, held: bool, needed: int) -> bool:
        """Count one check; True when ``key`` has now held ``needed`` checks in a row
        (its count then starts again)."""
        if not held:
            self._counts.pop(key, None)
            return False
        count = self._counts.get(key, 0) + 1
        if count >= needed:
            self._counts.pop(key, None)
            return True
        self._counts[key] = count
        return False

    def count(self, key: Hashable) -> int:
        return self._counts.get(key, 0)

    def forget(self, prefix: Hashable) -> None:
        """Drop the streaks of keys (tuples) that start with ``prefix`` (a pool whose
        policy changed: its rules are other rules now)."""
        for key in [k for k in self._counts if isinstance(k, tuple) and k[0] == prefix]:
            del self._counts[key]

    def __len__(self) -> int:
        return len(self._counts)


class Budget:
    """Automatic actions of the last :data:`BUDGET_WINDOW_S`, per kind, per agent and per pool."""

    def __init__(self, window_s: float = BUDGET_WINDOW_S) -> None:
        self.window_s = window_s
        self._agent: dict[tuple[str, str], deque[float]] = {}
        self._pool: dict[tuple[str, str], deque[float]] = {}

    def charge(self, agent_id: str, pool: str, action: str, at: float) -> None:
        """One automatic ``action`` ran (or was sent) at ``at``."""
        for book, key in ((self._agent, (agent_id, action)), (self._pool, (pool, action))):
            times = book.setdefault(key, deque())
            times.append(at)
            if len(times) > 1 and times[-2] > at:  # loaded out of order: keep it sorted
                book[key] = deque(sorted(times))

    def used(self, agent_id: str, pool: str, action: str, now: float) -> tuple[int, int]:
        """(this agent's, its pool's) automatic ``action`` in the window ending ``now``."""
        return (
            self._count(self._agent, (agent_id, action), now),
            self._count(self._pool, (pool, action), now),
        )

    def spent(
        self, agent_id: str, pool: str, action: str, policy: RemediationPolicy, now: float
    ) -> str | None:
        """Why ``action`` may not run by itself now (``budget spent: 1 restart per agent
        per hour``), or None while both budgets allow it."""
        by_agent, by_pool = self.used(agent_id, pool, action, now)
        if by_agent >= policy.per_agent_per_hour:
            return f"budget spent: {noun(action, policy.per_agent_per_hour)} per agent per hour"
        if by_pool >= policy.per_pool_per_hour:
            return f"budget spent: {noun(action, policy.per_pool_per_hour)} per pool per hour"
        return None

    def _count(
        self, book: dict[tuple[str, str], deque[float]], key: tuple[str, str], now: float
    ) -> int:
        times = book.get(key)
        if times is None:
            return 0
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del book[key]
            return 0
        return sum(1 for t in times if t <= now)


def moved_order(pools: list[str], pool: str) -> list[str] | None:
    """``pools`` (a connection's preference list) with ``pool`` moved just after the
    pool that follows it, so that one is tried first; None when ``pool`` is not in the
    list or is its last (nowhere to move to).

    Only the two swap places: ``[x, a, b]`` for ``a`` gives ``[x, b, a]``, so a
    preferred pool ``x`` that has nothing wrong keeps its place.
    """
    if pool not in pools:
        return None
    at = pools.index(pool)
    if at == len(pools) - 1:
        return None
    moved = list(pools)
    moved[at], moved[at + 1] = moved[at + 1], moved[at]
    return moved
