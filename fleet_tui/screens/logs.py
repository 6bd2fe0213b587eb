"""A log viewer with search, over a file already saved to disk."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Input, Label, RichLog

from .. import format as fmt

__all__ = ["LogViewer", "matching_lines"]


def matching_lines(lines: list[str], query: str) -> list[str]:
    """Lines that contain ``query``, case-insensitively (all lines for an empty query)."""
    needle = query.strip().lower()
    if not needle:
        return lines
    return [line for line in lines if needle in line.lower()]


class LogViewer(Screen[None]):
    """Shows a saved log file; typing in the search box keeps only matching lines."""

    DEFAULT_CSS = """
    LogViewer #log-path { padding: 0 1; background: $panel; width: 100%; }
    LogViewer #log-count { padding: 0 1; color: $text-muted; }
    LogViewer RichLog { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close"),
        Binding("slash", "search", "Search"),
    ]
    """Escape closes; / goes to the search box."""

    def __init__(self, agent_name: str, path: Path) -> None:
        super().__init__()
        self.agent_name = agent_name
        self.path = path
        self.lines = path.read_text(errors="replace").splitlines()

    def compose(self) -> ComposeResult:
        yield Label(f"Logs of {self.agent_name}, saved to {self.path}", id="log-path")
        yield Input(placeholder="search (/)", id="log-search")
        yield Label(id="log-count")
        yield RichLog(id="log-lines", highlight=False, markup=False, wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        self._show("")
        self.query_one(RichLog).focus()

    @on(Input.Changed, "#log-search")
    def _search(self, event: Input.Changed) -> None:
        self._show(event.value)

    def _show(self, query: str) -> None:
        view = self.query_one(RichLog)
        view.clear()
        shown = matching_lines(self.lines, query)
        needle = query.strip()
        for line in shown:
            text = Text(line)
            if needle:
                text.highlight_words([needle], style="reverse", case_sensitive=False)
            view.write(text)
        count = f"{len(shown)} of {fmt.count(len(self.lines), 'line')}"
        self.query_one("#log-count", Label).update(f"{count} match {needle!r}" if needle else count)

    def action_search(self) -> None:
        self.query_one("#log-search", Input).focus()

    def action_close(self) -> None:
        self.dismiss(None)
