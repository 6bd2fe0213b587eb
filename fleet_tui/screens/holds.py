"""The held-back view: the active and planned silences and maintenance windows.

The event stream carries the silences and windows (the snapshot's ``holds``, then a
``holds`` update each time one is made, ended or over), so this view only draws
them; the app's tick moves the planned ones to active and drops the ended ones, by
the server's clock.  From an older server, which does not send them, it fetches them
(``GET /v1/silences`` and ``GET /v1/maintenance``): when it opens, every
``refresh_s`` while it is shown, at once when the open alerts change, and after it
ends one.

``d`` ends the selected one (operator); a key the role does not allow says which
role it needs instead of doing nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, OptionList
from textual.widgets.option_list import Option

from .. import format as fmt
from ..client import RestClient
from ..errors import ApiError
from ..holds import Hold, in_order
from ..model import FleetModel
from ..permissions import Gate
from ..widgets.banner import LinkBanner
from .silence import EndHoldModal

__all__ = ["HoldsScreen", "hold_prompt"]

REFRESH_S = 5.0
"""Seconds between fetches while the view is shown: a window planned from the CLI
shows within this, even when it holds no alert."""

_SECTIONS = (("silence", "Silences"), ("maintenance", "Maintenance windows"))


def hold_prompt(hold: Hold, now: float) -> Table:
    """Two lines beside the mark, a long reason wrapping under them:
    ``⊘ silence  pool=etl kind=stale`` and ``active, ends 15:30Z (1h20m left) · by
    alice: patching``; a planned one's second line is dim."""
    grid = Table.grid(expand=True)
    grid.add_column(width=2, no_wrap=True)
    grid.add_column(ratio=1)
    body = Text()  # the first line alone is bold: a Text's own style would embolden both
    body.append(f"{hold.kind}  {hold.what}", style="bold")
    body.append(f"\n{hold.timing(now)} · {hold.said()}", style="" if hold.active(now) else "dim")
    grid.add_row(Text(hold.mark, style="bold"), body)
    return grid


def _plain(hold: Hold, now: float) -> str:
    """What :func:`hold_prompt` shows, as text: redraw only when it changed."""
    return f"{hold.title()}\n{hold.timing(now)} · {hold.said()}"


