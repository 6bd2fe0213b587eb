"""Rollouts and upgrades in words and symbols, readable without colour.  No Textual.

A rollout's state, its waves' progress and its agents' steps for the rollouts view
(:mod:`fleet_tui.screens.rollouts`); an agent's latest upgrade step for the fleet
table, the agent's detail and the wall.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from fleet.protocol import AgentState, RolloutAgent, RolloutInfo, RolloutWave, UpgradeInfo
from fleet.units import format_duration

from . import format as fmt
from .model import ROLLOUT_ACTIVE

__all__ = [
    "HALTED_SHOWN_S",
    "Tone",
    "agents_in_order",
    "ago",
    "progress_bar",
    "recently_halted",
    "rollout_label",
    "rollout_order",
    "rollout_phase",
    "rollout_plan",
    "rollout_progress",
    "rollout_step",
    "rollout_tone",
    "rollout_when",
    "step_label",
    "upgrade_line",
    "upgrade_mark",
    "upgrade_words",
    "wave_line",
    "wave_name",
]

Tone = Literal["", "ok", "warn", "bad", "muted", "busy"]
"""How a text is coloured; the words and symbols carry the meaning without colour."""

_MARKS: dict[str, tuple[str, Tone]] = {
    "waiting": ("○", "muted"),
    "canary": ("▶", "busy"),
    "soaking": ("▶", "busy"),
    "wave": ("▶", "busy"),
    "pausing": ("▶", "busy"),
    "paused": ("‖", "warn"),
    "done": ("✓", "ok"),
    "halted": ("✗", "bad"),
    "aborted": ("⊘", "warn"),
}
"""A symbol and a tone per rollout state."""

_ORDER = ("halted", "canary", "soaking", "wave", "pausing", "paused", "waiting", "aborted", "done")
"""What needs eyes first: a halt, then what moves, then what waits, then what is over."""

HALTED_SHOWN_S = 86400.0
"""A halted rollout is called out (the wall, the header) for this long after it
halted; the rollouts view shows it until its pool's next rollout replaces it."""

_STEP_MARKS: dict[str, tuple[str, Tone]] = {
    "pending": ("○", "muted"),
    "upgrading": ("↻", "busy"),
    "upgraded": ("✓", "ok"),
    "failed": ("✗", "bad"),
    "rolled_back": ("↺", "bad"),
    "refused": ("⊘", "warn"),
    "skipped": ("-", "muted"),
}
"""A symbol and a tone per agent step in a rollout."""

_TROUBLE = frozenset({"failed", "rolled_back", "refused"})

_IN_FLIGHT = frozenset({"requested", "downloading", "verifying", "installing", "restarting"})
"""Upgrade steps between the request and ``running``: the upgrade is under way."""


def ago(then: float, now: float) -> str:
    """``4m ago``, ``2h ago``, ``<1m ago``: minutes at best, so a line does not change
    every second (``fmt.age``'s coarse form)."""
    return fmt.age(then, now, coarse=True)


def current_wave(r: RolloutInfo) -> int | None:
    """The wave that is upgrading or being watched (0: the canaries), if any."""
    moving = [w.index for w in r.waves if w.state in ("upgrading", "soaking")]
    if moving:
        return moving[0]
    started = [w.index for w in r.waves if w.state != "pending"]
    return max(started) if started else None


def rollout_label(r: RolloutInfo) -> str:
    """Symbol and state: ``▶ wave 1``, ``✗ halted``, ``○ waiting``."""
    mark, _ = _MARKS.get(r.state, ("?", ""))
    word: str = r.state
    if r.state == "wave":
        index = current_wave(r)
        word = f"wave {index}" if index else "wave"
    return f"{mark} {word}"


def rollout_tone(r: RolloutInfo) -> Tone:
    """The state's tone."""
    return _MARKS.get(r.state, ("?", ""))[1]


def rollout_order(rollouts: Iterable[RolloutInfo]) -> list[RolloutInfo]:
    """Halted first, then those that move, pause or wait, then those over; newest
    first within each state."""
    rank = {state: i for i, state in enumerate(_ORDER)}
    return sorted(rollouts, key=lambda r: (rank.get(r.state, len(rank)), -r.created_at, r.pool))


def rollout_progress(r: RolloutInfo) -> str:
    """``4/10 upgraded``, ``0/10 upgraded, 1 failed``."""
    size = sum(w.size for w in r.waves) or len(r.agents)
    upgraded = sum(w.upgraded for w in r.waves)
    failed = sum(w.failed for w in r.waves)
    text = f"{upgraded}/{size} upgraded"
    return f"{text}, {failed} failed" if failed else text


def rollout_when(r: RolloutInfo, now: float) -> str:
    """``started 25m ago by alice`` while it runs; ``halted 23m ago`` once over."""
    if r.state in ROLLOUT_ACTIVE or r.finished_at is None:
        return f"started {ago(r.created_at, now)} by {r.created_by}"
    return f"{r.state} {ago(r.finished_at, now)}"


def rollout_phase(r: RolloutInfo, now: float) -> str | None:
    """When the watch in progress ends: ``soak ends in 8m``, ``next wave in 4m``;
    None when nothing is counted down (a wait says until when in its own words)."""
    if r.phase_ends_at is None:
        return None
    left = fmt.cert_expiry(r.phase_ends_at, now)
    left = "now" if left == "expired" else left
    if r.state == "soaking":
        return f"soak ends {left}"
    if r.state == "pausing":
        return f"next wave {left}"
    return None


