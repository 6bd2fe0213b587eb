"""The rollouts view: each rollout's state and progress, and the selected one's waves
and agents.

The event stream carries the rollouts (``Snapshot.rollouts``, ``RolloutUpdate``),
so the view draws the model on the app's tick and fetches nothing.  Its keys act
on the selected rollout: ``p`` pauses it, ``r`` resumes it, ``x`` aborts it after a
confirmation (operator); a key the role does not allow says which role it needs.
The control plane's answer is shown at once; the stream's update follows.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import ClassVar, Literal

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, OptionList

from fleet.protocol import RolloutInfo

from .. import format as fmt
from ..client import RestClient
from ..errors import ApiError
from ..model import ROLLOUT_ACTIVE, FleetModel
from ..permissions import Gate
from ..rollouts import rollout_order
from ..widgets.banner import LinkBanner
from ..widgets.rollouts import RolloutDetail, RolloutList, rollout_entry
from .decisions import AbortRolloutModal

__all__ = ["RolloutsScreen", "rollouts_summary"]

_GROUPS = {"canary": "running", "soaking": "running", "wave": "running", "pausing": "running"}
"""States counted together in the summary."""

_SUMMARY_ORDER = ("halted", "running", "paused", "waiting", "aborted", "done")

_DONE = {"pause": "Paused", "resume": "Resumed", "abort": "Aborted"}


def rollouts_summary(rollouts: list[RolloutInfo]) -> str:
    """``4 rollouts: 1 halted, 1 running, 1 waiting, 1 done``."""
    if not rollouts:
        return (
            "No rollouts: an admin starts one with fleet rollouts start "
            "(the pool's version, canaries first, then waves)."
        )
    counts = Counter(_GROUPS.get(r.state, r.state) for r in rollouts)
    parts = [f"{counts[s]} {s}" for s in _SUMMARY_ORDER if counts[s]]
    return f"{fmt.count(len(rollouts), 'rollout')}: {', '.join(parts)}"


class RolloutsScreen(Screen[None]):
    """Rollouts, live; ``p``, ``r`` and ``x`` act on the selected one.

    Args:
        model: The fleet as the stream told it.
        gate: The session's gate now (the role comes with the snapshot).
        rest: The REST client now, or None before the dashboard is connected.
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,R", "close", "Back"),
        Binding("p", "pause_rollout", "Pause", id="rollouts.pause"),
        Binding("r", "resume_rollout", "Resume", id="rollouts.resume"),
        Binding("x", "abort_rollout", "Abort", id="rollouts.abort"),
    ]
    """Escape or R goes back; p pauses, r resumes and x aborts the selected rollout."""

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
        yield Label(id="rollouts-summary")
        yield RolloutList(id="rollouts-list")
        with VerticalScroll(id="rollout-scroll"):
            yield RolloutDetail(id="rollout-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.tick()
        self.set_focus(self.query_one(RolloutList))

    def tick(self) -> None:
        """Redraw what changed; the cursor stays on its rollout."""
        now = self.model.server_now()
        rollouts = rollout_order(self.model.rollouts.values())
        summary = rollouts_summary(rollouts)
        if summary != self._summary:
            self._summary = summary
            self.query_one("#rollouts-summary", Label).update(summary)
        listing = self.query_one(RolloutList)
        listing.show([rollout_entry(r, now, listing) for r in rollouts])
        self.query_one(RolloutDetail).show(self.selected(), now)

    @on(OptionList.OptionHighlighted)
    def _moved(self) -> None:
        self.query_one(RolloutDetail).show(self.selected(), self.model.server_now())

    def selected(self) -> RolloutInfo | None:
        """The rollout under the cursor."""
        rollout_id = self.query_one(RolloutList).selected_id
        return self.model.rollouts.get(rollout_id) if rollout_id else None

    # ------------------------------------------------------------------
    # Actions on the selected rollout

    def _ready(self, action: str) -> tuple[RestClient, RolloutInfo] | None:
        """The client and the selected rollout, or None after saying why not: the
        role it needs, no selection, no control plane."""
        why = self._gate().why_not(action)
        if why is not None:
            self.notify(why, title="Not allowed", severity="warning")
            return None
        rollout = self.selected()
        if rollout is None:
            self.notify("Put the cursor on a rollout first.", severity="warning")
            return None
        rest = self._rest()
        if rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return None
        return rest, rollout

    def action_pause_rollout(self) -> None:
        ready = self._ready("pause_rollout")
        if ready is not None:
            self._act(*ready, "pause")

    def action_resume_rollout(self) -> None:
        ready = self._ready("resume_rollout")
        if ready is not None:
            self._act(*ready, "resume")

    def action_abort_rollout(self) -> None:
        ready = self._ready("abort_rollout")
        if ready is None:
            return
        rest, rollout = ready
        if rollout.state not in ROLLOUT_ACTIVE:
            self.notify(
                f"Rollout {rollout.id} is {rollout.state} already: nothing to abort.",
                severity="warning",
            )
            return

        def done(abort: bool | None) -> None:
            if abort:
                self._act(rest, rollout, "abort")

        self.app.push_screen(AbortRolloutModal(rollout), done)

    @work(group="rollout-actions")
    async def _act(
        self, rest: RestClient, rollout: RolloutInfo, verb: Literal["pause", "resume", "abort"]
    ) -> None:
        what = f"rollout of {rollout.version} to pool {rollout.pool}"
        try:
            now = await rest.rollout_action(rollout.id, verb)
        except ApiError as exc:
            self.notify(str(exc), title=f"{verb.capitalize()} failed", severity="error", timeout=10)
            return
        # Shown at once; the stream's update follows with the same content.
        self.model.put_rollout(now)
        self.notify(f"{_DONE[verb]} the {what}: {now.state}.", title=_DONE[verb])
        self.tick()

    def action_close(self) -> None:
        self.dismiss(None)