class HoldsScreen(Screen[None]):
    """Silences and maintenance windows, live; ``d`` ends the selected one.

    Args:
        model: The fleet as the stream told it; the view keeps what it fetched in
            :attr:`FleetModel.holds`.
        gate: The session's gate now (the role comes with the snapshot).
        rest: The REST client now, or None before the dashboard is connected.
        refresh_s: Seconds between fetches.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,h", "close", "Back"),
        Binding("d,delete", "end_hold", "End", id="holds.end"),
    ]
    """Escape or h goes back; d (or Delete) ends the selected silence or window."""

    def __init__(
        self,
        model: FleetModel,
        gate: Callable[[], Gate] = Gate,
        rest: Callable[[], RestClient | None] = lambda: None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        super().__init__()
        self.model = model
        self._gate = gate
        self._rest = rest
        self.refresh_s = refresh_s
        self._shown: list[tuple[str | None, str]] = []
        self._summary = ""
        self._alerts_seen: tuple[tuple[str, str], ...] | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield LinkBanner()
        yield Label(id="holds-summary")
        yield OptionList(id="holds-list")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(self.refresh_s, self.refresh_holds)
        self.tick()
        self.query_one(OptionList).focus()

    # ------------------------------------------------------------------
    # Data

    def tick(self) -> None:
        """Redraw what changed (from an older server: fetch again when the open alerts
        changed)."""
        alerts = tuple(sorted((a.id, a.suppressed or "") for a in self.model.alerts.values()))
        if alerts != self._alerts_seen:
            self._alerts_seen = alerts
            self.refresh_holds()
        self._draw()

    @work(group="holds", exclusive=True)
    async def refresh_holds(self) -> None:
        """Fetch the silences and windows, unless the stream carries them (nothing to
        fetch from without a server)."""
        rest = self._rest()
        if rest is None or self.model.holds_live:
            return
        try:
            holds = await rest.holds()
        except ApiError as exc:
            self.model.holds_error = str(exc)
        else:
            self.model.holds = holds
            self.model.holds_error = None
        self._draw()

    def _draw(self) -> None:
        now = self.model.server_now()
        holds = in_order(self.model.holds or [], now)
        self._show_summary(holds, now)
        options: list[Option | None] = []
        shown: list[tuple[str | None, str]] = []
        for kind, heading in _SECTIONS:
            these = [h for h in holds if h.kind == kind]
            if not these:
                continue
            if options:
                options.append(None)  # a line between the sections
            title = f"{heading} ({len(these)})"
            options.append(Option(Text(title, style="bold underline"), disabled=True))
            shown.append((None, title))
            for hold in these:
                options.append(Option(hold_prompt(hold, now), id=hold.id))
                shown.append((hold.id, _plain(hold, now)))
        if not holds and self.model.holds is not None:
            empty = (
                "Nothing is held back: no silence, no maintenance window.\n"
                "Z on an alert silences it; M on an agent plans maintenance of it or its pool."
            )
            options.append(Option(empty, disabled=True))
            shown.append((None, empty))
        if shown == self._shown:
            return
        olist = self.query_one(OptionList)
        if [i for i, _ in shown] == [i for i, _ in self._shown]:
            # The same ones in the same order: only their times moved on.
            real = [o for o in options if o is not None]
            for index, (new, old) in enumerate(zip(shown, self._shown, strict=True)):
                if new != old:
                    olist.replace_option_prompt_at_index(index, real[index].prompt)
            self._shown = shown
            return
        keep = self.selected()
        olist.clear_options()
        olist.add_options(options)
        ids = [i for i, _ in shown if i is not None]
        if keep is not None and keep.id in ids:
            olist.highlighted = olist.get_option_index(keep.id)
        elif ids:
            olist.highlighted = olist.get_option_index(ids[0])
        self._shown = shown

    def _show_summary(self, holds: list[Hold], now: float) -> None:
        if self.model.holds is None:
            text = self.model.holds_error or "loading silences and maintenance windows…"
        else:
            silences = sum(h.kind == "silence" for h in holds)
            planned = sum(not h.active(now) for h in holds)
            text = (
                f"Held back: {fmt.count(silences, 'silence')}, "
                f"{fmt.count(len(holds) - silences, 'maintenance window')}"
            )
            if planned:
                text += f" ({planned} planned)"
            if self.model.holds_error:
                text = f"could not refresh: {self.model.holds_error} · {text}"
        if text != self._summary:
            self._summary = text
            self.query_one("#holds-summary", Label).update(text)

    def selected(self) -> Hold | None:
        """The silence or window under the cursor."""
        option = self.query_one(OptionList).highlighted_option
        if option is None or option.id is None:
            return None
        return next((h for h in self.model.holds or [] if h.id == option.id), None)

    # ------------------------------------------------------------------
    # Actions

    def action_end_hold(self) -> None:
        why = self._gate().why_not("end_hold")
        if why is not None:
            self.notify(why, title="Not allowed", severity="warning")
            return
        hold = self.selected()
        if hold is None:
            self.notify("Put the cursor on a silence or a maintenance window.", severity="warning")
            return
        rest = self._rest()
        if rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return

        def done(end: bool | None) -> None:
            if end:
                self._end(rest, hold)

        self.app.push_screen(EndHoldModal(hold, self.model.server_now()), done)

    @work(group="hold-actions")
    async def _end(self, rest: RestClient, hold: Hold) -> None:
        try:
            await rest.end_hold(hold)
        except ApiError as exc:
            self.notify(str(exc), title=f"Ending {hold.id} failed", severity="error", timeout=10)
        else:
            self.model.holds = [h for h in self.model.holds or [] if h.id != hold.id]
            self.notify(f"Ended {hold.noun} {hold.id}: {hold.what}.", title="Ended")
            self._draw()
        self.refresh_holds()

    def action_close(self) -> None:
        self.dismiss(None)
