"""Modals for the actions that change things: pin a version, revoke an agent, fetch logs."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from ..widgets.choice import Choice

__all__ = ["LogsModal", "PinModal", "PinRequest", "RevokeModal"]

_MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 72; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
    border: thick $accent; background: $surface; overflow-y: auto;
}}
{name} RadioSet {{ border: none; padding: 0; }}
{name} Input {{ margin-top: 1; }}
{name} .does {{ color: $text-muted; margin: 1 0; }}
{name} .error {{ color: $error; }}
{name} Horizontal {{ height: auto; align-horizontal: right; }}
{name} Button {{ margin-left: 2; }}
"""


@dataclass(frozen=True)
class PinRequest:
    """Pin ``version`` on one agent or on its whole pool."""

    version: str
    scope: Literal["agent", "pool"]


class PinModal(ModalScreen[PinRequest | None]):
    """Choose a version and whether it applies to the agent or its pool."""

    DEFAULT_CSS = _MODAL_CSS.format(name="PinModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, agent_name: str, pool: str, version: str | None) -> None:
        super().__init__()
        self.agent_name = agent_name
        self.pool = pool
        self._version = version or ""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Pin a version for {self.agent_name}")
            yield Input(
                self._version, placeholder="version, e.g. 1.4.2", id="pin-version", compact=True
            )
            with RadioSet(id="pin-scope"):
                yield Choice(f"this agent ({self.agent_name})", value=True, id="pin-agent")
                yield Choice(f"its whole pool ({self.pool})", id="pin-pool")
            yield Static(classes="does", id="pin-does")
            with Horizontal():
                yield Button("Cancel", id="pin-cancel", compact=True)
                yield Button("Pin", variant="warning", id="pin-go", compact=True)

    def on_mount(self) -> None:
        self._describe()

    def _scope(self) -> Literal["agent", "pool"]:
        return "pool" if self.query_one("#pin-pool", RadioButton).value else "agent"

    @on(Input.Changed)
    @on(RadioSet.Changed)
    def _describe(self) -> None:
        version = self.query_one("#pin-version", Input).value.strip() or "<version>"
        if self._scope() == "pool":
            text = (
                f"Will pin every agent in pool {self.pool} to version {version}; "
                "agents on another version show as drifted until they update."
            )
        else:
            text = f"Will pin agent {self.agent_name} to version {version}."
        self.query_one("#pin-does", Static).update(text)

    @on(Input.Submitted)
    @on(Button.Pressed, "#pin-go")
    def _submit(self) -> None:
        version = self.query_one("#pin-version", Input).value.strip()
        if version:
            self.dismiss(PinRequest(version=version, scope=self._scope()))

    @on(Button.Pressed, "#pin-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class RevokeModal(ModalScreen[bool]):
    """Revoke only after the agent's name is typed in full."""

    DEFAULT_CSS = (
        _MODAL_CSS.format(name="RevokeModal")
        + """
    RevokeModal > Vertical { border: thick $error; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, agent_name: str, agent_id: str) -> None:
        super().__init__()
        self.agent_name = agent_name
        self.agent_id = agent_id

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Revoke {self.agent_name}?")
            yield Static(
                f"Will revoke agent {self.agent_name} ({self.agent_id}): its certificate is "
                "refused from now on, its channel is closed and it will not reconnect; it "
                "must enroll again with a new token. This cannot be undone.",
                classes="does",
            )
            yield Label(f"Type {self.agent_name} to confirm:")
            yield Input(placeholder=self.agent_name, id="revoke-name", compact=True)
            with Horizontal():
                yield Button("Cancel", id="revoke-cancel", compact=True)
                yield Button("Revoke", variant="error", id="revoke-go", disabled=True, compact=True)

    @on(Input.Changed, "#revoke-name")
    def _check(self, event: Input.Changed) -> None:
        self.query_one("#revoke-go", Button).disabled = event.value.strip() != self.agent_name

    @on(Input.Submitted, "#revoke-name")
    @on(Button.Pressed, "#revoke-go")
    def _submit(self) -> None:
        if self.query_one("#revoke-name", Input).value.strip() == self.agent_name:
            self.dismiss(True)

    @on(Button.Pressed, "#revoke-cancel")
    def action_cancel(self) -> None:
        self.dismiss(False)


class LogsModal(ModalScreen[int | None]):
    """Say where the logs will go; dismiss with the number of lines, or None."""

    DEFAULT_CSS = _MODAL_CSS.format(name="LogsModal")
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, agent_name: str, directory: str) -> None:
        super().__init__()
        self.agent_name = agent_name
        self.directory = directory

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Fetch logs from {self.agent_name}")
            yield Input("500", type="integer", placeholder="lines", id="logs-lines", compact=True)
            yield Static(
                f"Will fetch the last lines of {self.agent_name}'s log (redacted on the agent), "
                f"save them under {self.directory} and open them in a viewer.",
                classes="does",
            )
            yield Static(classes="error", id="logs-error")
            with Horizontal():
                yield Button("Cancel", id="logs-cancel", compact=True)
                yield Button("Fetch", variant="primary", id="logs-go", compact=True)

    @on(Input.Submitted)
    @on(Button.Pressed, "#logs-go")
    def _submit(self) -> None:
        lines = 0
        with contextlib.suppress(ValueError):
            lines = int(self.query_one("#logs-lines", Input).value)
        if 1 <= lines <= 10_000:
            self.dismiss(lines)
        else:
            self.query_one("#logs-error", Static).update("Give between 1 and 10000 lines.")

    @on(Button.Pressed, "#logs-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
