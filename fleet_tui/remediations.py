"""Remediations in words and symbols, readable without colour.  No Textual.

What the inbox (:mod:`fleet_tui.screens.inbox`), the agent's detail and the wall
say of a remediation: what held, what it does, why it waits, who decided.
"""

from __future__ import annotations

from collections.abc import Iterable

from fleet.protocol import RemediationInfo

from .rollouts import Tone, ago

__all__ = [
    "action_words",
    "approvals_badge",
    "decided_words",
    "recent_in_order",
    "remediation_label",
    "remediation_tone",
]

_MARKS: dict[str, tuple[str, str, Tone]] = {
    "pending_approval": ("⚑", "waits for approval", "warn"),
    "running": ("↻", "running", "busy"),
    "done": ("✓", "done", "ok"),
    "failed": ("✗", "failed", "bad"),
    "rejected": ("⊘", "rejected", "muted"),
    "expired": ("○", "expired", "muted"),
}
"""Symbol, words and tone per remediation state."""

_ACTIONS = {
    "restart": "restart",
    "renew": "renew the certificate of",
    "rollback": "roll back",
    "move_connections": "move the connections of",
}


def remediation_label(r: RemediationInfo) -> str:
    """``⚑ waits for approval``, ``✓ done``, ``⊘ rejected``."""
    mark, word, _ = _MARKS.get(r.state, ("?", r.state, ""))
    return f"{mark} {word}"


def remediation_tone(r: RemediationInfo) -> Tone:
    """The state's tone."""
    return _MARKS.get(r.state, ("?", "", ""))[2]


def action_words(r: RemediationInfo) -> str:
    """``restart build-us-0001``, ``move the connections of build-eu-0005``."""
    return f"{_ACTIONS.get(r.action, r.action)} {r.agent_name}"


def decided_words(r: RemediationInfo, now: float) -> str:
    """Who ran or decided it and when, and its outcome: ``by itself 55m ago:
    restarted; back after 4 s``, ``rejected by bob 45m ago: network blip``."""
    if r.decided_by:
        verb = "rejected" if r.state == "rejected" else "approved"
        who = f"{verb} by {r.decided_by} {ago(r.decided_at or r.created_at, now)}"
    elif r.state == "expired":
        who = f"expired {ago(r.finished_at or r.created_at, now)}"
    elif r.automatic:
        who = f"by itself {ago(r.created_at, now)}"
    else:
        who = ago(r.created_at, now)
    return f"{who}: {r.detail}" if r.detail else who


def recent_in_order(remediations: Iterable[RemediationInfo]) -> list[RemediationInfo]:
    """Every remediation not waiting for approval, the latest decided or made first."""
    done = (r for r in remediations if r.state != "pending_approval")
    return sorted(done, key=lambda r: r.decided_at or r.created_at, reverse=True)


def approvals_badge(waiting: int) -> str:
    """``⚑ 2 to approve`` for the header, or "" when nothing waits."""
    return f"⚑ {waiting} to approve" if waiting else ""
