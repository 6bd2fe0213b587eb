"""The remediation inbox: what waits for an operator's approval, then what ran or was
decided lately.

The event stream carries the remediations (``Snapshot.remediations``,
``RemediationUpdate``), so the inbox draws the model on the app's tick.  ``a``
approves the selected waiting remediation (it runs now, as you) and ``r`` rejects
it, each after a dialog that says what will happen and takes a note (operator);
then the cursor goes on to the next one waiting.  Enter opens the agent's detail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, Literal

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, OptionList

from fleet.protocol import RemediationInfo

from ..client import RestClient
from ..errors import ApiError
from ..model import FleetModel
from ..permissions import Gate
from ..remediations import action_words, recent_in_order
from ..widgets.banner import LinkBanner
from ..widgets.keyed_list import Entry
from ..widgets.remediations import RemediationList, remediation_entry
from .decisions import DecisionModal

if TYPE_CHECKING:
    from ..app import FleetApp

__all__ = ["RECENT_SHOWN", "InboxScreen", "inbox_summary"]

RECENT_SHOWN = 50
"""Decided and finished remediations listed under those waiting (the agent's detail
lists all of its own)."""


def inbox_summary(waiting: int, recent: int) -> str:
    """``2 waiting for approval · 3 recent``, or what to expect when nothing is there."""
    head = f"{waiting} waiting for approval" if waiting else "Nothing waits for approval"
    if not waiting and not recent:
        return (
            f"{head}. A pool's remediation policy (fleet remediation policy) runs actions "
            "by itself or queues them here."
        )
    return f"{head} · {recent} recent"


def _heading(title: str) -> Entry:
    return Entry(None, title, Text(title, style="bold underline"))


class InboxScreen(Screen[None]):
    """Remediations, live; ``a`` and ``r`` decide the selected waiting one.

    Args:
        model: The fleet as the stream told it.
        gate: The session's gate now (the role comes with the snapshot).
        rest: The REST client now, or None before the dashboard is connected.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,I", "close", "Back"),
        Binding("a", "approve_remediation", "Approve", id="inbox.approve"),
        Binding("r", "reject_remediation", "Reject", id="inbox.reject"),
    ]
    """Escape or I goes back; a approves and r rejects the selected waiting remediation."""

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
        self._summary = ""

    def compose(self) -> ComposeResult:
        yield Header()
        yield LinkBanner()
        yield Label(id="inbox-summary")
        yield RemediationList(id="inbox-list")
        yield Footer()

    def on_mount(self) -> None:
        self.tick()
        self.set_focus(self.query_one(RemediationList))

    def tick(self) -> None:
        """Redraw what changed; the cursor stays on its remediation."""
        now = self.model.server_now()
        waiting = self.model.pending_approvals()
        recent = recent_in_order(self.model.remediations.values())[:RECENT_SHOWN]
        summary = inbox_summary(len(waiting), len(recent))
        if summary != self._summary:
            self._summary = summary
            self.query_one("#inbox-summary", Label).update(summary)
        listing = self.query_one(RemediationList)
        entries: list[Entry | None] = []
        for title, these in (("Waiting for approval", waiting), ("Recent", recent)):
            if not these:
                continue
            if entries:
                entries.append(None)
            entries.append(_heading(f"{title} ({len(these)})"))
            entries += [remediation_entry(r, now, listing) for r in these]
        listing.show(entries)

    @property
    def fleet_app(self) -> FleetApp:
        from ..app import FleetApp

        assert isinstance(self.app, FleetApp)
        return self.app

    def selected(self) -> RemediationInfo | None:
        """The remediation under the cursor."""
        rem_id = self.query_one(RemediationList).selected_id
        return self.model.remediations.get(rem_id) if rem_id else None

    @on(OptionList.OptionSelected)
    def _open_agent(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        chosen = self.model.remediations.get(event.option.id or "")
        if chosen is None:
            return
        if chosen.agent_id not in self.model.agents:
            self.notify(f"{chosen.agent_name} is no longer in the fleet.", severity="warning")
            return
        self.fleet_app.open_detail(chosen.agent_id)

    # ------------------------------------------------------------------
    # Decisions

    def action_approve_remediation(self) -> None:
        self._decide("approve")

    def action_reject_remediation(self) -> None:
        self._decide("reject")

    def _decide(self, verb: Literal["approve", "reject"]) -> None:
        why = self._gate().why_not(f"{verb}_remediation")
        if why is not None:
            self.notify(why, title="Not allowed", severity="warning")
            return
        chosen = self.selected()
        if chosen is None:
            self.notify("Put the cursor on a remediation first.", severity="warning")
            return
        if chosen.state != "pending_approval":
            self.notify(
                f"This remediation is {chosen.state.replace('_', ' ')}: only one that waits "
                "for approval can be approved or rejected.",
                severity="warning",
            )
            return
        rest = self._rest()
        if rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return

        def done(note: str | None) -> None:
            if note is not None:
                self._send(rest, chosen, verb, note)

        self.app.push_screen(DecisionModal(chosen, verb, self.model.server_now()), done)

    @work(group="remediation-actions")
    async def _send(
        self,
        rest: RestClient,
        chosen: RemediationInfo,
        verb: Literal["approve", "reject"],
        note: str,
    ) -> None:
        what = action_words(chosen)
        try:
            now = await rest.decide_remediation(chosen.id, verb, note)
        except ApiError as exc:
            self.notify(str(exc), title=f"{verb.capitalize()} failed", severity="error", timeout=10)
            return
        # Shown at once; the stream's update follows with the same content.
        self.model.put_remediation(now)
        done = "Approved" if verb == "approve" else "Rejected"
        state = now.state.replace("_", " ")
        self.notify(f"{done}: {what} ({state}).", title=done)
        self.tick()
        # On to the next one waiting, as a mail client goes on to the next message.
        waiting = self.model.pending_approvals()
        if waiting:
            self.query_one(RemediationList).select(waiting[0].id)

    def action_close(self) -> None:
        self.dismiss(None)
