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
from ..model import UNHEALTHY, FleetModel
from ..remediations import action_words, approvals_badge
from ..rollouts import recently_halted, upgrade_words
from ..widgets.alerts.panel import alert_line, target_label

__all__ = [
    "WallScreen",
    "column_widths",
    "fleet_alert_lines",
    "wall_line",
    "wall_order",
    "wall_pages",
]

_COUNTERS = (
    ("connected", (Presence.CONNECTED,)),
    ("degraded", (Presence.DEGRADED,)),
    ("stale", (Presence.STALE,)),
    ("offline", (Presence.OFFLINE,)),
    ("stopped", (Presence.STOPPED,)),
)
"""The big counters; ``stopped`` (said goodbye on purpose) is counted, never red."""

_NOT_BAD = frozenset({"connected", "stopped"})


def wall_order(agents: list[AgentState], now: float | None = None) -> list[AgentState]:
    """Unhealthy first, then by name; the wall shows these pages in turn."""

    def state(a: AgentState) -> Presence:
        return a.state if now is None else fmt.shown_state(a, now)

    return sorted(agents, key=lambda a: (STATE_RANK[state(a)], a.name.lower()))


def wall_pages(
    unhealthy: list[AgentState], healthy: list[AgentState], rows: int
) -> list[list[AgentState]]:
    """Pages of at most ``rows`` agents, the unhealthy ones on every page.

    The healthy agents share what room the unhealthy ones leave, page by page; when
    the unhealthy ones alone overflow a page, they are what the pages turn through.
    """
    rows = max(rows, 1)
    if len(unhealthy) >= rows or not healthy:
        chunks = [unhealthy[i : i + rows] for i in range(0, len(unhealthy), rows)]
        return chunks or [[]]
    room = rows - len(unhealthy)
    return [unhealthy + healthy[i : i + room] for i in range(0, len(healthy), room)]


def wall_line(a: AgentState, now: float, width: int, name_w: int, pool_w: int) -> str:
    """One agent in a row of ``width`` cells: state, name, pool, heartbeat, and
    the reasons in what is left (the column a person at the wall reads for why)."""
    state = fmt.state_label(fmt.shown_state(a, now))
    beat = fmt.heartbeat_age(a, now)
    head = f"{state:<11} {a.name[:name_w]:<{name_w}} "
    if pool_w:
        head += f"{a.pool[:pool_w]:<{pool_w}} "
    head += f"{beat:>8}  "
    upgrade = upgrade_words(a.upgrade)
    reasons = "; ".join([*a.reasons, upgrade] if upgrade else a.reasons)
    room = width - len(head)
    if len(reasons) > room:
        reasons = reasons[: max(room - 1, 0)] + "…"
    return (head + reasons).rstrip()


REASONS_MIN = 36
"""Cells kept for an agent's reasons: "no heartbeat for 19 s (3 intervals)" is 35."""


def column_widths(agents: list[AgentState], width: int) -> tuple[int, int]:
    """Name and pool widths that leave the reasons at least :data:`REASONS_MIN`
    cells: a pool is shown whole or not at all (``db-eas`` would mislead), then
    the name shrinks."""
    name_w = min(max((len(a.name) for a in agents), default=4), 28)
    pool_w = min(max((len(a.pool) for a in agents), default=4), 14)
    fixed = 11 + 1 + 8 + 2  # state, its space, heartbeat, the gap before the reasons
    if fixed + name_w + 1 + pool_w + 1 + REASONS_MIN > width:
        pool_w = 0
    while fixed + name_w + 1 + (pool_w + 1 if pool_w else 0) + REASONS_MIN > width and name_w > 12:
        name_w -= 1
    return name_w, pool_w


