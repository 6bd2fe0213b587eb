"""Open alerts, newest first, with their age; Enter jumps to the agent."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from fleet.protocol import AlertInfo

from ... import format as fmt

__all__ = ["AlertsPanel", "alert_line"]


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
    return f"{mark} {when:>7}{flaps}  {target_name}: {alert.message}"


class AlertsPanel(Vertical):
    """A list of open alerts, updated on the app's tick when its text changed."""

    DEFAULT_CSS = """
    AlertsPanel { width: 40%; max-width: 60; border-left: solid $primary; }
    AlertsPanel > Label { width: 100%; padding: 0 1; background: $panel; text-style: bold; }
    AlertsPanel > OptionList, AlertsPanel > OptionList:focus { height: 1fr; border: none; }
    """

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
        self._shown: list[tuple[str, str]] = []
        self._targets: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Label("Alerts", id="alerts-title")
        yield OptionList(id="alerts-list")

    def show(self, alerts: list[AlertInfo], names: dict[str, str], now: float) -> None:
        """Show these alerts (newest first); a no-op when nothing visible changed."""
        lines = [(a.id, alert_line(a, names.get(a.target, a.target), now)) for a in alerts]
        if lines == self._shown:
            return
        olist = self.query_one(OptionList)
        if [i for i, _ in lines] == [i for i, _ in self._shown]:
            # Same alerts in the same order: replace only the changed prompts.
            for index, (new, old) in enumerate(zip(lines, self._shown, strict=True)):
                if new != old:
                    olist.replace_option_prompt_at_index(index, new[1])
            self._shown = lines
            return
        self._shown = lines
        self._targets = {a.id: a.target for a in alerts}
        keep = olist.highlighted_option.id if olist.highlighted_option is not None else None
        olist.clear_options()
        olist.add_options([Option(text, id=alert_id) for alert_id, text in lines])
        if keep is not None and keep in self._targets:
            olist.highlighted = olist.get_option_index(keep)
        self.query_one("#alerts-title", Label).update(f"Alerts ({len(lines)} open)")

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
