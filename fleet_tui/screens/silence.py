"""Modals to acknowledge an alert, silence alerts by matcher, plan maintenance, and
end a silence or a window.

Each says what it will do before it does it; durations are written as everywhere
else in fleet (``90s``, ``30m``, ``2h``, ``1d``: :func:`fleet.units.parse_duration`),
and so are start times (empty for now, ``+30m``, ``2026-05-01T14:00`` in local time
or ``2026-05-01T12:00Z``: :func:`fleet.units.parse_start`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from fleet.units import format_ago, format_duration, parse_duration, parse_start

from ..holds import MATCHER_KEYS, Hold, clock_time
from ..widgets.choice import Choice
from ..widgets.form import FormInput, FormRadioSet
from .confirm import _MODAL_CSS

__all__ = [
    "AckModal",
    "EndHoldModal",
    "MaintenanceModal",
    "MaintenanceRequest",
    "SilenceModal",
    "SilenceRequest",
    "parse_matchers",
]

_FORM_CSS = """
{name} .field {{ height: auto; margin-top: 1; align-horizontal: left; }}
{name} .field Label {{ width: 8; color: $text-muted; }}
{name} .field Input {{ width: 1fr; margin-top: 0; }}
"""
"""Labelled fields, one a row: ``start  [+30m        ]``."""


def _start_placeholder(now: float) -> str:
    today = dt.datetime.fromtimestamp(now).strftime("%Y-%m-%d")
    return f"now; or +30m, {today}T14:00 (local time), …T12:00Z"


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
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise ValueError(f"for: {exc}") from None
    if seconds <= 0:
        raise ValueError("for: give a duration longer than 0, e.g. 30m or 2h")
    return seconds


def _start(text: str, now: float) -> float | None:
    """None (now) for an empty field, else the start it names."""
    if not text.strip():
        return None
    try:
        return parse_start(text, now)
    except ValueError as exc:
        raise ValueError(f"start: {exc}") from None


def _span_words(start_text: str, duration_text: str, now: float) -> str:
    """``from now for 1h (until 15:30Z)``, ``from 14:30Z (in 25m) for 1h (until
    15:30Z)``, as far as the fields are understood yet."""
    try:
        start = _start(start_text, now)
    except ValueError:
        begin, start = "from a start that is not a time yet", None
    else:
        start = now if start is None else max(start, now)
        later = f"from {clock_time(start, now)} ({format_ago(start, now)})"
        begin = "from now" if start == now else later
    try:
        seconds = _duration(duration_text)
    except ValueError:
        return begin
    if start is None:
        return f"{begin}, for {format_duration(seconds)}"
    return f"{begin} for {format_duration(seconds)} (until {clock_time(start + seconds, now)})"


def _field(label: str, field: Input) -> Horizontal:
    return Horizontal(Label(label), field, classes="field")


@dataclass(frozen=True)
class SilenceRequest:
    matchers: dict[str, str]
    duration_s: float
    reason: str
    starts_at: float | None = None
    """Epoch seconds; None: now."""


@dataclass(frozen=True)
class MaintenanceRequest:
    scope: Literal["agent", "pool"]
    duration_s: float
    reason: str
    starts_at: float | None = None
    """Epoch seconds; None: now."""


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
            yield FormInput(placeholder="note, e.g. looking into it", id="ack-note", compact=True)
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
    """Silence by matcher (prefilled from the alert), from a start (empty: now), for a
    duration, with a reason.

    Args:
        matchers: The matchers to start from.
        duration: The duration to start from.
        clock: The time now (the server's, as the dashboard knows it).
    """

    DEFAULT_CSS = _MODAL_CSS.format(name="SilenceModal") + _FORM_CSS.format(name="SilenceModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels (Tab, Shift+Tab and Enter are the fields' own: :mod:`..widgets.form`)."""

    def __init__(
        self,
        matchers: dict[str, str],
        duration: str = "2h",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self._matchers = " ".join(f"{k}={v}" for k, v in matchers.items())
        self._duration = duration
        self._clock = clock

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Silence the alerts that match all of")
            yield _field(
                "match",
                FormInput(
                    self._matchers,
                    placeholder="KEY=VALUE…, KEY one of agent, pool, connection, kind",
                    id="silence-matchers",
                    compact=True,
                    # Typing adds to the alert's matcher (" kind=stale"), not replaces it.
                    select_on_focus=False,
                ),
            )
            yield _field(
                "start",
                FormInput(
                    placeholder=_start_placeholder(self._clock()), id="silence-start", compact=True
                ),
            )
            yield _field(
                "for",
                FormInput(self._duration, placeholder="e.g. 2h", id="silence-for", compact=True),
            )
            yield _field(
                "reason", FormInput(placeholder="e.g. patching", id="silence-reason", compact=True)
            )
            yield Static(classes="does", id="silence-does")
            yield Static(classes="error", id="silence-error")
            with Horizontal():
                yield Button("Cancel", id="silence-cancel", compact=True)
                yield Button("Silence", variant="warning", id="silence-go", compact=True)

    def on_mount(self) -> None:
        self._describe()

    @on(Input.Changed)
    def _describe(self) -> None:
        span = _span_words(
            self.query_one("#silence-start", Input).value,
            self.query_one("#silence-for", Input).value,
            self._clock(),
        )
        text = (
            f"Matching alerts stay shown, marked silenced, and are not notified {span}; "
            "then they are notified again."
        )
        self.query_one("#silence-does", Static).update(text)
        self.query_one("#silence-error", Static).update("")

    @on(Input.Submitted)
    @on(Button.Pressed, "#silence-go")
    def _submit(self) -> None:
        try:
            matchers = parse_matchers(self.query_one("#silence-matchers", Input).value)
            start = _start(self.query_one("#silence-start", Input).value, self._clock())
            seconds = _duration(self.query_one("#silence-for", Input).value)
        except ValueError as exc:
            self.query_one("#silence-error", Static).update(str(exc))
            return
        reason = self.query_one("#silence-reason", Input).value.strip()
        self.dismiss(SilenceRequest(matchers, seconds, reason, start))

    @on(Button.Pressed, "#silence-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class MaintenanceModal(ModalScreen[MaintenanceRequest | None]):
    """Plan maintenance of the agent or of its pool, from a start (empty: now), for a
    duration, with a reason.

    Args:
        agent_name: The agent under the cursor.
        pool: Its pool.
        duration: The duration to start from.
        clock: The time now (the server's, as the dashboard knows it).
    """

    DEFAULT_CSS = _MODAL_CSS.format(name="MaintenanceModal") + _FORM_CSS.format(
        name="MaintenanceModal"
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels (Tab, Shift+Tab and Enter are the fields' own: :mod:`..widgets.form`)."""

    def __init__(
        self,
        agent_name: str,
        pool: str,
        duration: str = "1h",
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        self.agent_name = agent_name
        self.pool = pool
        self._duration = duration
        self._clock = clock

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Maintenance window")
            with FormRadioSet(id="mnt-scope"):
                yield Choice(f"this agent ({self.agent_name})", value=True, id="mnt-agent")
                yield Choice(f"its whole pool ({self.pool})", id="mnt-pool")
            yield _field(
                "start",
                FormInput(
                    placeholder=_start_placeholder(self._clock()), id="mnt-start", compact=True
                ),
            )
            yield _field(
                "for", FormInput(self._duration, placeholder="e.g. 1h", id="mnt-for", compact=True)
            )
            yield _field(
                "reason", FormInput(placeholder="e.g. kernel update", id="mnt-reason", compact=True)
            )
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
        span = _span_words(
            self.query_one("#mnt-start", Input).value,
            self.query_one("#mnt-for", Input).value,
            self._clock(),
        )
        self.query_one("#mnt-does", Static).update(
            f"{span[0].upper()}{span[1:]}, {what} is in maintenance: {held} are shown as "
            "such and not notified."
        )
        self.query_one("#mnt-error", Static).update("")

    @on(Input.Submitted)
    @on(FormRadioSet.Submitted)
    @on(Button.Pressed, "#mnt-go")
    def _submit(self) -> None:
        try:
            start = _start(self.query_one("#mnt-start", Input).value, self._clock())
            seconds = _duration(self.query_one("#mnt-for", Input).value)
        except ValueError as exc:
            self.query_one("#mnt-error", Static).update(str(exc))
            return
        reason = self.query_one("#mnt-reason", Input).value.strip()
        self.dismiss(MaintenanceRequest(self._scope(), seconds, reason, start))

    @on(Button.Pressed, "#mnt-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class EndHoldModal(ModalScreen[bool]):
    """End a silence or a maintenance window now (or call off a planned one)?
    Dismissed with True to do it."""

    DEFAULT_CSS = _MODAL_CSS.format(name="EndHoldModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, hold: Hold, now: float) -> None:
        super().__init__()
        self.hold = hold
        self.now = now

    def compose(self) -> ComposeResult:
        hold = self.hold
        held = "matching alerts" if hold.kind == "silence" else "its alerts"
        if hold.active(self.now):
            title, go = f"End {hold.noun} {hold.id} now?", "End now"
            does = f"From now on {held} are notified again"
        else:
            title, go = f"Call off the planned {hold.noun} {hold.id}?", "Call off"
            start, end = clock_time(hold.starts_at, self.now), clock_time(hold.ends_at, self.now)
            does = f"Planned from {start} ({format_ago(hold.starts_at, self.now)}) to {end}, "
            does += "it will not start"
        with Vertical():
            yield Label(title)
            yield Static(
                f"{hold.title()}, {hold.said()}. {does}; the audit log keeps who ended it.",
                classes="does",
            )
            with Horizontal():
                yield Button("Cancel", id="end-cancel", compact=True)
                yield Button(go, variant="error", id="end-go", compact=True)

    def on_mount(self) -> None:
        self.query_one("#end-go", Button).focus()

    @on(Button.Pressed, "#end-go")
    def _end(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#end-cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)
