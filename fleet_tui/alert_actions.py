"""Acknowledge and silence the selected alert; plan maintenance of an agent or its pool.

The keys are on the alerts panel (``A``, ``U``, ``Z``) and the fleet view (``M``);
silences and windows are listed, and ended, in :mod:`fleet_tui.screens.holds`.
Unlike the agent actions they are never hidden for a low role: pressing one says
what role it needs (the gate, :mod:`fleet_tui.permissions`), since the server would
refuse it anyway.  What changed comes back on the event stream (the alert again,
marked), not from the answer.
"""

from __future__ import annotations

from textual import work
from textual.app import App

from fleet.protocol import AgentState, AlertInfo
from fleet.units import format_ago

from .client import RestClient
from .errors import ApiError
from .holds import clock_time
from .permissions import Gate
from .screens.silence import (
    AckModal,
    MaintenanceModal,
    MaintenanceRequest,
    SilenceModal,
    SilenceRequest,
)

__all__ = ["AlertActions", "target_matchers"]


def target_matchers(alert: AlertInfo, agents: dict[str, AgentState]) -> dict[str, str]:
    """The silence matcher for an alert's target: its agent (by name), pool or connection."""
    scope, _, name = alert.target.partition(":")
    if scope in ("pool", "connection") and name:
        return {scope: name}
    agent = agents.get(alert.target)
    return {"agent": agent.name if agent is not None else alert.target}


class AlertActions(App[int]):
    """Ack, unack, silence, maintenance, for :class:`~fleet_tui.app.FleetApp`."""

    rest: RestClient | None
    gate: Gate

    def current_alert(self) -> AlertInfo | None:
        """The alert highlighted in the alerts panel, if any."""
        raise NotImplementedError

    def current_agent(self) -> AgentState | None:
        raise NotImplementedError

    def agent_states(self) -> dict[str, AgentState]:
        raise NotImplementedError

    def server_now(self) -> float:
        """The server's clock now, as the dashboard knows it."""
        raise NotImplementedError

    def no_agent_here(self) -> str:
        raise NotImplementedError

    def _allowed(self, action: str) -> bool:
        why = self.gate.why_not(action)
        if why is not None:
            self.notify(why, title="Not allowed", severity="warning")
            return False
        if self.rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return False
        return True

    def _alert_for(self, action: str) -> AlertInfo | None:
        if not self._allowed(action):
            return None
        alert = self.current_alert()
        if alert is None:
            self.notify("Highlight an alert in the alerts panel first (a).", severity="warning")
        return alert

    def _failed(self, what: str, exc: ApiError) -> None:
        self.notify(str(exc), title=f"{what} failed", severity="error", timeout=10)

    def action_ack_alert(self) -> None:
        alert = self._alert_for("ack_alert")
        if alert is None:
            return

        def done(note: str | None) -> None:
            if note is not None:
                self._ack(alert, note)

        self.push_screen(AckModal(alert.message), done)

    @work(group="actions")
    async def _ack(self, alert: AlertInfo, note: str) -> None:
        assert self.rest is not None
        try:
            await self.rest.ack(alert.id, note)
        except ApiError as exc:
            self._failed("Acknowledge", exc)
            return
        self.notify(f"Acknowledged: {alert.message}", title="Acknowledged")

    def action_unack_alert(self) -> None:
        alert = self._alert_for("unack_alert")
        if alert is not None:
            self._unack(alert)

    @work(group="actions")
    async def _unack(self, alert: AlertInfo) -> None:
        assert self.rest is not None
        try:
            await self.rest.unack(alert.id)
        except ApiError as exc:
            self._failed("Take back acknowledgement", exc)
            return
        self.notify(f"No longer acknowledged: {alert.message}")

    def action_silence_alert(self) -> None:
        alert = self._alert_for("silence_alert")
        if alert is None:
            return

        def done(request: SilenceRequest | None) -> None:
            if request is not None:
                self._silence(request)

        matchers = target_matchers(alert, self.agent_states())
        self.push_screen(SilenceModal(matchers, clock=self.server_now), done)

    @work(group="actions")
    async def _silence(self, request: SilenceRequest) -> None:
        assert self.rest is not None
        try:
            made = await self.rest.silence(
                request.matchers, request.duration_s, request.reason, request.starts_at
            )
        except ApiError as exc:
            self._failed("Silence", exc)
            return
        self.notify(
            f"Silence {made.get('id', '')} made{self._from(request.starts_at)}.",
            title="Silenced",
        )

    def _from(self, starts_at: float | None) -> str:
        """`` from 14:30Z (in 25m)`` for a later start, else ``""``."""
        now = self.server_now()
        if starts_at is None or starts_at <= now:
            return ""
        return f" from {clock_time(starts_at, now)} ({format_ago(starts_at, now)})"

    def action_maintenance(self) -> None:
        if not self._allowed("maintenance"):
            return
        agent = self.current_agent()
        if agent is None:
            self.notify(self.no_agent_here(), severity="warning")
            return

        def done(request: MaintenanceRequest | None) -> None:
            if request is not None:
                self._maintenance(agent, request)

        self.push_screen(MaintenanceModal(agent.name, agent.pool, clock=self.server_now), done)

    @work(group="actions")
    async def _maintenance(self, agent: AgentState, request: MaintenanceRequest) -> None:
        assert self.rest is not None
        target = agent.pool if request.scope == "pool" else agent.id
        what = f"pool {agent.pool}" if request.scope == "pool" else f"agent {agent.name}"
        try:
            await self.rest.maintenance(
                request.scope, target, request.duration_s, request.reason, request.starts_at
            )
        except ApiError as exc:
            self._failed("Maintenance", exc)
            return
        later = self._from(request.starts_at)
        said = f"will be in maintenance{later}" if later else "is in maintenance"
        self.notify(f"{what[0].upper()}{what[1:]} {said}.", title="Maintenance")
