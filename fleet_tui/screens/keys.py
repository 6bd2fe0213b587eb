"""``?``: the keys that work here, as this user has them mapped.

Textual's own help panel lists every binding in the focus chain, scroll keys of
the containers included, and squeezes the screen beside it; at 80x24 that hides
what matters.  This screen lists only the dashboard's keys (after any keymap),
grouped by where they apply, and says which actions this token may not run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

__all__ = ["KeyRow", "KeysScreen", "key_rows"]

SECTIONS = ("Move", "This view", "Everywhere")
"""Where a key applies: the focused widget, the screen, the whole app."""


@dataclass
class KeyRow:
    """One line of the keys screen."""

    section: str
    keys: list[str]
    does: str
    unavailable: str = ""


def _dashboards(cls: type) -> bool:
    return cls.__module__.startswith("fleet_tui")


def _ours(node: DOMNode, binding: Binding) -> bool:
    """Whether a binding was declared by the dashboard (not inherited from Textual)."""
    return any(
        isinstance(declared, Binding) and declared.action == binding.action
        for cls in type(node).__mro__
        if _dashboards(cls)
        for declared in cls.__dict__.get("BINDINGS", [])
    )


def _section(node: DOMNode) -> str:
    if isinstance(node, App):
        return "Everywhere"
    if isinstance(node, Screen):
        return "This view"
    return "Move"


def key_rows(screen: Screen[object], why_not: dict[str, str] | None = None) -> list[KeyRow]:
    """The dashboard's keys active on ``screen``, one row per action.

    Args:
        screen: The screen the keys are for (not the keys screen itself).
        why_not: Action name to the reason it is unavailable, for disabled ones.
    """
    app = screen.app
    why_not = why_not or {}
    rows: dict[tuple[int, str], KeyRow] = {}
    sort_keys: list[str] = []
    for active in screen.active_bindings.values():
        binding, node = active.binding, active.node
        if not _ours(node, binding):
            continue
        display = app.get_key_display(binding)
        if (
            binding.id
            and binding.id.startswith("fleet.sort_")
            and binding.id != "fleet.sort_reverse"
        ):
            sort_keys.append(display)
            continue
        row = rows.get((id(node), binding.action))
        if row is None:
            does = binding.description or binding.action
            unavailable = ""
            if not active.enabled:
                name = binding.action.split("(")[0]
                unavailable = why_not.get(name, "unavailable here")
            row = KeyRow(_section(node), [], does, unavailable)
            rows[(id(node), binding.action)] = row
        if display not in row.keys:
            row.keys.append(display)
    result = list(rows.values())
    focused = screen.focused
    ours = focused is not None and any(_dashboards(c) for c in type(focused).__mro__)
    if focused is not None and not ours and focused.allow_vertical_scroll:
        result.insert(0, KeyRow("Move", ["↑ ↓ pgup pgdn home end"], "Scroll"))
    if sort_keys:
        keys = f"{sort_keys[0]}…{sort_keys[-1]}" if len(sort_keys) > 2 else " ".join(sort_keys)
        result.append(KeyRow("This view", [keys], "Sort by column n"))
    result.append(KeyRow("Everywhere", [app.get_key_display(Binding("ctrl+p", ""))], "Commands"))
    order = {name: i for i, name in enumerate(SECTIONS)}
    result.sort(key=lambda r: order[r.section])
    return result


def render_rows(rows: list[KeyRow]) -> Table:
    """Rows as a two-column grid (keys, what they do) with a heading per section."""
    table = Table.grid(padding=(0, 1))
    table.add_column(justify="right", no_wrap=True)
    table.add_column()
    section = ""
    for row in rows:
        if row.section != section:
            if section:
                table.add_row("", "")
            table.add_row("", Text(row.section, style="bold underline"))
            section = row.section
        does = Text(row.does)
        if row.unavailable:
            does = Text(f"{row.does} ({row.unavailable})", style="dim")
        table.add_row(Text(" ".join(row.keys), style="bold"), does)
    return table


def columns(rows: list[KeyRow], count: int = 2) -> list[list[KeyRow]]:
    """Whole sections spread over ``count`` columns, tallest first into the shortest."""
    sections: dict[str, list[KeyRow]] = {}
    for row in rows:
        sections.setdefault(row.section, []).append(row)
    cols: list[list[KeyRow]] = [[] for _ in range(count)]
    for section in sorted(sections.values(), key=len, reverse=True):
        min(cols, key=len).extend(section)
    order = {name: i for i, name in enumerate(SECTIONS)}
    for col in cols:
        col.sort(key=lambda r: order[r.section])
    return sorted((col for col in cols if col), key=lambda col: order[col[0].section])


class KeysScreen(ModalScreen[None]):
    """The dashboard's keys for the screen below; any of esc, ? or q closes it."""

    DEFAULT_CSS = """
    KeysScreen { align: center middle; }
    KeysScreen > VerticalScroll {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    KeysScreen #keys-title { text-style: bold; }
    KeysScreen Static { width: 100%; height: auto; }
    KeysScreen #keys-list { height: auto; }
    KeysScreen .keys-column { width: 1fr; }
    KeysScreen #keys-hint { color: $text-muted; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,question_mark,q", "close", "Close", id="fleet.keys_close"),
    ]
    """Close the list."""

    def __init__(self, rows: list[KeyRow]) -> None:
        super().__init__()
        self.rows = rows

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static("Keys", id="keys-title")
            with Horizontal(id="keys-list"):
                for col in columns(self.rows):
                    yield Static(render_rows(col), classes="keys-column")
            yield Static("esc closes · keys can be remapped: see docs/dashboard.md", id="keys-hint")

    def action_close(self) -> None:
        self.dismiss(None)
