"""The connections view: each connection, its route, its next run, and its actions.

Its keys act on the selected connection, never on the agent under the fleet's
cursor hidden beneath it: ``p`` probes the connection through its route, ``a`` and
``e`` add and edit connections (admins).  A key the role does not allow says which
role it needs instead of doing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Label
from textual.widgets.data_table import CellDoesNotExist

from fleet.protocol import ConnectionInfo

from .. import format as fmt
from ..client import RestClient
from ..errors import ApiError
from ..model import FleetModel
from ..permissions import Gate
from ..widgets.banner import LinkBanner
from .connection_edit import ConnectionModal, Save
from .probe import ProbeResultModal

__all__ = ["ConnectionsScreen", "next_run_text"]


def next_run_text(conn: ConnectionInfo) -> str:
    """The next run for the table: ``14:00 Europe/Berlin``, ``⚠ AT RISK`` when no
    agent can route it, ``-`` without a schedule."""
    if conn.next_run is None:
        return "-"
    return f"⚠ {conn.next_run} AT RISK" if conn.at_risk else conn.next_run


class ConnectionsScreen(Screen[None]):
    """A table of connections, updated on the app's tick.

    Connections are few, so a DataTable is fine here.

    Args:
        model: The fleet as the stream told it.
        gate: The session's gate now (the role comes with the snapshot).
        rest: The REST client now, or None before the dashboard is connected.
    """

    DEFAULT_CSS = """
    ConnectionsScreen #conn-summary { padding: 0 1; background: $panel; width: 100%; }
    ConnectionsScreen DataTable { height: 1fr; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,c", "close", "Back"),
        Binding("p", "probe_connection", "Probe", id="connections.probe"),
        Binding("a", "add_connection", "Add", id="connections.add"),
        Binding("e", "edit_connection", "Edit", id="connections.edit"),
    ]
    """Escape or c goes back; p, a and e act on connections."""

    def __init__(
        self,
        model: FleetModel,
        gate: Callable[[], Gate] = Gate,
        rest: Callable[[], RestClient | None] = lambda: None,
    ) -> None:
        super().__init__()
        self.model = model
        self._gate = gate
        self._rest = rest
        self._shown: tuple[object, ...] = ()

    def compose(self) -> ComposeResult:
        yield Header()
        yield LinkBanner()
        yield Label(id="conn-summary")
        yield DataTable(id="conn-table", cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("routable", "name", "target", "pools", "via", "next run")
        self.tick()
        table.focus()

    def tick(self) -> None:
        """Redraw when a connection changed; the cursor stays on its connection."""
        conns = sorted(
            self.model.connections.values(), key=lambda c: (c.routable and not c.at_risk, c.name)
        )
        key = tuple(conns)
        if key == self._shown:
            return
        table = self.query_one(DataTable)
        if not table.columns:
            return  # the app's tick came between compose and on_mount (seen under load)
        selected = self.selected()
        table.clear()
        for c in conns:
            via = f"{c.via_agent} ({c.via_pool})" if c.via_agent else (c.via_pool or "-")
            routable = "✓ yes" if c.routable else "✗ NO"
            table.add_row(
                routable,
                c.name,
                f"{c.host}:{c.port}",
                ", ".join(c.pools),
                via,
                next_run_text(c),
                key=c.name,
            )
        if selected is not None and selected.name in table.rows:
            table.move_cursor(row=table.get_row_index(selected.name))
        bad = sum(not c.routable for c in conns)
        risky = sum(c.at_risk for c in conns)
        summary = (
            f"{fmt.count(len(conns), 'connection')}, {bad} not routable now "
            "(no healthy agent in their pools)"
        )
        if risky:
            summary += f", {risky} at risk before the next run"
        self.query_one("#conn-summary", Label).update(summary)
        self._shown = key

    # ------------------------------------------------------------------
    # Actions on the selected connection

    def selected(self) -> ConnectionInfo | None:
        """The connection under the cursor."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        try:
            row_key, _ = table.coordinate_to_cell_key(table.cursor_coordinate)
        except CellDoesNotExist:  # no row there (cleared between ticks)
            return None
        return self.model.connections.get(str(row_key.value))

    def _ready(
        self, action: str, on_selected: bool
    ) -> tuple[RestClient, ConnectionInfo | None] | None:
        """The client (and the selected connection) for ``action``, or None after
        saying why not: the role it needs, no selection, no control plane."""
        why = self._gate().why_not(action)
        if why is not None:
            self.notify(why, title="Not allowed", severity="warning")
            return None
        conn = self.selected() if on_selected else None
        if on_selected and conn is None:
            self.notify("Put the cursor on a connection first.", severity="warning")
            return None
        rest = self._rest()
        if rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return None
        return rest, conn

    def action_probe_connection(self) -> None:
        ready = self._ready("connection_probe", on_selected=True)
        if ready is not None and ready[1] is not None:
            self._probe(ready[0], ready[1])

    @work(group="connection-actions")
    async def _probe(self, rest: RestClient, conn: ConnectionInfo) -> None:
        route = f"through {conn.via_agent} ({conn.via_pool})" if conn.via_agent else "its route"
        self.notify(f"Probing {conn.name} ({conn.host}:{conn.port}) {route}…", timeout=3)
        try:
            answer = await rest.probe_connection(conn.name)
        except ApiError as exc:
            self.notify(str(exc), title=f"Probe of {conn.name} failed", severity="error")
            return
        agent = self.model.agents.get(answer.agent_id)
        via = f"{agent.name if agent else answer.agent_id} (pool {answer.pool})"
        self.app.push_screen(ProbeResultModal(via, answer.result))

    def action_add_connection(self) -> None:
        ready = self._ready("connection_add", on_selected=False)
        if ready is not None:
            self.app.push_screen(ConnectionModal(self._saver(ready[0], None)))

    def action_edit_connection(self) -> None:
        ready = self._ready("connection_edit", on_selected=True)
        if ready is not None and ready[1] is not None:
            conn = ready[1]
            self.app.push_screen(ConnectionModal(self._saver(ready[0], conn.name), conn))

    def _saver(self, rest: RestClient, name: str | None) -> Save:
        async def save(body: dict[str, Any]) -> str | None:
            try:
                if name is None:
                    info = await rest.create_connection(body)
                else:
                    info = await rest.update_connection(name, body)
            except ApiError as exc:
                return str(exc)
            # Shown at once; the stream's update follows with the same content.
            self.model.connections[info.name] = info
            self.notify(f"Saved connection {info.name}.", timeout=3)
            self.tick()
            return None

        return save

    def action_close(self) -> None:
        self.dismiss(None)