def rollout_plan(r: RolloutInfo) -> str:
    """``canaries 1, soak 10m, waves of 3, pause 5m``: how it was started."""
    return (
        f"canaries {r.canaries}, soak {format_duration(r.soak_s)}, "
        f"waves of {r.wave_size}, pause {format_duration(r.pause_s)}"
    )


def recently_halted(rollouts: Iterable[RolloutInfo], now: float) -> list[RolloutInfo]:
    """Rollouts that halted within :data:`HALTED_SHOWN_S`, the latest first."""
    halted = [
        r
        for r in rollouts
        if r.state == "halted" and now - (r.finished_at or r.updated_at) < HALTED_SHOWN_S
    ]
    return sorted(halted, key=lambda r: r.finished_at or r.updated_at, reverse=True)


def wave_name(index: int) -> str:
    """``canary`` for wave 0, ``wave 2`` for the others."""
    return "canary" if index == 0 else f"wave {index}"


def progress_bar(upgraded: int, failed: int, size: int, width: int) -> str:
    """``██▓░░░``: upgraded (█), failed (▓) and still to go (░), in ``width`` cells.

    A wave with any failure shows at least one ▓, so a failure never rounds away."""
    if width <= 0 or size <= 0:
        return ""
    failed_w = max(1, round(failed / size * width)) if failed else 0
    done_w = min(round(upgraded / size * width), width - failed_w)
    return "█" * done_w + "▓" * failed_w + "░" * (width - done_w - failed_w)


def wave_line(wave: RolloutWave, bar_width: int) -> str:
    """``wave 1  █████░░░░░  1/3  upgrading``, ``canary  ▓▓▓▓▓▓▓▓▓▓  0/1  1 failed``."""
    bar = progress_bar(wave.upgraded, wave.failed, wave.size, bar_width)
    failed = f"  {wave.failed} failed" if wave.failed else ""
    state = "" if wave.state == "failed" and wave.failed else f"  {wave.state}"
    return f"{wave_name(wave.index):<7} {bar}  {wave.upgraded}/{wave.size}{failed}{state}"


def step_label(agent: RolloutAgent) -> str:
    """``✓ upgraded``, ``↺ rolled back``, ``↻ upgrading``."""
    mark, _ = _STEP_MARKS.get(agent.step, ("?", ""))
    return f"{mark} {agent.step.replace('_', ' ')}"


def step_tone(agent: RolloutAgent) -> Tone:
    """The step's tone."""
    return _STEP_MARKS.get(agent.step, ("?", ""))[1]


def agents_in_order(r: RolloutInfo) -> list[RolloutAgent]:
    """The agents in trouble first, then those upgrading, then by wave and name."""

    def key(a: RolloutAgent) -> tuple[int, int, str]:
        rank = 0 if a.step in _TROUBLE else 1 if a.step == "upgrading" else 2
        return (rank, a.wave, a.name)

    return sorted(r.agents, key=key)


def upgrade_line(upgrade: UpgradeInfo, now: float) -> str:
    """The agent detail's ``upgrade`` field: its words and when, e.g. ``upgrading to
    1.5.0: installing · 12s ago``, ``runs 1.5.0 (from 1.4.2) · 4m ago``."""
    words = upgrade_words(upgrade)
    if words is None:
        was = f" (from {upgrade.from_version})" if upgrade.from_version else ""
        words = f"runs {upgrade.version}{was}"
    return f"{words} · {fmt.age(upgrade.at, now)}"


def rollout_step(r: RolloutInfo, agent_id: str) -> str | None:
    """Where an agent is in a rollout, for its detail: ``etl → 1.5.0 (wave): wave 1,
    upgrading``; None when the rollout does not name it."""
    agent = next((a for a in r.agents if a.agent_id == agent_id), None)
    if agent is None:
        return None
    step = agent.step.replace("_", " ")
    return f"{r.pool} → {r.version} ({r.state}): {wave_name(agent.wave)}, {step}"


def upgrade_words(upgrade: UpgradeInfo | None) -> str | None:
    """An upgrade under way or gone wrong, in words; None once it runs (or never was).

    ``upgrading to 1.5.0: installing``, ``rolled back from 1.5.0: exited at start
    twice``, ``upgrade to 1.5.0 failed: bad signature``, ``upgrade to 1.5.0
    refused: busy``.
    """
    if upgrade is None or upgrade.step == "running":
        return None
    detail = f": {upgrade.detail}" if upgrade.detail else ""
    if upgrade.step in _IN_FLIGHT:
        return f"upgrading to {upgrade.version}: {upgrade.step}" + (
            f" ({upgrade.detail})" if upgrade.detail else ""
        )
    if upgrade.step == "rolled_back":
        return f"rolled back from {upgrade.version}{detail}"
    return f"upgrade to {upgrade.version} {upgrade.step}{detail}"


def upgrade_mark(agent: AgentState) -> tuple[str, Literal["", "warn"]] | None:
    """The fleet table's version cell while an upgrade is under way or went wrong:
    ``→1.5.0`` (upgrading to it), ``↺1.4.2`` (rolled back, runs 1.4.2),
    ``✗1.4.2`` (the upgrade failed or was refused, runs 1.4.2); None otherwise."""
    upgrade = agent.upgrade
    if upgrade is None or upgrade.step == "running":
        return None
    if upgrade.step in _IN_FLIGHT:
        return f"→{upgrade.version}", ""
    mark = "↺" if upgrade.step == "rolled_back" else "✗"
    return f"{mark}{agent.version or '-'}", "warn"
