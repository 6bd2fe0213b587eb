"""The agent detail screen: every field, larger charts, cert, skew, events, config diff."""

from __future__ import annotations

import json
from typing import ClassVar, TypeVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.markup import escape
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Header, Label, Static

from fleet.disconnects import disconnect_line
from fleet.protocol import AgentState, Disconnect, DisconnectHint, RemediationInfo

from .. import format as fmt
from ..client import RestClient
from ..client._rest import ConfigView
from ..errors import ApiError
from ..model import FleetModel
from ..remediations import decided_words, remediation_label, remediation_tone
from ..rollouts import rollout_step, upgrade_line
from ..widgets.banner import LinkBanner
from ..widgets.chart import BarChart
from ..widgets.tones import tone_markup

__all__ = [
    "AgentDetailScreen",
    "config_markup",
    "disconnects_markup",
    "field_lines",
    "remediations_markup",
]

SHOWN_DISCONNECTS = 8
"""The newest disconnect records the detail screen lists."""


HEADER_CHROME = 18
"""Columns of the header that are not its title: the icon and the margins."""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f} days"


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024:
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def fields_grid(fields: list[tuple[str, str]]) -> Table:
    """Label and value columns; a long value wraps under itself, not under the label."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column(overflow="fold")
    for label, value in fields:
        grid.add_row(label, Text(value))
    return grid


def _short_hash(value: str | None) -> str:
    """``sha256:`` and the first 8 hex digits (fits the field at 80 columns)."""
    if not value:
        return "-"
    algo, _, digest = value.partition(":")
    return f"{algo}:{digest[:8]}…" if digest and len(digest) > 8 else value


def _pinned_config(effective: str | None, pinned: str | None) -> str:
    if not pinned:
        return "-"
    same = "matches" if effective == pinned else "differs: diff below"
    return f"{_short_hash(pinned)} ({same})"


def _state_words(a: AgentState, now: float) -> str:
    """The state as the table shows it (:func:`fmt.shown_state`), and why when it
    differs from the control plane's last word."""
    shown = fmt.shown_state(a, now)
    if shown is a.state:
        return fmt.state_label(shown)
    return f"{fmt.state_label(shown)} (the server said {a.state.value}: no heartbeat since)"


def field_lines(a: AgentState, now: float, rollout: str | None = None) -> list[tuple[str, str]]:
    """Every field of an agent as (label, text) pairs.

    Args:
        rollout: Where the agent is in the latest rollout that names it, if any
            (:func:`~fleet_tui.rollouts.rollout_step`).
    """
    labels = ", ".join(f"{k}={v}" for k, v in sorted(a.labels.items())) or "-"
    drift = ""
    if a.pinned_version and a.version and a.version != a.pinned_version:
        drift = "  ≠ pin"
    cert = fmt.cert_expiry(a.cert_not_after, now)
    return [
        ("id", a.id),
        ("name", a.name),
        ("pool", a.pool),
        ("labels", labels),
        ("state", _state_words(a, now)),
        *([("stopped", fmt.age(a.stopped_at, now))] if a.stopped_at is not None else []),
        ("reasons", "; ".join(a.reasons) or "-"),
        ("version", f"{a.version or '-'}{drift}"),
        ("pinned version", a.pinned_version or "-"),
        *([("upgrade", upgrade_line(a.upgrade, now))] if a.upgrade is not None else []),
        *([("rollout", rollout)] if rollout is not None else []),
        ("config hash", _short_hash(a.config_hash)),
        ("pinned config", _pinned_config(a.config_hash, a.pinned_config_hash)),
        ("last heartbeat", fmt.age(a.last_heartbeat_at, now)),
        ("heartbeat every", f"{a.heartbeat_interval_s:g}s"),
        ("connected", fmt.age(a.connected_at, now)),
        ("enrolled", fmt.utc_minute(a.enrolled_at)),
        ("uptime", _duration(a.uptime_s)),
        ("remote address", a.remote_addr or "-"),
        # Behind replicas: the one holding its channel (docs/server.md, "Replicas").
        *([("replica", a.replica)] if a.replica else []),
        ("clock skew", fmt.skew(a.skew_ms)),
        ("round trip", "-" if a.rtt_ms is None else f"{a.rtt_ms:.1f} ms"),
        ("cpu", fmt.percent(a.cpu_percent)),
        ("memory (host)", fmt.percent(a.mem_host_percent)),
        ("memory (agent)", _bytes(a.mem_rss_bytes)),
        ("queue depth", "-" if a.queue_depth is None else str(a.queue_depth)),
        ("certificate", f"expires {cert}"),
        ("cert not after", fmt.utc_minute(a.cert_not_after)),
    ]