def fleet_alert_lines(model: FleetModel, now: float, limit: int) -> list[str]:
    """Pool and connection alerts by their text (agents' alerts are in the list),
    a rollout that halted (within :data:`~fleet_tui.rollouts.HALTED_SHOWN_S`) and the
    remediations waiting for approval, as alerts read: critical first, then newest."""
    alerts = [
        (a.severity == "critical", a.raised_at, alert_line(a, target_label(a.target, {}), now))
        for a in model.alerts.values()
        if a.target.startswith(("pool:", "connection:"))
    ]
    for r in recently_halted(model.rollouts.values(), now):
        at = r.finished_at or r.updated_at
        when = fmt.age(at, now, coarse=True)
        text = f"!! {when:>7}  rollout {r.pool} → {r.version} halted: {r.detail}"
        alerts.append((True, at, text))
    waiting = model.pending_approvals()
    if waiting:
        at = waiting[0].created_at
        what = ", ".join(action_words(r) for r in waiting)
        text = f"!  {fmt.age(at, now, coarse=True):>7}  {approvals_badge(len(waiting))}: {what}"
        alerts.append((False, at, text))
    alerts.sort(key=lambda item: (not item[0], -item[1]))
    lines = [text for _, _, text in alerts[:limit]]
    if len(alerts) > limit:
        lines.append(f"   … and {len(alerts) - limit} more")
    return lines


ALERT_LINES = 4
"""Pool and connection alerts (and halted rollouts, approvals waiting) shown above the
agents; more are counted."""


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
    WallScreen #wall-alerts { height: auto; padding: 0 1; color: $error; text-style: bold;
                              text-wrap: nowrap; text-overflow: ellipsis; display: none; }
    WallScreen #wall-alerts.-shown { display: block; }
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
        self._alerts_shown: str | None = None

    def compose(self) -> ComposeResult:
        yield Label("fleet: connecting…", id="wall-status")
        with Horizontal(id="wall-counters"):
            for name, _states in (*_COUNTERS, ("alerts", ())):
                with Vertical(classes="counter", id=f"counter-{name}"):
                    yield Digits("0", id=f"digits-{name}")
                    yield Label(name)
        yield Static(id="wall-alerts", markup=False)
        yield Static(id="wall-list", markup=False)
        yield Label(id="wall-page", markup=False)

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
            self._counter(name, n, bad=name not in _NOT_BAD and n > 0)
        alerts = len(self.model.alerts)
        self._counter("alerts", alerts, bad=alerts > 0)
        now = self.model.server_now()
        alert_text = "\n".join(fleet_alert_lines(self.model, now, ALERT_LINES))
        box = self.query_one("#wall-alerts", Static)
        box.set_class(bool(alert_text), "-shown")
        if alert_text != self._alerts_shown:
            self._alerts_shown = alert_text
            box.update(alert_text)
        agents = wall_order(list(self.model.agents.values()), now)
        unhealthy = [a for a in agents if fmt.shown_state(a, now) in UNHEALTHY]
        healthy = [a for a in agents if fmt.shown_state(a, now) not in UNHEALTHY]
        listing = self.query_one("#wall-list")
        pages = wall_pages(unhealthy, healthy, listing.size.height)
        self.pages = len(pages)
        self.page %= self.pages
        width = max(listing.content_region.width, 40)
        name_w, pool_w = column_widths(agents, width)
        lines = [wall_line(a, now, width, name_w, pool_w) for a in pages[self.page]]
        key = (tuple(lines), self.page, self.pages)
        if key != self._shown:
            self._shown = key
            self.query_one("#wall-list", Static).update("\n".join(lines))
            pinned = f", {len(unhealthy):,} unhealthy on each page" if unhealthy else ""
            self.query_one("#wall-page", Label).update(
                f"page {self.page + 1}/{self.pages} · every {self.page_s:g}s · "
                f"{fmt.count(len(agents), 'agent')}{pinned} · q quits"
            )

    def _counter(self, name: str, value: int, bad: bool) -> None:
        digits = self.query_one(f"#digits-{name}", Digits)
        text = f"{value:,}"
        if digits.value != text:
            digits.update(text)
        self.query_one(f"#counter-{name}").set_class(bad, "-bad")
