"""Wall mode: big counters, the unhealthy agents first, pages that turn on their own."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.markup import escape
from textual.screen import Screen
from textual.widgets import Digits, Label, Static

from fleet.protocol import AgentState, Presence

from .. import format as fmt
from ..format import STATE_RANK
from ..model import FleetModel

__all__ = ["WallScreen", "wall_order"]

_COUNTERS = (
    ("connected", (Presence.CONNECTED,)),
    ("degraded", (Presence.DEGRADED,)),
    ("stale", (Presence.STALE,)),
    ("offline", (Presence.OFFLINE,)),
)


def wall_order(agents: list[AgentState]) -> list[AgentState]:
    """Unhealthy first, then by name; the wall shows these pages in turn."""
    return sorted(agents, key=lambda a: (STATE_RANK[a.state], a.name.lower()))


class WallScreen(Screen[None]):
    """A kiosk layout; input is locked by the app's gate, not here."""

    DEFAULT_CSS = """
    WallScreen { layout: vertical; }
    WallScreen #wall-status { width: 100%; padding: 0 1; background: $panel; text-style: bold; }
    WallScreen #wall-status.-stale { background: $warning; color: $text; }
    WallScreen #wall-counters { height: auto; }
    WallScreen .counter { width: 1fr; height: auto; border: round $primary; align: center top; }
    WallScreen .counter Digits { width: 100%; text-align: center; }
    WallScreen .counter Label { width: 100%; content-align: center middle; text-style: bold; }
    WallScreen .counter.-bad { border: heavy $error; }
    WallScreen .counter.-bad Label { color: $error; }
    WallScreen #wall-list { height: 1fr; padding: 0 1; text-wrap: nowrap; text-overflow: ellipsis; }
    WallScreen #wall-page { width: 100%; padding: 0 1; color: $text-muted; }
    """

    def __init__(self, model: FleetModel, page_s: float = 8.0) -> None:
        super().__init__()
        self.model = model
        self.page_s = page_s
        self.page = 0
        self.pages = 1
        self._shown: object = None

    def compose(self) -> ComposeResult:
        yield Label("fleet: connecting…", id="wall-status")
        with Horizontal(id="wall-counters"):
            for name, _states in (*_COUNTERS, ("alerts", ())):
                with Vertical(classes="counter", id=f"counter-{name}"):
                    yield Digits("0", id=f"digits-{name}")
                    yield Label(name)
        yield Static(id="wall-list")
        yield Label(id="wall-page")

    def on_mount(self) -> None:
        self.set_interval(self.page_s, self.next_page)
        # Draw once the list's height (and so the page size) is known.
        self.call_after_refresh(self.tick, None)

    def next_page(self) -> None:
        """Turn to the next page of agents (called on a timer)."""
        self.page = (self.page + 1) % max(self.pages, 1)
        self.tick(status=None)

    def tick(self, status: str | None) -> None:
        """Redraw counters, the status line and the current page, when they changed."""
        if status is not None:
            label = self.query_one("#wall-status", Label)
            label.update(escape(status))
            label.set_class("live" not in status.split(":")[0], "-stale")
        counts = self.model.counts()
        for name, states in _COUNTERS:
            n = sum(counts.get(s, 0) for s in states)
            self._counter(name, n, bad=name != "connected" and n > 0)
        alerts = len(self.model.alerts)
        self._counter("alerts", alerts, bad=alerts > 0)
        agents = wall_order(list(self.model.agents.values()))
        per_page = max(self.query_one("#wall-list").size.height, 1)
        self.pages = max(1, -(-len(agents) // per_page))
        self.page %= self.pages
        now = self.model.server_now()
        chunk = agents[self.page * per_page : (self.page + 1) * per_page]
        lines = [
            f"{fmt.state_label(a.state):<12} {escape(a.name):<28} {escape(a.pool):<14} "
            f"{fmt.age(a.last_heartbeat_at, now, fresh_s=a.heartbeat_interval_s * 1.5):>9}  "
            f"{escape('; '.join(a.reasons))}"
            for a in chunk
        ]
        key = (tuple(lines), self.page, self.pages)
        if key != self._shown:
            self._shown = key
            self.query_one("#wall-list", Static).update("\n".join(lines))
            self.query_one("#wall-page", Label).update(
                f"page {self.page + 1} of {self.pages}, turning every {self.page_s:g}s · "
                f"{fmt.count(len(agents), 'agent')} · q quits"
            )

    def _counter(self, name: str, value: int, bad: bool) -> None:
        digits = self.query_one(f"#digits-{name}", Digits)
        text = f"{value:,}"
        if digits.value != text:
            digits.update(text)
        self.query_one(f"#counter-{name}").set_class(bad, "-bad")
