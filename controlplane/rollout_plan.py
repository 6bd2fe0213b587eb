"""A rollout as stored: its plan (canaries, then waves), each agent's step, the gate's counts.

One document per rollout (kind ``rollout``, keyed by its id), written whole on
every change, so a restart of the control plane resumes it where it was.  The
plan is made once, at the start: the pool's agents then, the canaries first
(healthy, connected ones), the others in waves; an agent enrolled later is not
in it (its pool's pin, set when the rollout is done, upgrades it).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import msgspec

from fleet.protocol import RolloutAgent, RolloutAgentStep, RolloutInfo, RolloutState, RolloutWave

__all__ = [
    "ACTIVE",
    "KIND",
    "AgentDoc",
    "Candidate",
    "Gauge",
    "RolloutDoc",
    "Share",
    "plan",
    "share_count",
    "to_info",
]

KIND = "rollout"
"""The store's document kind (keyed by rollout id)."""

ACTIVE: frozenset[str] = frozenset({"waiting", "canary", "soaking", "wave", "pausing", "paused"})
"""States of a rollout that is not over: one at most per pool."""

PERCENT = re.compile(r"^(\d+(?:\.\d+)?)%$")

Share = int | str
"""A count (``3``) or a share of the pool (``"25%"``)."""


def share_count(share: Share, total: int) -> int:
    """How many agents ``share`` means in a pool of ``total``: a count (at most
    ``total``), or a percentage rounded up (at least 1 when above 0 %).

    Raises:
        ValueError: neither a count nor a percentage.
    """
    if isinstance(share, int):
        return max(0, min(share, total))
    match = PERCENT.match(share.strip())
    if match is None:
        raise ValueError(f"{share!r} is neither a count (3) nor a percentage (25%)")
    percent = float(match.group(1))
    if not 0 <= percent <= 100:
        raise ValueError(f"{share!r}: a percentage lies between 0% and 100%")
    return min(total, math.ceil(total * percent / 100))


class Gauge(msgspec.Struct):
    """What the health gate counted of one agent, sampled every tick."""

    samples: int = 0
    away: int = 0
    """Samples in which it was stale or offline."""
    degraded: int = 0
    """Samples in which it was degraded for a reason other than version drift."""
    late: int = 0
    """Samples in which it counted as connected but its last heartbeat was late."""
    restarts: int = 0
    """Times its uptime went down."""
    uptime: float | None = None
    """The uptime last seen."""
    baseline: list[str] = []
    """Kinds of the problems it had before (before its upgrade, or when the rollout
    first saw it): they are not held against it, only new ones are."""


class AgentDoc(msgspec.Struct):
    """One agent of the rollout."""

    agent_id: str
    name: str
    wave: int
    step: RolloutAgentStep = "pending"
    from_version: str | None = None
    detail: str = ""
    started_at: float | None = None
    """When its upgrade was sent (server clock)."""
    baseline: list[str] = []
    """Kinds of the problems it had when its upgrade was sent (see :class:`Gauge`)."""
    rollback: Literal["", "pending", "sent", "failed"] = ""
    """After a halt or an abort: ``pending`` (it rolls back once its upgrade ends),
    ``sent``, or ``failed`` (it could not be asked: roll it back by hand)."""


class RolloutDoc(msgspec.Struct):
    """The stored rollout."""

    id: str
    pool: str
    version: str
    state: RolloutState
    canaries: int
    soak_s: float
    wave_size: int
    pause_s: float
    agents: list[AgentDoc]
    created_by: str
    created_at: float
    updated_at: float
    detail: str = ""
    wave: int = 0
    """The wave in hand (0: the canaries)."""
    phase_ends_at: float | None = None
    resume_to: str | None = None
    """The state to go back to after ``waiting`` or ``paused``."""
    paused_left_s: float | None = None
    """What was left of the soak or the pause when an operator paused it."""
    finished_at: float | None = None
    gauges: dict[str, Gauge] = {}

    @property
    def active(self) -> bool:
        return self.state in ACTIVE

    def wave_agents(self, index: int) -> list[AgentDoc]:
        return [a for a in self.agents if a.wave == index]

    def last_wave(self) -> int:
        return max((a.wave for a in self.agents), default=0)


@dataclass(frozen=True)
class Candidate:
    """An agent of the pool, as the plan sees it."""

    agent_id: str
    name: str
    ready: bool
    """Connected and healthy now: may be a canary."""


def plan(
    candidates: Iterable[Candidate], canaries: Share, wave: Share
) -> tuple[list[AgentDoc], int, int]:
    """The rollout's agents in waves, and the canary count and wave size they came to.

    The canaries are ready agents, by name; the waves follow, ready agents first
    (an agent away now has the longest to come back), each of ``wave`` agents.
    """
    ordered = sorted(candidates, key=lambda c: (not c.ready, c.name))
    total = len(ordered)
    canary_count = min(share_count(canaries, total), sum(c.ready for c in ordered))
    size = max(1, share_count(wave, total))
    docs = [AgentDoc(c.agent_id, c.name, 0) for c in ordered[:canary_count]]
    for i, c in enumerate(ordered[canary_count:]):
        docs.append(AgentDoc(c.agent_id, c.name, 1 + i // size))
    return docs, canary_count, size


_FAILED = ("failed", "rolled_back")


def _wave(doc: RolloutDoc, index: int) -> RolloutWave:
    agents = doc.wave_agents(index)
    upgraded = sum(a.step == "upgraded" for a in agents)
    failed = sum(a.step in _FAILED and a.rollback != "sent" for a in agents)
    state: Literal["pending", "upgrading", "soaking", "done", "failed"]
    if failed:
        state = "failed"
    elif all(a.step == "pending" for a in agents):
        state = "pending"
    elif any(a.step in ("pending", "upgrading") for a in agents):
        state = "upgrading"
    elif index == doc.wave and doc.state in ("soaking", "pausing"):
        state = "soaking"
    else:
        state = "done"
    return RolloutWave(index=index, size=len(agents), upgraded=upgraded, failed=failed, state=state)


def to_info(doc: RolloutDoc) -> RolloutInfo:
    """The rollout as shown: its waves' progress and every agent's step."""
    indexes = sorted({a.wave for a in doc.agents})
    return RolloutInfo(
        id=doc.id,
        pool=doc.pool,
        version=doc.version,
        state=doc.state,
        detail=doc.detail,
        canaries=doc.canaries,
        soak_s=doc.soak_s,
        wave_size=doc.wave_size,
        pause_s=doc.pause_s,
        waves=[_wave(doc, i) for i in indexes],
        agents=[
            RolloutAgent(
                agent_id=a.agent_id,
                name=a.name,
                wave=a.wave,
                step=a.step,
                from_version=a.from_version,
                detail=a.detail,
            )
            for a in doc.agents
        ],
        created_by=doc.created_by,
        created_at=doc.created_at,
        updated_at=doc.updated_at,
        finished_at=doc.finished_at,
        phase_ends_at=doc.phase_ends_at,
    )
