"""Modals that confirm a rollout's abort and a remediation's approval or rejection.

Each says what will happen before it does: an abort rolls back the agents the
rollout upgraded; an approval runs the action now, as you; a rejection keeps it
from running.  The note of a decision is kept with the remediation and in the audit.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from fleet.protocol import RemediationInfo, RolloutInfo
from fleet.units import LABEL_VALUE_MAX

from .. import format as fmt
from ..remediations import action_words
from ..widgets.form import FormInput
from .confirm import _MODAL_CSS

__all__ = ["AbortRolloutModal", "DecisionModal"]


class AbortRolloutModal(ModalScreen[bool]):
    """Abort a rollout?  Dismissed with True to do it."""

    DEFAULT_CSS = (
        _MODAL_CSS.format(name="AbortRolloutModal")
        + """
    AbortRolloutModal > Vertical { border: thick $error; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, rollout: RolloutInfo) -> None:
        super().__init__()
        self.rollout = rollout

    def compose(self) -> ComposeResult:
        r = self.rollout
        touched = [a.name for a in r.agents if a.step in ("upgraded", "upgrading")]
        if touched:
            names = ", ".join(touched[:5]) + (", …" if len(touched) > 5 else "")
            back = f"rolls back the agents it upgraded or is upgrading ({len(touched)}: {names})"
        else:
            back = "has upgraded no agent yet: nothing to roll back"
        with Vertical():
            yield Label(f"Abort the rollout of {r.version} to pool {r.pool}?")
            yield Static(
                f"Rollout {r.id} stops now: no further wave starts, and it {back}. "
                "It cannot be resumed; the audit log keeps who aborted it.",
                classes="does",
                id="abort-does",
            )
            with Horizontal():
                yield Button("Cancel", id="abort-cancel", compact=True)
                yield Button("Abort rollout", variant="error", id="abort-go", compact=True)

    def on_mount(self) -> None:
        self.query_one("#abort-go", Button).focus()

    @on(Button.Pressed, "#abort-go")
    def _abort(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#abort-cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class DecisionModal(ModalScreen[str | None]):
    """Approve or reject a remediation: dismissed with the note (may be empty), or
    None to leave it waiting."""

    DEFAULT_CSS = _MODAL_CSS.format(name="DecisionModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(
        self, remediation: RemediationInfo, verb: Literal["approve", "reject"], now: float
    ) -> None:
        super().__init__()
        self.remediation = remediation
        self.verb = verb
        self.now = now

    def compose(self) -> ComposeResult:
        r = self.remediation
        what = action_words(r)
        if self.verb == "approve":
            does = (
                f"Runs it now, as you: the control plane will {what} (pool {r.pool}). "
                "The note is kept with it and in the audit."
            )
        else:
            does = (
                f"It will not run: {r.agent_name} is left as it is. The note is kept with "
                "it and in the audit."
            )
        why = f" Waits for approval: {r.why_approval}." if r.why_approval else ""
        queued = fmt.age(r.created_at, self.now, coarse=True)
        if r.expires_at is not None and self.verb == "approve":
            queued += f", expires {fmt.cert_expiry(r.expires_at, self.now)}"
        with Vertical():
            yield Label(f"{self.verb.capitalize()}: {what}?")
            yield Static(
                f"{r.condition} (queued {queued}).{why}", classes="does", id="decision-why"
            )
            yield FormInput(
                placeholder="note (optional), e.g. checked the host first",
                max_length=LABEL_VALUE_MAX,
                id="decision-note",
                compact=True,
            )
            yield Static(does, classes="does", id="decision-does")
            with Horizontal():
                yield Button("Cancel", id="decision-cancel", compact=True)
                yield Button(
                    self.verb.capitalize(),
                    variant="primary" if self.verb == "approve" else "error",
                    id="decision-go",
                    compact=True,
                )

    def on_mount(self) -> None:
        self.set_focus(self.query_one("#decision-note", Input))

    @on(Input.Submitted)
    @on(Button.Pressed, "#decision-go")
    def _submit(self) -> None:
        self.dismiss(self.query_one("#decision-note", Input).value.strip())

    @on(Button.Pressed, "#decision-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
