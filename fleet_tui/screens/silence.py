"""Modals to acknowledge an alert, silence alerts by matcher, plan maintenance.

Each says what it will do before it does it; durations are written as everywhere
else in fleet (``90s``, ``30m``, ``2h``, ``1d``: :func:`fleet.units.parse_duration`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from fleet.units import format_duration, parse_duration

from .confirm import _MODAL_CSS

__all__ = [
    "MATCHER_KEYS",
    "AckModal",
    "MaintenanceModal",
    "MaintenanceRequest",
    "SilenceModal",
    "SilenceRequest",
    "parse_matchers",
]

MATCHER_KEYS = ("agent", "pool", "connection", "kind")


def parse_matchers(text: str) -> dict[str, str]:
    """``agent=etl-07 kind=offline`` as a dict.

    Raises:
        ValueError: a word that is not ``KEY=VALUE`` with a known key, or none at all.
    """
    out: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if not sep or key not in MATCHER_KEYS or not value:
            raise ValueError(
                f"{word!r} is not a matcher: write KEY=VALUE with KEY one of "
                f"{', '.join(MATCHER_KEYS)}"
            )
        out[key] = value
    if not out:
        raise ValueError("give at least one matcher, e.g. pool=etl")
    return out


def _duration(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError("give a duration longer than 0, e.g. 30m or 2h")
    return seconds


@dataclass(frozen=True)
class SilenceRequest:
    matchers: dict[str, str]
    duration_s: float
    reason: str


@dataclass(frozen=True)
class MaintenanceRequest:
    scope: Literal["agent", "pool"]
    duration_s: float
    reason: str


class AckModal(ModalScreen[str | None]):
    """Acknowledge an alert: dismiss with the note (may be empty), or None."""

    DEFAULT_CSS = _MODAL_CSS.format(name="AckModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Acknowledge: {self.what}")
            yield Input(placeholder="note, e.g. looking into it", id="ack-note", compact=True)
            yield Static(
                "Repeat notifications stop; the alert stays shown, marked with your name, "
                "until it clears.",
                classes="does",
            )
            with Horizontal():
                yield Button("Cancel", id="ack-cancel", compact=True)
                yield Button("Acknowledge", variant="primary", id="ack-go", compact=True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#ack-go")
    def _submit(self) -> None:
        self.dismiss(self.query_one("#ack-note", Input).value.strip())

    @on(Button.Pressed, "#ack-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class SilenceModal(ModalScreen[SilenceRequest | None]):
    """Silence by matcher (prefilled from the alert), for a duration, with a reason."""

    DEFAULT_CSS = _MODAL_CSS.format(name="SilenceModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, matchers: dict[str, str], duration: str = "2h") -> None:
        super().__init__()
        self._matchers = " ".join(f"{k}={v}" for k, v in matchers.items())
        self._duration = duration

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Silence alerts matching (all of):")
            yield Input(self._matchers, id="silence-matchers", compact=True)
            yield Input(self._duration, placeholder="for, e.g. 2h", id="silence-for", compact=True)
            yield Input(placeholder="reason, e.g. patching", id="silence-reason", compact=True)
            yield Static(classes="does", id="silence-does")
            yield Static(classes="error", id="silence-error")
            with Horizontal():
                yield Button("Cancel", id="silence-cancel", compact=True)
                yield Button("Silence", variant="warning", id="silence-go", compact=True)

    def on_mount(self) -> None:
        self._describe()

    @on(Input.Changed)
    def _describe(self) -> None:
        text = "Matching alerts stay shown, marked silenced, and are not notified"
        try:
            seconds = _duration(self.query_one("#silence-for", Input).value)
        except ValueError:
            text += "."
        else:
            text += f" for {format_duration(seconds)}; then they are notified again."
        self.query_one("#silence-does", Static).update(text)

    @on(Input.Submitted)
    @on(Button.Pressed, "#silence-go")
    def _submit(self) -> None:
        try:
            matchers = parse_matchers(self.query_one("#silence-matchers", Input).value)
            seconds = _duration(self.query_one("#silence-for", Input).value)
        except ValueError as exc:
            self.query_one("#silence-error", Static).update(str(exc))
            return
        reason = self.query_one("#silence-reason", Input).value.strip()
        self.dismiss(SilenceRequest(matchers, seconds, reason))

    @on(Button.Pressed, "#silence-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class MaintenanceModal(ModalScreen[MaintenanceRequest | None]):
    """Plan maintenance of the agent or of its pool, from now, for a duration."""

    DEFAULT_CSS = _MODAL_CSS.format(name="MaintenanceModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, agent_name: str, pool: str, duration: str = "1h") -> None:
        super().__init__()
        self.agent_name = agent_name
        self.pool = pool
        self._duration = duration

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Maintenance window, from now")
            with RadioSet(id="mnt-scope"):
                yield RadioButton(f"this agent ({self.agent_name})", value=True, id="mnt-agent")
                yield RadioButton(f"its whole pool ({self.pool})", id="mnt-pool")
            yield Input(self._duration, placeholder="for, e.g. 1h", id="mnt-for", compact=True)
            yield Input(placeholder="reason, e.g. kernel update", id="mnt-reason", compact=True)
            yield Static(classes="does", id="mnt-does")
            yield Static(classes="error", id="mnt-error")
            with Horizontal():
                yield Button("Cancel", id="mnt-cancel", compact=True)
                yield Button("Plan", variant="warning", id="mnt-go", compact=True)

    def on_mount(self) -> None:
        self._describe()

    def _scope(self) -> Literal["agent", "pool"]:
        return "pool" if self.query_one("#mnt-pool", RadioButton).value else "agent"

    @on(Input.Changed)
    @on(RadioSet.Changed)
    def _describe(self) -> None:
        what = f"pool {self.pool}" if self._scope() == "pool" else f"agent {self.agent_name}"
        held = "its agents' alerts and its minimum" if self._scope() == "pool" else "its alerts"
        self.query_one("#mnt-does", Static).update(
            f"During the window {what} is in maintenance: {held} are shown as such and "
            "not notified."
        )

    @on(Input.Submitted)
    @on(Button.Pressed, "#mnt-go")
    def _submit(self) -> None:
        try:
            seconds = _duration(self.query_one("#mnt-for", Input).value)
        except ValueError as exc:
            self.query_one("#mnt-error", Static).update(str(exc))
            return
        reason = self.query_one("#mnt-reason", Input).value.strip()
        self.dismiss(MaintenanceRequest(self._scope(), seconds, reason))

    @on(Button.Pressed, "#mnt-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
