"""The one place that decides what the user may do.

Every gated action (a key, the command palette, a button in a screen) asks
:meth:`Gate.allows` through :meth:`FleetApp.check_action`; nothing else hides or
enables actions.  The server enforces roles anyway: this gate only keeps the
dashboard honest about what will be refused.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTIONS",
    "ALERT_ACTIONS",
    "CONNECTION_ACTIONS",
    "HOLD_ACTIONS",
    "REMEDIATION_ACTIONS",
    "ROLE_RANK",
    "ROLLOUT_ACTIONS",
    "ActionSpec",
    "Gate",
]

ROLE_RANK = {"viewer": 0, "operator": 1, "admin": 2}
"""Roles in order; a higher role may do all a lower one may."""


@dataclass(frozen=True)
class ActionSpec:
    """A gated action: who may run it and what it will do, in words."""

    name: str
    title: str
    role: str
    does: str


ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "probe",
            "Probe from agent",
            "operator",
            "asks the agent to open a TCP (or TLS) connection to a host and port, and "
            "shows the timings and why it failed",
        ),
        ActionSpec(
            "logs",
            "Fetch agent logs",
            "operator",
            "fetches the agent's recent logs (redacted on the agent), saves them to a "
            "file and opens them in a viewer",
        ),
        ActionSpec(
            "pin",
            "Pin version",
            "admin",
            "pins a version for the agent or for its whole pool",
        ),
        ActionSpec(
            "revoke",
            "Revoke agent",
            "admin",
            "revokes the agent's identity: its channel closes and it must enroll again",
        ),
    )
}
"""Every action that changes or asks something of an agent."""

ALERT_ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "ack_alert",
            "Acknowledge alert",
            "operator",
            "acknowledges the selected alert with a note: repeat notifications stop, it "
            "stays shown with your name",
        ),
        ActionSpec(
            "unack_alert",
            "Take back acknowledgement",
            "operator",
            "takes back the selected alert's acknowledgement: it is notified again",
        ),
        ActionSpec(
            "silence_alert",
            "Silence alerts",
            "operator",
            "silences the alerts of the selected alert's target for a while, with a reason",
        ),
        ActionSpec(
            "maintenance",
            "Plan maintenance",
            "operator",
            "puts the agent or its pool in maintenance for a while: its alerts are held back",
        ),
    )
}
"""Actions on alerts and maintenance: they act on an alert or a pool, not only an agent,
so the app's check does not hide them; each says why when it may not run."""


CONNECTION_ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "connection_probe",
            "Probe connection",
            "operator",
            "probes the selected connection through its route: from a healthy agent of "
            "its pools, as its jobs would reach it",
        ),
        ActionSpec(
            "connection_add",
            "Add connection",
            "admin",
            "registers a connection: host, port, the pools that reach it, its jobs' schedules",
        ),
        ActionSpec(
            "connection_edit",
            "Edit connection",
            "admin",
            "changes the selected connection's host, port, pools or schedules",
        ),
    )
}
"""The connections view's actions: on the selected connection, never on an agent."""

HOLD_ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "end_hold",
            "End silence or maintenance",
            "operator",
            "ends the selected silence or maintenance window now: what it held back is "
            "notified again",
        ),
    )
}
"""The held-back view's actions: on the selected silence or maintenance window."""

ROLLOUT_ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "pause_rollout",
            "Pause rollout",
            "operator",
            "pauses the selected rollout: upgrades in flight finish, no new wave starts, "
            "the health gate watches on",
        ),
        ActionSpec(
            "resume_rollout",
            "Resume rollout",
            "operator",
            "resumes the selected paused rollout from where it was",
        ),
        ActionSpec(
            "abort_rollout",
            "Abort rollout",
            "operator",
            "stops the selected rollout and rolls back every agent it upgraded, after a "
            "confirmation",
        ),
    )
}
"""The rollouts view's actions: on the selected rollout."""

REMEDIATION_ACTIONS: dict[str, ActionSpec] = {
    spec.name: spec
    for spec in (
        ActionSpec(
            "approve_remediation",
            "Approve remediation",
            "operator",
            "runs the selected waiting remediation now, as you, with a note",
        ),
        ActionSpec(
            "reject_remediation",
            "Reject remediation",
            "operator",
            "rejects the selected waiting remediation, with a note: it does not run",
        ),
    )
}
"""The remediation inbox's actions: on the selected remediation waiting for approval."""

WALL_ALLOWED = frozenset({"quit"})
"""The only action a wall display accepts."""


@dataclass(frozen=True)
class Gate:
    """What this session may do.

    Args:
        role: The role the server gave this token (from the snapshot).
        wall: A wall display, where every input but quit is locked.
    """

    role: str = "viewer"
    wall: bool = False

    def allows(self, action: str) -> bool:
        """True when ``action`` may run now."""
        if self.wall:
            return action in WALL_ALLOWED
        spec = _spec(action)
        if spec is None:
            return True
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[spec.role]

    def why_not(self, action: str) -> str | None:
        """Why ``action`` is unavailable, or None when it is allowed."""
        if self.allows(action):
            return None
        if self.wall:
            return "this is a wall display: only quit is accepted"
        spec = _spec(action)
        assert spec is not None  # only a gated action is ever refused
        return (
            f"{spec.title} needs the {spec.role} role; you are {_a(self.role)}. "
            f"Ask an admin for {_a(spec.role)} token."
        )


def _spec(action: str) -> ActionSpec | None:
    for specs in (
        ACTIONS,
        ALERT_ACTIONS,
        CONNECTION_ACTIONS,
        HOLD_ACTIONS,
        ROLLOUT_ACTIONS,
        REMEDIATION_ACTIONS,
    ):
        if action in specs:
            return specs[action]
    return None


def _a(word: str) -> str:
    """``viewer`` -> ``a viewer``, ``operator`` -> ``an operator``."""
    return f"{'an' if word[:1] in 'aeiou' else 'a'} {word}"
