"""The modal that adds or edits a connection: name, host, port, pools, schedules."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from fleet.protocol import ConnectionInfo
from fleet.schedule_text import EXAMPLE, format_schedule, parse_schedules

__all__ = ["ConnectionModal", "Save", "connection_body"]


def connection_body(
    name: str, host: str, port_text: str, pools_text: str, schedules_text: str
) -> dict[str, Any] | str:
    """The REST body for these fields, or what to fix (a sentence) when one is wrong.

    Only the shape is checked here; names, the cron and the zone are the server's to
    judge, and its 422 is shown as it is.
    """
    if not name:
        return "Give the connection a name."
    if not host:
        return "Give a host (a name or an address)."
    port = 0
    with contextlib.suppress(ValueError):
        port = int(port_text)
    if not 1 <= port <= 65535:
        return "Give a port between 1 and 65535."
    pools = [p.strip() for p in pools_text.replace(",", " ").split() if p.strip()]
    if not pools:
        return "Give at least one pool whose agents reach it (comma-separated)."
    try:
        schedules = parse_schedules(schedules_text)
    except ValueError as exc:
        return str(exc)
    return {"name": name, "host": host, "port": port, "pools": pools, "schedules": schedules}


Save = Callable[[dict[str, Any]], Awaitable[str | None]]
"""Sends the body; returns the server's refusal as text, or None when it was saved."""


class ConnectionModal(ModalScreen[dict[str, Any] | None]):
    """Ask for a connection's fields and save them; dismiss with the body saved, or None.

    A refusal by the server (a name in use, a bad cron or zone) is shown in the modal,
    with what was typed kept, to fix and save again.

    Args:
        save: Sends the body to the control plane (:data:`Save`).
        existing: The connection to edit (its name cannot change), or None to add one.
    """

    DEFAULT_CSS = """
    ConnectionModal { align: center middle; }
    ConnectionModal > Vertical {
        width: 76; max-width: 100%; height: auto; max-height: 100%; padding: 0 1;
        border: thick $accent; background: $surface; overflow-y: auto;
    }
    ConnectionModal .title { text-style: bold; margin-bottom: 1; }
    ConnectionModal Input { margin-bottom: 1; }
    ConnectionModal .hint { color: $text-muted; }
    ConnectionModal #conn-error { color: $error; }
    ConnectionModal Horizontal { height: auto; align-horizontal: right; }
    ConnectionModal Button { margin-left: 2; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    """Escape cancels."""

    def __init__(self, save: Save, existing: ConnectionInfo | None = None) -> None:
        super().__init__()
        self.save = save
        self.existing = existing

    def compose(self) -> ComposeResult:
        conn = self.existing
        schedules = "; ".join(
            format_schedule(s.cron, s.timezone, s.name) for s in (conn.schedules if conn else [])
        )
        with Vertical():
            title = f"Edit connection {conn.name}" if conn else "Add a connection"
            yield Label(title, classes="title")
            fields = (
                ("name", "name", conn.name if conn else "", "e.g. orders-db"),
                ("host", "host", conn.host if conn else "", "e.g. db.internal"),
                ("port", "port", str(conn.port) if conn else "", "e.g. 5432"),
                (
                    "pools",
                    "pools (comma-separated, in the order to try)",
                    ", ".join(conn.pools) if conn else "",
                    "e.g. db-east, db-west",
                ),
                (
                    "schedules",
                    "schedules of the jobs that use it ([name=]cron@zone, ';' between)",
                    schedules,
                    f"e.g. {EXAMPLE}",
                ),
            )
            for key, label, value, hint in fields:
                yield Label(label)
                yield Input(
                    value,
                    placeholder=hint,
                    id=f"conn-{key}",
                    compact=True,
                    type="integer" if key == "port" else "text",
                    disabled=key == "name" and conn is not None,
                )
            yield Static(
                "The control plane warns ahead of each run when no healthy agent of the "
                "pools can reach it.",
                classes="hint",
            )
            yield Static(id="conn-error")
            with Horizontal():
                yield Button("Cancel", id="conn-cancel", compact=True)
                yield Button("Save", variant="primary", id="conn-save", compact=True)

    def on_mount(self) -> None:
        first = "#conn-host" if self.existing else "#conn-name"
        self.query_one(first, Input).focus()

    def _value(self, selector: str) -> str:
        return self.query_one(selector, Input).value.strip()

    @on(Input.Submitted)
    @on(Button.Pressed, "#conn-save")
    def _submit(self) -> None:
        body = connection_body(
            self._value("#conn-name"),
            self._value("#conn-host"),
            self._value("#conn-port"),
            self._value("#conn-pools"),
            self._value("#conn-schedules"),
        )
        if isinstance(body, str):
            self._error(body)
            return
        if self.existing is not None:
            del body["name"]  # the path names it
        self._save(body)

    @work(exclusive=True, group="connection-save")
    async def _save(self, body: dict[str, Any]) -> None:
        self._error("Saving…")
        refused = await self.save(body)
        if refused is not None:
            self._error(refused)
            return
        self.dismiss(body)

    def _error(self, text: str) -> None:
        # Text, not markup: a server's message may hold brackets.
        self.query_one("#conn-error", Static).update(Text(text))

    @on(Button.Pressed, "#conn-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
