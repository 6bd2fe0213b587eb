"""Open alerts, newest first, with their age; Enter jumps to the agent.

Acknowledged, silenced and maintenance-held alerts stay in the list, dimmed, with
a mark and who or why: ``✓ alice: on it`` (acknowledged, with the note), ``⊘
silenced by bob until 14:00 UTC: patching``.  Keys here acknowledge (``A``), take it
back (``U``) and silence the alert's target (``Z``); the app's gate says why when the
role is too low.  ``h`` (the fleet view's) lists the silences and windows.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from fleet.protocol import AlertInfo

from ... import format as fmt

__all__ = ["AlertsPanel", "alert_line", "held_marks", "is_held", "target_label"]


def alert_line(alert: AlertInfo, target_name: str, now: float) -> str:
    """``"! 3m ago  web-01: clock skew 1.2s"``; ``!!`` marks critical; an alert
    that flapped (passed and failed again within the server's hold time) says how
    often after its age, where a narrow panel does not cut it off:
    ``"!! 9m ago (3 flaps)  web-01: agent is offline"``.

    Ages are in minutes: an alert's age in seconds would redraw every tick.
    """
    mark = "!!" if alert.severity == "critical" else "! "
    when = fmt.age(alert.raised_at, now, coarse=True)
    flaps = f" ({alert.flaps} flap{'s' if alert.flaps > 1 else ''})" if alert.flaps else ""
    return f"{mark} {when:>7}{flaps}  {target_name}: {alert.message}{held_marks(alert)}"


def target_label(target: str, names: dict[str, str]) -> str:
    """An agent's name for its id; ``pool etl``, ``connection orders-db`` (not the
    ``kind:name`` of the target's id) for the others."""
    return names.get(target) or target.replace(":", " ", 1)


def held_marks(alert: AlertInfo) -> str:
    """``"  ✓ alice: on it  ⊘ silenced by bob until 14:00 UTC"`` (who acknowledged it and
    their note; what silences it), or "" for an alert not held."""
    marks = ""
    if alert.acked_by:
        marks += f"  ✓ {alert.acked_by}" + (f": {alert.ack_note}" if alert.ack_note else "")
    if alert.suppressed:
        marks += f"  ⊘ {alert.suppressed}"
    return marks


def is_held(alert: AlertInfo) -> bool:
    """Acknowledged, silenced or in maintenance: shown, dimmed, not notified."""
    return bool(alert.acked_by or alert.suppressed)


class AlertsPanel(Vertical):
    """A list of open alerts, updated on the app's tick when its text changed."""

    DEFAULT_CSS = """
    AlertsPanel { width: 40%; max-width: 60; border-left: solid $primary; }
    AlertsPanel > Label { width: 100%; padding: 0 1; background: $panel; text-style: bold; }
    AlertsPanel > OptionList, AlertsPanel > OptionList:focus { height: 1fr; border: none; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("A", "app.ack_alert", "Ack", id="alerts.ack"),
        Binding("U", "app.unack_alert", "Unack", id="alerts.unack"),
        Binding("Z", "app.silence_alert", "Silence", id="alerts.silence"),
    ]
    """On the highlighted alert: acknowledge, take it back, silence its target."""

    class JumpRequested(Message):
        """Enter was pressed on an alert whose target is ``target``."""

        def __init__(self, panel: AlertsPanel, target: str) -> None:
            super().__init__()
            self.panel = panel
            self.target = target

        @property
        def control(self) -> AlertsPanel:
            return self.panel

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: list[tuple[str, str, bool]] = []
        self._targets: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Label("Alerts", id="alerts-title")
        yield OptionList(id="alerts-list")

    def show(self, alerts: list[AlertInfo], names: dict[str, str], now: float) -> None:
        """Show these alerts (newest first); a no-op when nothing visible changed."""
        lines = [
            (a.id, alert_line(a, target_label(a.target, names), now), is_held(a)) for a in alerts
        ]
        if lines == self._shown:
            return
        olist = self.query_one(OptionList)
        if [i for i, _, _ in lines] == [i for i, _, _ in self._shown]:
            # Same alerts in the same order: replace only the changed prompts.
            for index, (new, old) in enumerate(zip(lines, self._shown, strict=True)):
                if new != old:
                    olist.replace_option_prompt_at_index(index, _prompt(new[1], new[2]))
            self._shown = lines
            return
        self._shown = lines
        self._targets = {a.id: a.target for a in alerts}
        keep = olist.highlighted_option.id if olist.highlighted_option is not None else None
        olist.clear_options()
        olist.add_options([Option(_prompt(text, held), id=i) for i, text, held in lines])
        if keep is not None and keep in self._targets:
            olist.highlighted = olist.get_option_index(keep)
        self.query_one("#alerts-title", Label).update(f"Alerts ({len(lines)} open)")

    @property
    def highlighted_alert(self) -> str | None:
        """The id of the highlighted alert, if any."""
        option = self.query_one(OptionList).highlighted_option
        return option.id if option is not None else None

    def focus_list(self) -> None:
        """Focus the list with the newest alert highlighted."""
        olist = self.query_one(OptionList)
        if olist.highlighted is None and olist.option_count:
            olist.highlighted = 0
        self.screen.set_focus(olist)

    @on(OptionList.OptionSelected)
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        target = self._targets.get(event.option.id or "")
        if target is not None:
            self.post_message(self.JumpRequested(self, target))


def _prompt(text: str, held: bool) -> Text:
    return Text(text, style="dim" if held else "")