def remediations_markup(remediations: list[RemediationInfo], now: float) -> str:
    """The agent's remediations, newest first: when, state, what, what held, and who
    decided or ran it and how it went (or why it waits)."""
    lines = []
    for r in remediations:
        if r.state == "pending_approval":
            said = f"{r.why_approval or 'approval asked'}, {fmt.age(r.created_at, now)} (I: inbox)"
        else:
            said = decided_words(r, now)
        label = tone_markup(remediation_tone(r), escape(remediation_label(r)))
        lines.append(
            f"{label}  {escape(r.action.replace('_', ' '))} · {escape(r.condition)} · "
            + escape(said)
        )
    return "\n".join(lines)


def disconnects_markup(records: list[Disconnect], hints: list[DisconnectHint]) -> str:
    """The control plane's hints (warning colour), then the newest records, newest first."""
    lines = [f"[$warning]hint: {escape(h.message)}[/]" for h in hints]
    lines += [escape(disconnect_line(r)) for r in reversed(records[-SHOWN_DISCONNECTS:])]
    if len(records) > SHOWN_DISCONNECTS:
        lines.append(f"… {len(records) - SHOWN_DISCONNECTS} older (fleet agents show -o json)")
    return "\n".join(lines)


def config_markup(view: ConfigView) -> str:
    """The effective-versus-pinned diff as Textual markup, coloured by theme."""
    if view.pinned_hash is None:
        lines = [
            "[b]no config pinned[/b] for this agent or its pool (an admin pins one with "
            f"PUT /v1/pools/POOL/pin); effective {view.effective_hash or '-'}"
        ]
        if view.error:
            lines.append(f"[$warning]{escape(view.error)}[/]")
        if view.effective is not None:
            lines += [escape(line) for line in json.dumps(view.effective, indent=2).splitlines()]
        return "\n".join(lines)
    head = "in sync with the pin" if view.in_sync else "DIFFERS from the pin"
    lines = [
        f"[b]config {head}[/b]  effective {view.effective_hash or '-'}"
        f"  pinned {view.pinned_hash or '-'}"
    ]
    if view.error:
        lines.append(f"[$warning]{escape(view.error)}[/]")
    for line in view.diff:
        text = escape(line)
        if line.startswith(("+++", "---")):
            lines.append(f"[b]{text}[/b]")
        elif line.startswith("+"):
            lines.append(f"[$success]{text}[/]")
        elif line.startswith("-"):
            lines.append(f"[$error]{text}[/]")
        elif line.startswith("@@"):
            lines.append(f"[$accent]{text}[/]")
        else:
            lines.append(text)
    if not view.diff and view.in_sync:
        lines.append("(no differences)")
    return "\n".join(lines)


