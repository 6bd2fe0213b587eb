"""The fleet table: a Line API widget that draws only the rows on screen.

Textual's DataTable took seconds to load 10,000 rows and repainted all of it on
every cell update.  Here the rows live in the :class:`~fleet_tui.model.FleetModel`;
``render_line`` builds the few lines the terminal shows, and :meth:`FleetTable.sync`
refreshes only the cells whose text changed since they were drawn.
"""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Region, Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widget import Widget

from ... import format as fmt
from ...model import FleetModel, GroupHeader, Row, SortKey
from ..typeahead import pass_on_if_unfocused
from .columns import Cell, Column, agent_cells, layout_columns

__all__ = ["CUT_BEFORE", "CutMark", "FleetTable"]

_HEADER_LINES = 1

CUT_BEFORE = "cpu"
"""The column before which a :class:`CutMark` splits each line."""


def _fit(text: str, width: int, right: bool, middle: bool = False) -> str:
    if len(text) > width:
        if middle:
            return fmt.elide(text, width)
        return text[: max(width - 1, 0)] + "…" if width > 1 else text[:width]
    return text.rjust(width) if right else text.ljust(width)


class FleetTable(ScrollView, can_focus=True):
    """Every agent (after the filter) as a row, in the model's order, with a cursor."""

    COMPONENT_CLASSES = {
        "fleet-table--header",
        "fleet-table--sorted",
        "fleet-table--cursor",
        "fleet-table--group",
        "fleet-table--ok",
        "fleet-table--warn",
        "fleet-table--bad",
        "fleet-table--muted",
        "fleet-table--stale",
    }
    """Styles of the header, cursor, group headings, tones, and data gone stale."""

    DEFAULT_CSS = """
    FleetTable {
        scrollbar-size-vertical: 1;
        scrollbar-gutter: stable;
        overflow-x: hidden;
    }
    FleetTable > .fleet-table--header { text-style: bold; background: $panel; }
    FleetTable > .fleet-table--sorted { text-style: bold underline; background: $panel; }
    FleetTable > .fleet-table--cursor { background: $block-cursor-blurred-background; }
    FleetTable:focus > .fleet-table--cursor {
        background: $block-cursor-background;
        color: $block-cursor-foreground;
    }
    FleetTable > .fleet-table--group { text-style: bold; color: $accent; }
    FleetTable > .fleet-table--ok { color: $success; }
    FleetTable > .fleet-table--warn { color: $warning; text-style: bold; }
    FleetTable > .fleet-table--bad { color: $error; text-style: bold; }
    FleetTable > .fleet-table--muted { color: $text-muted; }
    FleetTable > .fleet-table--stale { text-style: dim italic; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up,k", "cursor(-1)", "Up", show=False),
        Binding("down,j", "cursor(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home", "jump(0)", "First", show=False),
        Binding("end", "jump(-1)", "Last", show=False),
        Binding("enter", "select", "Detail", id="fleet.detail"),
    ]
    """Cursor movement and Enter for the agent's detail."""

    cursor_row: reactive[int] = reactive(0, always_update=True, init=False)
    """Index of the highlighted row in the model's row list."""

    stale: reactive[bool] = reactive(False, init=False)
    """True while the stream is down: rows are drawn as stale."""

    class Highlighted(Message):
        """The cursor moved onto an agent (or off every agent)."""

        def __init__(self, table: FleetTable, agent_id: str | None) -> None:
            super().__init__()
            self.table = table
            self.agent_id = agent_id

        @property
        def control(self) -> FleetTable:
            return self.table

    class Selected(Message):
        """Enter was pressed on an agent."""

        def __init__(self, table: FleetTable, agent_id: str) -> None:
            super().__init__()
            self.table = table
            self.agent_id = agent_id

        @property
        def control(self) -> FleetTable:
            return self.table

    def __init__(
        self,
        model: FleetModel,
        *,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.model = model
        self.columns: list[Column] = layout_columns(80)
        self._shown: dict[int, tuple[object, ...]] = {}
        """What each screen line last showed, to refresh only what changed."""
        self._rows: list[Row] = []
        self._highlighted: str | None = None
        self._tones: dict[str, Style] = {}
        self.lines_refreshed = 0
        """Line regions refreshed, for tests and the benchmark."""
        self.cut: CutMark | None = None
        """The cut mark over the separator before the cpu column, if attached."""

    # ------------------------------------------------------------------
    # Layout

    async def _on_key(self, event: events.Key) -> None:
        # Type-ahead. Textual routes each key to the widget focused when the app
        # reads it, and runs a binding only when the key has bubbled back up to
        # the app; so in a burst ("/db-east" pasted, or delivered at once by a
        # slow SSH link) the letters after "/" reach this table after the filter
        # box should have had them, and were lost. Here keys that arrive once
        # focus has left go on to whatever has it now.
        if pass_on_if_unfocused(self, event):
            return
        # Run the key's binding now, in this widget's queue order (App._check_bindings,
        # what the app would run once the key bubbled up; Textual is pinned), so the
        # next keys of a burst find focus, or the modal, where this one left it.
        if await self.app._check_bindings(event.key):
            event.stop()
            event.prevent_default()
            return
        await super()._on_key(event)

    def on_resize(self, event: events.Resize) -> None:
        self.columns = layout_columns(self.scrollable_content_region.width)
        self._update_virtual_size()
        self._shown.clear()
        self._place_cut()
        self.refresh()

    def _place_cut(self) -> None:
        cut = self.cut
        if cut is None:
            return
        x = 1
        for col in self.columns:
            if col.key == CUT_BEFORE:
                cut.display = True
                cut.styles.offset = (x - 1, 0)
                cut.styles.height = self.size.height
                cut.refresh()
                return
            x += col.width + 1
        cut.display = False

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self.cut is not None and round(old_value) != round(new_value):
            self.cut.refresh()

    def watch_stale(self) -> None:
        self.refresh()
        if self.cut is not None:
            self.cut.refresh()

    def notify_style_update(self) -> None:
        # Focus, theme and CSS changes restyle the table: the cut mark too.
        super().notify_style_update()
        self._tones.clear()
        self._shown.clear()
        if self.cut is not None:
            self.cut.refresh()

    def _update_virtual_size(self) -> None:
        width = self.scrollable_content_region.width
        self.virtual_size = Size(width, len(self._rows) + _HEADER_LINES)

    @property
    def body_height(self) -> int:
        """Rows of agents the widget shows at once."""
        return max(self.scrollable_content_region.height - _HEADER_LINES, 1)

    # ------------------------------------------------------------------
    # The tick

    def sync(self) -> None:
        """Bring the screen in line with the model, refreshing only changed cells."""
        rows = self.model.rows()
        if rows is not self._rows:
            keep = self._highlighted
            self._rows = rows
            self._update_virtual_size()
            if keep is not None and (idx := self.model.row_of(keep)) is not None:
                self._set_cursor(idx, scroll=False)
            else:
                self._set_cursor(min(self.cursor_row, max(len(rows) - 1, 0)), scroll=False)
        width = self.scrollable_content_region.width
        height = self.scrollable_content_region.height
        scroll_y = round(self.scroll_offset.y)
        self.model.take_dirty()
        for y in range(height):
            key = self._line_key(y, scroll_y)
            old = self._shown.get(y)
            if old == key:
                continue
            self._shown[y] = key
            self._refresh_changed(y, old, key, width)

    def _refresh_changed(
        self, y: int, old: tuple[object, ...] | None, new: tuple[object, ...], width: int
    ) -> None:
        # Same kind of line with the same framing: refresh only the span from
        # the first to the last changed cell, so a slow link gets a few bytes,
        # not whole lines.  One region per line: Textual writes each region of
        # a line from the left edge of its chop, so several would repeat bytes.
        if old is not None and len(old) == len(new) and old[:2] == new[:2] and new[0] == "agent":
            x = 1
            first = last = -1
            cols = self.columns
            for col, (o, n) in zip(cols, zip(old[2:], new[2:], strict=True), strict=True):
                if o != n:
                    if first < 0:
                        first = x
                    last = x + col.width
                x += col.width + 1
            if first >= 0:
                self.refresh(Region(first, y, last - first, 1))
                self.lines_refreshed += 1
            return
        self._refresh_full_line(y)

    def _refresh_full_line(self, y: int) -> None:
        self.refresh(Region(0, y, self.scrollable_content_region.width, 1))
        self.lines_refreshed += 1
        if self.cut is not None:
            self.cut.refresh(Region(0, y, 1, 1))

    def _line_key(self, y: int, scroll_y: int) -> tuple[object, ...]:
        if y < _HEADER_LINES:
            return ("header", self.model.sort_key, self.model.sort_descending(), len(self.columns))
        index = scroll_y + y - _HEADER_LINES
        if index >= len(self._rows):
            return ("blank",)
        row = self._rows[index]
        framing = (index == self.cursor_row, self.stale)
        if isinstance(row, GroupHeader):
            return ("group", framing, row)
        agent = self.model.agents[row]
        cells = agent_cells(agent, self.model.history.get(row), self.columns, self._now())
        return ("agent", framing, *cells)

    def _now(self) -> float:
        return self.model.server_now()

    # ------------------------------------------------------------------
    # Drawing

    def _style(self, name: str) -> Style:
        style = self._tones.get(name)
        if style is None:
            style = self._tones[name] = self.get_component_rich_style(name, partial=True)
        return style

    def render_line(self, y: int) -> Strip:
        scroll_y = round(self.scroll_offset.y)
        key = self._line_key(y, scroll_y)
        self._shown[y] = key
        return self._build_line(key)

    def build_line(self, y: int) -> Strip:
        """Line ``y`` as it should look now (for the cut mark; records nothing)."""
        return self._build_line(self._line_key(y, round(self.scroll_offset.y)))

    def _build_line(self, key: tuple[object, ...]) -> Strip:
        width = self.scrollable_content_region.width
        base = self.rich_style
        kind = key[0]
        if kind == "header":
            return self._render_header(width, base)
        if kind == "blank":
            return Strip.blank(width, base)
        framing = key[1]
        assert isinstance(framing, tuple)
        is_cursor, stale = bool(framing[0]), bool(framing[1])
        line_style = base
        if stale:
            line_style += self._style("fleet-table--stale")
        if is_cursor:
            line_style += self._style("fleet-table--cursor")
        if kind == "group":
            group = key[2]
            assert isinstance(group, GroupHeader)
            text = f"▾ {group.pool}  {fmt.count(group.total, 'agent')}, {group.unhealthy} unhealthy"
            style = line_style + self._style("fleet-table--group")
            return Strip([Segment(_fit(text, width, False), style)], width)
        segments = [Segment(" ", line_style)]
        cells: tuple[Cell, ...] = key[2:]  # type: ignore[assignment]
        for col, (text, tone) in zip(self.columns, cells, strict=True):
            style = line_style + self._style(f"fleet-table--{tone}") if tone else line_style
            segments.append(Segment(_fit(text, col.width, col.right, col.middle), style))
            segments.append(Segment(" ", line_style))
        # Merged same-style neighbours: fewer escape sequences on the wire.
        return Strip(segments).adjust_cell_length(width, line_style).simplify()

    def _render_header(self, width: int, base: Style) -> Strip:
        head = base + self._style("fleet-table--header")
        sorted_style = base + self._style("fleet-table--sorted")
        arrow = "▼" if self.model.sort_descending() else "▲"
        segments = [Segment(" ", head)]
        for col in self.columns:
            is_sorted = col.sort is not None and col.sort is self.model.sort_key
            title = f"{col.title[: col.width - 1]}{arrow}" if is_sorted else col.title
            style = sorted_style if is_sorted else head
            segments.append(Segment(_fit(title, col.width, col.right), style))
            segments.append(Segment(" ", head))
        return Strip(segments).adjust_cell_length(width, head)

    # ------------------------------------------------------------------
    # Cursor

    @property
    def highlighted_agent(self) -> str | None:
        """The agent under the cursor, if the cursor is on one."""
        return self._highlighted

    def _set_cursor(self, index: int, scroll: bool = True) -> None:
        rows = self._rows
        index = max(0, min(index, len(rows) - 1)) if rows else 0
        old = self.cursor_row
        self.cursor_row = index
        if old != index:
            self._refresh_row(old)
            self._refresh_row(index)
        if scroll:
            self._scroll_to_cursor()
        agent = rows[index] if rows and isinstance(rows[index], str) else None
        assert agent is None or isinstance(agent, str)
        if agent != self._highlighted:
            self._highlighted = agent
            self.post_message(self.Highlighted(self, agent))

    def _refresh_row(self, index: int) -> None:
        y = index - round(self.scroll_offset.y) + _HEADER_LINES
        if _HEADER_LINES <= y < self.scrollable_content_region.height:
            self._shown.pop(y, None)
            self._refresh_full_line(y)

    def _scroll_to_cursor(self) -> None:
        top = round(self.scroll_offset.y)
        height = self.body_height
        if self.cursor_row < top:
            self.scroll_to(y=self.cursor_row, animate=False, immediate=True)
        elif self.cursor_row >= top + height:
            self.scroll_to(y=self.cursor_row - height + 1, animate=False, immediate=True)

    def move_to_agent(self, agent_id: str) -> bool:
        """Put the cursor on an agent; False when the filter hides it."""
        self._rows = self.model.rows()
        self._update_virtual_size()
        index = self.model.row_of(agent_id)
        if index is None:
            return False
        self._set_cursor(index)
        return True

    def action_cursor(self, delta: int) -> None:
        self._set_cursor(self.cursor_row + delta)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor_row + direction * self.body_height)

    def action_jump(self, index: int) -> None:
        self._set_cursor(len(self._rows) - 1 if index < 0 else index)

    def action_select(self) -> None:
        if self._highlighted is not None:
            self.post_message(self.Selected(self, self._highlighted))

    class SortRequested(Message):
        """A column heading was clicked: sort by ``key``."""

        def __init__(self, table: FleetTable, key: SortKey) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> FleetTable:
            return self.table

    def column_at(self, x: int) -> Column | None:
        """The column under content offset ``x``, if any."""
        left = 1
        for col in self.columns:
            if left <= x < left + col.width + 1:
                return col
            left += col.width + 1
        return None

    def on_click(self, event: events.Click) -> None:
        if event.y < _HEADER_LINES:
            col = self.column_at(event.x)
            if col is not None and col.sort is not None:
                self.post_message(self.SortRequested(self, col.sort))
            return
        self._set_cursor(round(self.scroll_offset.y) + event.y - _HEADER_LINES)
        if event.chain == 2:
            self.action_select()


class CutMark(Widget):
    """One column laid over the table's separator before the cpu column.

    Textual writes a partial line update from the left edge of the widget that
    owns that stretch of the line (a "chop") up to the changed cells.  This
    1-cell widget splits each table line in two, so changes to the fast-moving
    numbers on the right are written from the cpu column, not from column 0.
    It draws exactly what the table would draw there.
    """

    DEFAULT_CSS = """
    CutMark { position: absolute; width: 1; layer: cut; }
    """

    def __init__(self, table: FleetTable) -> None:
        super().__init__()
        self.table = table
        table.cut = self

    def render_line(self, y: int) -> Strip:
        x = round(self.styles.offset.x.value)
        return self.table.build_line(y).crop(x, x + 1)
