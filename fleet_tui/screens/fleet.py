"""The fleet screen: summary, the fleet table, alerts and the filter."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Container, Horizontal
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Footer, Header, Input

from ..model import FleetModel, SortKey
from ..widgets.agents import CutMark, FleetTable
from ..widgets.alerts import AlertsPanel
from ..widgets.banner import LinkBanner
from ..widgets.summary import SummaryBar, summary_markup
from ..widgets.typeahead import FilterInput

if TYPE_CHECKING:
    from ..app import FleetApp

__all__ = ["SORT_KEYS", "FleetScreen"]

SORT_KEYS: tuple[SortKey, ...] = (
    SortKey.HEALTH,
    SortKey.NAME,
    SortKey.POOL,
    SortKey.HEARTBEAT,
    SortKey.SKEW,
    SortKey.CPU,
    SortKey.MEM,
    SortKey.QUEUE,
    SortKey.CERT,
    SortKey.VERSION,
)
"""Sort keys in column order: keys 1 to 9 and 0 pick them."""


class FleetScreen(Screen[None]):
    """The main view."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("slash", "filter", "Filter", id="fleet.filter"),
        Binding("escape", "clear_filter", "Clear filter", show=False, id="fleet.clear_filter"),
        Binding("s", "sort_next", "Sort", id="fleet.sort"),
        Binding("S", "sort_flip", "Reverse sort", show=False, id="fleet.sort_reverse"),
        *(
            Binding(
                str((i + 1) % 10),
                f"sort('{key.value}')",
                f"Sort by {key.value}",
                show=False,
                id=f"fleet.sort_{key.value}",
            )
            for i, key in enumerate(SORT_KEYS)
        ),
        Binding("g", "group", "Group", id="fleet.group"),
        Binding("a", "alerts", "Alerts", id="fleet.alerts"),
        Binding("h", "app.holds", "Silences and maintenance", show=False, id="fleet.holds"),
        Binding("c", "connections", "Conns", id="fleet.connections"),
        Binding("R", "app.rollouts", "Rollouts", show=False, id="fleet.rollouts"),
        Binding("I", "app.inbox", "Remediation inbox", show=False, id="fleet.inbox"),
        Binding("M", "app.maintenance", "Maintenance", show=False, id="fleet.maintenance"),
    ]
    """Filter, sort (s cycles, S flips, 1-0 pick a column), group, alerts, what is held
    back (silences and maintenance windows; from the alerts panel too), connections,
    rollouts, the remediation inbox, maintenance of the agent under the cursor or its
    pool."""

    def __init__(self, model: FleetModel, show_alerts: bool = False) -> None:
        super().__init__()
        self.model = model
        self._show_alerts = show_alerts

    @property
    def fleet_app(self) -> FleetApp:
        from ..app import FleetApp

        assert isinstance(self.app, FleetApp)
        return self.app

    def compose(self) -> ComposeResult:
        yield Header()
        yield LinkBanner(id="banner")
        yield SummaryBar(id="summary")
        with Horizontal(id="fleet-body"):
            with Container(id="fleet-wrap"):
                table = FleetTable(self.model, id="fleet")
                yield table
                yield CutMark(table)
            alerts = AlertsPanel(id="alerts")
            alerts.display = self._show_alerts
            yield alerts
        filter_input = FilterInput(
            self._filter_key,
            placeholder="filter: words match name/pool/label/version; state:stale,offline",
            id="filter",
        )
        filter_input.display = False
        yield filter_input
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(FleetTable).focus()
        # Draw the fleet now rather than on the app's next tick.
        self.call_after_refresh(self.fleet_app.tick)

    @property
    def table(self) -> FleetTable:
        """The fleet table."""
        return self.query_one(FleetTable)

    def tick(self) -> None:
        """Bring every part of the screen up to date with the model."""
        model = self.model
        table = self.table
        table.sync()
        extra = []
        if model.filter.active:
            shown = model.shown_count()
            extra.append(f"filter: {escape(model.filter.text)} ({shown:,} shown)")
        if model.group_by_pool:
            extra.append("by pool")
        if table.stale:
            extra.append("(stale)")
        self.query_one(SummaryBar).show(
            summary_markup(model.counts(), len(model.alerts), "  ".join(extra))
        )
        alerts = self.query_one(AlertsPanel)
        if alerts.display:
            names = {a.id: a.name for a in model.agents.values()}
            alerts.show(model.open_alerts(), names, model.server_now())

    # ------------------------------------------------------------------
    # Events

    @on(FleetTable.Selected)
    def _open(self, event: FleetTable.Selected) -> None:
        self.fleet_app.open_detail(event.agent_id)

    @on(FleetTable.SortRequested)
    def _sort_clicked(self, event: FleetTable.SortRequested) -> None:
        self.action_sort(event.key.value)

    @on(FleetTable.Highlighted)
    def _moved(self) -> None:
        self.app.refresh_bindings()

    @on(AlertsPanel.JumpRequested)
    def _jump(self, event: AlertsPanel.JumpRequested) -> None:
        self.jump_to(event.target)

    def jump_to(self, agent_id: str) -> None:
        """Put the cursor on an agent, clearing the filter if it hides it.

        A ``connection:NAME`` target opens the connections view; ``pool:NAME``
        filters the fleet to that pool.
        """
        kind, _, name = agent_id.partition(":")
        if kind == "connection" and name:
            self.fleet_app.open_connections()
            return
        if kind == "pool" and name:
            self._set_filter(name)
            self.set_focus(self.table)
            return
        if agent_id not in self.model.agents:
            self.notify(f"{agent_id} is not an agent in this fleet", severity="warning")
            return
        if self.model.row_of(agent_id) is None:
            self._set_filter("")
        self.table.move_to_agent(agent_id)
        self.set_focus(self.table)

    @on(Input.Changed, "#filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self.model.set_filter(event.value)
        self.tick()

    def _filter_key(self, key: str) -> None:
        """Enter keeps the filter, Escape clears it; either way back to the table."""
        if key == "escape":
            self._set_filter("")
        elif not self.model.filter.active:
            self.query_one("#filter").display = False
        self.set_focus(self.table)

    def _set_filter(self, text: str) -> None:
        box = self.query_one("#filter", Input)
        box.value = text
        self.model.set_filter(text)
        box.display = bool(text)
        self.tick()

    # ------------------------------------------------------------------
    # Actions

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.display = True
        # At once, not via Widget.focus (a queued callback): keys typed right
        # after "/" (type-ahead, a paste, a slow SSH link delivering a burst) must
        # land in the filter, not reach the table's keys ("l" would fetch logs).
        self.set_focus(box)

    def action_clear_filter(self) -> None:
        self._set_filter("")
        self.set_focus(self.table)

    def action_sort(self, key: str) -> None:
        self.model.set_sort(SortKey(key))
        self.tick()

    def action_sort_next(self) -> None:
        index = SORT_KEYS.index(self.model.sort_key)
        self.model.set_sort(SORT_KEYS[(index + 1) % len(SORT_KEYS)], reverse=False)
        self.notify(f"sorted by {self.model.sort_key.value}", timeout=1.5)
        self.tick()

    def action_sort_flip(self) -> None:
        self.model.set_sort(self.model.sort_key, reverse=not self.model.sort_reverse)
        self.tick()

    def action_group(self) -> None:
        self.model.set_grouping(not self.model.group_by_pool)
        self.tick()

    def action_alerts(self) -> None:
        alerts = self.query_one(AlertsPanel)
        alerts.display = not alerts.display
        self.tick()
        if alerts.display and self.model.alerts:
            alerts.focus_list()
        else:
            self.set_focus(self.table)

    def action_connections(self) -> None:
        self.fleet_app.open_connections()