class AgentDetailScreen(Screen[None]):
    """One agent in full; updated on the app's tick while it is shown."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Back")]
    """Escape goes back to the fleet."""

    def __init__(self, model: FleetModel, agent_id: str, rest: RestClient | None) -> None:
        super().__init__()
        self.model = model
        self.agent_id = agent_id
        self.rest = rest
        self._shown: object = None
        self._events_shown: object = None
        self._remediations_shown: object = None
        self._fetched_remediations: list[RemediationInfo] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield LinkBanner()
        with VerticalScroll(id="detail"):
            with Horizontal(id="detail-fields"):
                yield Static(id="detail-fields-left")
                yield Static(id="detail-fields-right")
            with Horizontal(id="detail-charts"):
                for key, title in (("cpu", "cpu %"), ("mem", "memory %"), ("queue", "queue")):
                    with Vertical(classes="chart"):
                        yield Label(title, id=f"chart-{key}-label")
                        # Percentages on 0-100; the queue on its own largest depth.
                        yield BarChart(None if key == "queue" else 100.0, id=f"chart-{key}")
            yield Label("Recent commands", classes="section")
            yield Static(id="detail-events")
            # Hidden from the start (not in on_mount: a tick may run first and show
            # them, and on_mount would hide them for good): shown when the agent has
            # any remediations, or once its detail has loaded with any disconnects.
            yield _hidden(Label("Remediations", classes="section", id="detail-remediations-label"))
            yield _hidden(Static(id="detail-remediations"))
            yield _hidden(Label("Disconnects", classes="section", id="detail-disconnects-label"))
            yield _hidden(Static(id="detail-disconnects"))
            yield Label("Config: effective versus pinned", classes="section")
            yield Static("loading…", id="detail-config")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#detail").focus()
        self.tick()
        if self.rest is not None:
            self._load_config()
        else:
            self.query_one("#detail-config", Static).update("(not connected)")

    @work(exclusive=True, group="detail-config")
    async def _load_config(self) -> None:
        assert self.rest is not None
        target = self.query_one("#detail-config", Static)
        try:
            detail = await self.rest.agent(self.agent_id)
            self.model.merge_events(self.agent_id, detail.events)
            # Older than the stream's snapshot holds; the stream's own stay newer.
            self._fetched_remediations = detail.remediations
            if detail.disconnects or detail.hints:
                self.query_one("#detail-disconnects", Static).update(
                    disconnects_markup(detail.disconnects, detail.hints)
                )
                for part in ("#detail-disconnects-label", "#detail-disconnects"):
                    self.query_one(part).display = True
            self.tick()
        except ApiError:
            pass  # the stream's events are still shown
        try:
            view = await self.rest.config(self.agent_id)
        except ApiError as exc:
            target.update(f"[$error]could not load the config: {escape(str(exc))}[/]")
            return
        target.update(config_markup(view))

    def tick(self) -> None:
        """Redraw what changed since the last tick."""
        agent = self.model.agents.get(self.agent_id)
        if agent is None:
            self.query_one("#detail-fields-left", Static).update(
                f"agent {self.agent_id} is no longer in the fleet"
            )
            return
        now = self.model.server_now()
        self.title = f"agent {fmt.elide(agent.name, self._title_room())}"
        rollout = self._rollout_step()
        key = (agent, int(now), rollout)
        # What was shown is recorded only once it was all drawn: a tick that
        # comes before the screen is composed must not count as drawn.
        if key != self._shown:
            fields = field_lines(agent, now, rollout)
            half = (len(fields) + 1) // 2
            self.query_one("#detail-fields-left", Static).update(fields_grid(fields[:half]))
            self.query_one("#detail-fields-right", Static).update(fields_grid(fields[half:]))
            hist = self.model.history.get(self.agent_id)
            if hist is not None:
                for key_name, data in (("cpu", hist.cpu), ("mem", hist.mem), ("queue", hist.queue)):
                    values = [float(v) for v in data]
                    self.query_one(f"#chart-{key_name}", BarChart).data = tuple(values)
                    last = f"{values[-1]:.0f}" if values else "-"
                    peak = f"{max(values):.0f}" if values else "-"
                    title = {"cpu": "cpu %", "mem": "mem %", "queue": "queue"}[key_name]
                    scale = "" if key_name == "queue" else " · scale 0-100"
                    self.query_one(f"#chart-{key_name}-label", Label).update(
                        f"{title} now {last} · max {peak}{scale}"
                    )
            self._shown = key
        self._show_remediations(now)
        events = tuple(self.model.events.get(self.agent_id, ()))
        if events != self._events_shown:
            lines = [
                f"{fmt.age(e.at, now)}  {e.kind}  by {escape(e.actor)}  "
                + ("[$success]ok[/]" if e.ok else "[$error]FAILED[/]")
                + f"  {escape(e.summary)}"
                for e in reversed(events)
            ]
            self.query_one("#detail-events", Static).update(
                "\n".join(lines) or "(none since the dashboard started)"
            )
            self._events_shown = events

    def _title_room(self) -> int:
        """Characters the agent's name may take in the header: the header shows
        "agent NAME — SUB TITLE" centred between its icon and its edge, and a name of
        64 characters beside the link state and the role does not fit 80 columns
        (the name is whole in the fields below)."""
        used = len("agent  — ") + len(self.app.sub_title) + HEADER_CHROME
        return max(self.app.size.width - used, 12)

    def _rollout_step(self) -> str | None:
        """Where the agent is in the latest rollout that names it."""
        newest = sorted(self.model.rollouts.values(), key=lambda r: r.created_at, reverse=True)
        for r in newest:
            step = rollout_step(r, self.agent_id)
            if step is not None:
                return step
        return None

    def _show_remediations(self, now: float) -> None:
        by_id = {r.id: r for r in self._fetched_remediations}
        by_id.update((r.id, r) for r in self.model.remediations_of(self.agent_id))
        mine = sorted(by_id.values(), key=lambda r: r.created_at, reverse=True)
        key = (tuple(mine), int(now // 60))
        if key == self._remediations_shown:
            return
        self.query_one("#detail-remediations", Static).update(remediations_markup(mine, now))
        for part in ("#detail-remediations-label", "#detail-remediations"):
            self.query_one(part).display = bool(mine)
        self._remediations_shown = key

    def action_close(self) -> None:
        self.dismiss(None)


_W = TypeVar("_W", bound=Widget)


def _hidden(widget: _W) -> _W:
    """``widget``, not displayed until shown."""
    widget.display = False
    return widget
