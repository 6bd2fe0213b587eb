"""The fleet dashboard app: wires the model, the network clients and the screens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.actions import ActionParseResult
from textual.actions import parse as parse_action
from textual.app import SystemCommand
from textual.binding import Binding, BindingType
from textual.css.query import NoMatches
from textual.dom import DOMNode
from textual.screen import Screen

from fleet.protocol import AgentState, AlertInfo, Snapshot, StreamToClient

from . import format as fmt
from .actions import AgentActions
from .alert_actions import AlertActions
from .client import ConnectionState, LinkStatus, RestClient, StreamClient
from .client._tls import make_ssl_context
from .commands import AgentCommands
from .errors import FleetTuiError
from .hangup import terminal_fd, terminal_gone, watch_sighup
from .model import FleetModel
from .permissions import (
    ACTIONS,
    ALERT_ACTIONS,
    HOLD_ACTIONS,
    REMEDIATION_ACTIONS,
    ROLLOUT_ACTIONS,
    ActionSpec,
    Gate,
)
from .remediations import approvals_badge
from .rollouts import recently_halted
from .screens.agent_detail import AgentDetailScreen
from .screens.connections import ConnectionsScreen
from .screens.fleet import SORT_KEYS, FleetScreen
from .screens.holds import HoldsScreen
from .screens.inbox import InboxScreen
from .screens.keys import KeysScreen, key_rows
from .screens.rollouts import RolloutsScreen
from .screens.wall import WallScreen
from .server_url import check_server_url
from .widgets.alerts import AlertsPanel
from .widgets.banner import LinkBanner

__all__ = ["FleetApp", "attention_badges", "default_logs_dir"]

_NOT_ON_AGENTS = (ConnectionsScreen, HoldsScreen, RolloutsScreen, InboxScreen)
"""Views whose keys act on what they list, never on the agent under the fleet's
cursor hidden beneath them."""


def attention_badges(model: FleetModel) -> str:
    """What on-call should see from any screen, for the header: ``⚑ 2 to approve``
    (remediations waiting for an operator) and ``✗ 1 rollout halted`` (the rollouts
    view names it; the header must fit 80 columns)."""
    badges = [approvals_badge(len(model.pending_approvals()))]
    halted = recently_halted(model.rollouts.values(), model.server_now())
    if halted:
        badges.append(f"✗ {fmt.count(len(halted), 'rollout')} halted")
    return " · ".join(b for b in badges if b)


def default_logs_dir() -> Path:
    """Where fetched logs are saved: ``$XDG_STATE_HOME/fleet/logs``."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "fleet" / "logs"


