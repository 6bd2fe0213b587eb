"""The connections view: each registered connection, its pools and whether it is routable."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label

from ..model import FleetModel
from ..widgets.banner import LinkBanner

__all__ = ["ConnectionsScreen"]


class ConnectionsScreen(Screen[None]):
    """A table of connections, updated on the app's tick.

    Connections are few, so a DataTable is fine here.
    """

    DEFAULT_CSS = """
    ConnectionsScreen #conn-summary { padding: 0 1; background: $panel; width: 100%; }
    ConnectionsScreen DataTable { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,c", "close", "Back")]
    """Escape or c goes back to the fleet."""

    def __init__(self, model: FleetModel) -> None:
        super().__init__()
        self.model = model
        self._shown: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        yield Header()
        yield LinkBanner()
        yield Label(id="conn-summary")
        yield DataTable(id="conn-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("routable", "name", "target", "pools", "via")
        self.tick()
        table.focus()

    def tick(self) -> None:
        """Redraw when a connection changed."""
        conns = sorted(self.model.connections.values(), key=lambda c: (c.routable, c.name))
        key = tuple(conns)
        if key == self._shown:
            return
        table = self.query_one(DataTable)
        if not table.columns:
            return  # the app's tick came between compose and on_mount (seen under load)
        table.clear()
        for c in conns:
            via = f"{c.via_agent} ({c.via_pool})" if c.via_agent else (c.via_pool or "-")
            routable = "✓ yes" if c.routable else "✗ NO"
            table.add_row(routable, c.name, f"{c.host}:{c.port}", ", ".join(c.pools), via)
        bad = sum(not c.routable for c in conns)
        self.query_one("#conn-summary", Label).update(
            f"{len(conns)} connections, {bad} not routable now (no healthy agent in their pools)"
        )
        self._shown = key

    def action_close(self) -> None:
        self.dismiss(None)