class FleetApp(AlertActions, AgentActions):
    """The fleet dashboard.

    Args:
        server_url: ``https://host:port`` of the control plane; None to run on
            data fed with :meth:`feed` (tests, screenshots).
        token: The API bearer token.
        ca_file: The control plane's CA certificate (PEM).
        ca_pin: Or the CA's pin, ``sha256:…``, checked against ``/v1/ca``.
        wall: Wall mode: big counters, pages turning on their own, input locked.
        tick: Seconds between redraws; events never redraw by themselves.
        model: A model to show, e.g. one already filled for a test.
        keymap: Binding id to keys, e.g. ``{"fleet.revoke": "X"}``.
        logs_dir: Where fetched logs are saved.
        backoff_cap: Longest wait between reconnection attempts, seconds.
        page_s: Seconds between pages in wall mode.
        theme: A Textual theme name, e.g. ``ansi-dark``.
    """

    CSS_PATH = "app.tcss"
    TITLE = "fleet"
    COMMANDS = AgentActions.COMMANDS | {AgentCommands}
    """Textual's commands (ours among the system ones) and every agent by name."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="fleet.quit"),
        Binding("p", "probe", "Probe", id="fleet.probe"),
        Binding("l", "logs", "Logs", id="fleet.logs"),
        Binding("v", "pin", "Pin", id="fleet.pin"),
        Binding("x", "revoke", "Revoke", id="fleet.revoke"),
        Binding("question_mark", "keys", "Keys", id="fleet.keys"),
    ]
    """Actions on the agent under the cursor (or shown in detail), keys, quit."""

    def __init__(
        self,
        server_url: str | None = None,
        token: str = "",
        ca_file: str | Path | None = None,
        wall: bool = False,
        *,
        ca_pin: str | None = None,
        tick: float = 1.0,
        model: FleetModel | None = None,
        keymap: dict[str, str] | None = None,
        logs_dir: Path | None = None,
        backoff_cap: float = 10.0,
        page_s: float = 8.0,
        theme: str | None = None,
    ) -> None:
        super().__init__()
        if theme is not None:
            self.theme = theme
        self.server_url = server_url
        self._token = token
        self._ca_file = ca_file
        self._ca_pin = ca_pin
        self.wall = wall
        self.tick_s = tick
        self.page_s = page_s
        self.model = model if model is not None else FleetModel()
        self.gate = Gate(role=self.model.role if model is not None else "viewer", wall=wall)
        self.logs_dir = logs_dir or default_logs_dir()
        self.backoff_cap = backoff_cap
        self.link = LinkStatus(
            ConnectionState.CONNECTING if server_url is not None else ConnectionState.LIVE
        )
        self.link_since = time.monotonic()
        self.rest: RestClient | None = None
        self.stream: StreamClient | None = None
        self.ticks = 0
        self._tty: int | None = None
        if keymap:
            self.set_keymap(keymap)

    # ------------------------------------------------------------------
    # Lifecycle

    def on_mount(self) -> None:
        if self.wall:
            self.push_screen(WallScreen(self.model, page_s=self.page_s))
        else:
            self.push_screen(FleetScreen(self.model, show_alerts=self.size.width >= 140))
        self.set_interval(self.tick_s, self.tick)
        if self.server_url is not None:
            self._connect()
        if not self.is_headless:
            self._tty = terminal_fd()
            watch_sighup(self._hang_up)

    def _hang_up(self) -> None:
        self.exit(return_code=1, message="the terminal went away (hangup)")

    @work(group="stream", exit_on_error=False)
    async def _connect(self) -> None:
        assert self.server_url is not None
        try:
            self.server_url = check_server_url(self.server_url)
            ctx = await asyncio.to_thread(
                make_ssl_context, self.server_url, self._ca_file, self._ca_pin
            )
        except FleetTuiError as exc:
            self._set_link(self.link.to(ConnectionState.REFUSED, str(exc)))
            return
        self.rest = RestClient(self.server_url, self._token, ctx)
        self.stream = StreamClient(
            self.server_url,
            self._token,
            ctx,
            on_message=self.feed,
            on_status=self._set_link,
            backoff_cap=self.backoff_cap,
        )
        try:
            await self.stream.run()
        except Exception as exc:
            # A bug, not a network event: say so on screen instead of going
            # quietly stale behind a "live" header.
            self.log.error("event stream failed", exc)
            if self.link.state is not ConnectionState.STOPPED:
                self._set_link(
                    LinkStatus(
                        ConnectionState.REFUSED, f"dashboard error: {exc!r}; please report it"
                    )
                )

    async def on_unmount(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
        if self.rest is not None:
            await self.rest.aclose()

    # ------------------------------------------------------------------
    # Data in

    def feed(self, msg: StreamToClient) -> None:
        """Apply one stream message; the screen catches up on the next tick."""
        self.model.apply(msg)
        if isinstance(msg, Snapshot):
            if msg.role != self.gate.role:
                self.gate = Gate(role=msg.role, wall=self.wall)
                self.refresh_bindings()
            # The first picture of the fleet should not wait for the tick.
            self.call_later(self.tick)

    def _set_link(self, status: LinkStatus) -> None:
        if status.state is not self.link.state:
            self.link_since = time.monotonic()
        self.link = status
        self.call_later(self.tick)

    def link_words(self) -> str:
        """The connection state in a word, for the header; the banner says why."""
        return self.link.state.value

    def banner_text(self) -> str:
        """What the banner says, or "" when the data is live."""
        state = self.link.state
        if state is ConnectionState.LIVE:
            return ""
        if state is ConnectionState.REFUSED:
            return f"refused: {self.link.detail}"
        if state is ConnectionState.NOT_ANSWERING:
            heard = self.stream.last_heard if self.stream is not None else self.link_since
            quiet = time.monotonic() - heard
            detail = self.link.detail
            return f"the server is not answering: nothing heard for {quiet:.0f} s — {detail}"
        if not self.model.has_snapshot:
            where = self.server_url or "the control plane"
            if state is ConnectionState.RECONNECTING:
                # Never connected: say why each try failed, not "connecting…" forever.
                return f"cannot connect to {where}: {self.link.detail}"
            return f"connecting to {where}…"
        age = self.model.data_age() or 0.0
        return f"reconnecting… data as of {age:.0f} s ago — {self.link.detail}"

    # ------------------------------------------------------------------
    # The tick

    def tick(self) -> None:
        """Redraw what changed: called every ``tick`` seconds and after a snapshot."""
        # While a screen is still being composed its widgets are missing; the
        # next tick catches up. While the app shuts down its screen stack empties
        # before its timers stop: nothing to draw then.
        if not self.screen_stack:
            return
        with contextlib.suppress(NoMatches):
            self._tick()

    def _tick(self) -> None:
        if self._tty is not None and terminal_gone(self._tty):
            self._hang_up()
            return
        self.ticks += 1
        live = self.link.state is ConnectionState.LIVE
        words = self.link_words()
        role = self.gate.role if self.model.has_snapshot else "?"
        sub = f"{words} · {role}"
        badges = attention_badges(self.model)
        if badges:
            sub += f" · {badges}"
        if self.sub_title != sub:
            self.sub_title = sub
        screen = self.screen
        banner_text = self.banner_text()
        for banner in screen.query(LinkBanner):
            banner.show(banner_text, refused=self.link.state is ConnectionState.REFUSED)
        if isinstance(screen, FleetScreen):
            screen.table.stale = not live
            screen.tick()
        elif isinstance(screen, WallScreen):
            count = len(self.model.agents)
            screen.tick(status=banner_text or f"fleet: {words} · {fmt.count(count, 'agent')}")
        elif isinstance(screen, (AgentDetailScreen, *_NOT_ON_AGENTS)):
            screen.tick()

    # ------------------------------------------------------------------
    # The gate: the one place that enables or refuses actions

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if self.wall:
            return self.gate.allows(action)
        if action in ACTIONS:
            if isinstance(self.screen, _NOT_ON_AGENTS):
                return False  # no agent here: not even dimmed in the footer
            if not self.gate.allows(action):
                return None
            return True if self.current_agent() is not None else None
        return True

    async def run_action(
        self,
        action: str | ActionParseResult,
        default_namespace: DOMNode | None = None,
        namespaces: Mapping[str, DOMNode] | None = None,
    ) -> bool:
        """Run ``action``; a key of a refused agent action says why instead of nothing.

        :meth:`check_action` keeps refused actions dimmed in the footer, and
        Textual then drops their keys without a word: a viewer pressing ``p``
        deserves "needs the operator role; you are a viewer".
        """
        if await super().run_action(action, default_namespace, namespaces):
            return True
        _, name, _ = action if isinstance(action, tuple) else parse_action(action)
        if self.wall or name not in ACTIONS:
            return False
        if default_namespace is not None and default_namespace is not self:
            return False
        self._action_callback(name)()  # refuses, saying why (_require)
        return True

    def _require(self, action: str) -> AgentState | None:
        why = self.gate.why_not(action)
        if why is not None:
            self.notify(why, title="Not allowed", severity="warning")
            return None
        agent = self.current_agent()
        if agent is None:
            self.notify(self.no_agent_here(), severity="warning")
        return agent

    def no_agent_here(self) -> str:
        """Why an agent's action has no agent to act on, and what to do."""
        listed = {
            HoldsScreen: "silences and maintenance windows",
            ConnectionsScreen: "connections",
            RolloutsScreen: "rollouts",
            InboxScreen: "remediations (Enter opens the agent's detail)",
        }
        for kind, what in listed.items():
            if isinstance(self.screen, kind):
                return f"This view lists {what}: escape goes back to the agents."
        return "Put the cursor on an agent first."

    def current_agent(self) -> AgentState | None:
        """The agent an action applies to: the one in detail, or under the cursor.

        None over the connections, held-back, rollouts and inbox views: their keys act
        on what they list, and the fleet's cursor beneath is hidden (a probe "from
        etl-07" with a connection selected was the bug this prevents).
        """
        for screen in reversed(self.screen_stack):
            if isinstance(screen, _NOT_ON_AGENTS):
                return None
            if isinstance(screen, AgentDetailScreen):
                return self.model.agents.get(screen.agent_id)
            if isinstance(screen, FleetScreen):
                agent_id = screen.table.highlighted_agent
                return self.model.agents.get(agent_id) if agent_id else None
        return None

    def current_alert(self) -> AlertInfo | None:
        """The alert highlighted in the fleet view's alerts panel, if it is shown."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, FleetScreen):
                panel = screen.query_one(AlertsPanel)
                alert_id = panel.highlighted_alert if panel.display else None
                return self.model.alerts.get(alert_id) if alert_id else None
        return None

    def agent_states(self) -> dict[str, AgentState]:
        return self.model.agents

    def server_now(self) -> float:
        return self.model.server_now()

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        if self.wall:
            return
        yield from super().get_system_commands(screen)
        agent = self.current_agent()
        for spec in ACTIONS.values():
            why = self.gate.why_not(spec.name)
            target = f" on {agent.name}" if agent else ""
            help_text = f"{spec.does[0].upper()}{spec.does[1:]}."
            if why:
                help_text = f"Unavailable: {why}"
            elif agent is None:
                help_text = "Unavailable: put the cursor on an agent first."
            yield SystemCommand(
                f"{spec.title}{target}", help_text, self._action_callback(spec.name)
            )
        for spec in ALERT_ACTIONS.values():
            why = self.gate.why_not(spec.name)
            help_text = f"Unavailable: {why}" if why else f"{spec.does[0].upper()}{spec.does[1:]}."
            yield SystemCommand(spec.title, help_text, self._action_callback(spec.name))
        yield SystemCommand(
            "Connections", "Show connections and whether each is routable", self.open_connections
        )
        yield SystemCommand(
            "Silences and maintenance",
            "List the active and planned silences and maintenance windows; end one (h)",
            self.open_holds,
        )
        yield SystemCommand(
            "Rollouts",
            "Show the rollouts, each wave's progress and its agents; pause, resume, abort (R)",
            self.open_rollouts,
        )
        waiting = len(self.model.pending_approvals())
        yield SystemCommand(
            f"Remediation inbox ({waiting} to approve)" if waiting else "Remediation inbox",
            "Show the remediations waiting for approval and the recent ones; approve or reject (I)",
            self.open_inbox,
        )
        if isinstance(screen, HoldsScreen):
            yield self._screen_command(HOLD_ACTIONS["end_hold"], screen.action_end_hold)
        if isinstance(screen, RolloutsScreen):
            for spec in ROLLOUT_ACTIONS.values():
                yield self._screen_command(spec, getattr(screen, f"action_{spec.name}"))
        if isinstance(screen, InboxScreen):
            for spec in REMEDIATION_ACTIONS.values():
                yield self._screen_command(spec, getattr(screen, f"action_{spec.name}"))
        if isinstance(screen, FleetScreen):
            yield SystemCommand(
                "Filter", "Filter the fleet by text or state (/)", screen.action_filter
            )
            yield SystemCommand(
                "Group by pool", "Toggle grouping the fleet by pool (g)", screen.action_group
            )
            yield SystemCommand("Alerts", "Show or hide the open alerts (a)", screen.action_alerts)
            for key in SORT_KEYS:
                yield SystemCommand(
                    f"Sort by {key.value}",
                    f"Sort the fleet by {key.value}; again to reverse",
                    partial(screen.action_sort, key.value),
                    discover=False,
                )

    def _screen_command(self, spec: ActionSpec, run: Callable[[], None]) -> SystemCommand:
        """A view's action in the palette, unavailable with why for this role."""
        why = self.gate.why_not(spec.name)
        help_text = f"Unavailable: {why}" if why else f"{spec.does[0].upper()}{spec.does[1:]}."
        return SystemCommand(spec.title, help_text, run)

    def _action_callback(self, name: str) -> Callable[[], None]:
        # Straight to the action, past check_action, so a refused one says why.
        method: Callable[[], None] = getattr(self, f"action_{name}")
        return method

    # ------------------------------------------------------------------
    # Navigation

    def open_detail(self, agent_id: str) -> None:
        """Show an agent's detail screen."""
        self.push_screen(AgentDetailScreen(self.model, agent_id, self.rest))
        self.refresh_bindings()

    def open_connections(self) -> None:
        """Show the connections view."""
        self.push_screen(ConnectionsScreen(self.model, lambda: self.gate, lambda: self.rest))

    def open_holds(self) -> None:
        """Show the silences and maintenance windows (again: back where it was)."""
        if isinstance(self.screen, HoldsScreen):
            return
        self.push_screen(HoldsScreen(self.model, lambda: self.gate, lambda: self.rest))

    def action_holds(self) -> None:
        self.open_holds()

    def open_rollouts(self) -> None:
        """Show the rollouts view (again: back where it was)."""
        if isinstance(self.screen, RolloutsScreen):
            return
        self.push_screen(RolloutsScreen(self.model, lambda: self.gate, lambda: self.rest))

    def action_rollouts(self) -> None:
        self.open_rollouts()

    def open_inbox(self) -> None:
        """Show the remediation inbox (again: back where it was)."""
        if isinstance(self.screen, InboxScreen):
            return
        self.push_screen(InboxScreen(self.model, lambda: self.gate, lambda: self.rest))

    def action_inbox(self) -> None:
        self.open_inbox()

    def action_keys(self) -> None:
        if isinstance(self.screen, KeysScreen):
            self.screen.dismiss(None)
            return
        why_not = {
            name: f"needs {spec.role}" if not self.gate.allows(name) else "no agent selected"
            for name, spec in ACTIONS.items()
        }
        self.push_screen(KeysScreen(key_rows(self.screen, why_not)))
