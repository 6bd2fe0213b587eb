"""The actions on an agent: probe, logs, pin and revoke.

Each one says what it will do (in its modal) before it does it, and shows the
control plane's refusal as it is.  Whether an action may run at all is decided by
the app's gate (:mod:`fleet_tui.permissions`), through ``_require``.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from textual import work
from textual.app import App

from fleet.protocol import AgentState

from .client import ProbeRequest, RestClient
from .errors import ApiError
from .screens.confirm import LogsModal, PinModal, PinRequest, RevokeModal
from .screens.logs import LogViewer
from .screens.probe import ProbeModal, ProbeResultModal

__all__ = ["AgentActions"]


class AgentActions(App[int]):
    """Probe, logs, pin and revoke, for :class:`~fleet_tui.app.FleetApp`."""

    rest: RestClient | None
    logs_dir: Path

    def _require(self, action: str) -> AgentState | None:
        """The agent to act on, or None (after saying why) when not allowed."""
        raise NotImplementedError

    def _refused(self, what: str, exc: ApiError) -> None:
        self.notify(str(exc), title=f"{what} failed", severity="error", timeout=10)

    def action_probe(self) -> None:
        agent = self._require("probe")
        if agent is None:
            return

        def done(request: ProbeRequest | None) -> None:
            if request is not None:
                self._probe(agent, request)

        self.push_screen(ProbeModal(agent.name), done)

    @work(group="actions")
    async def _probe(self, agent: AgentState, request: ProbeRequest) -> None:
        if self.rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return
        self.notify(f"Probing {request.host}:{request.port} from {agent.name}…", timeout=3)
        try:
            result = await self.rest.probe(agent.id, request)
        except ApiError as exc:
            self._refused("Probe", exc)
            return
        self.push_screen(ProbeResultModal(agent.name, result))

    def action_logs(self) -> None:
        agent = self._require("logs")
        if agent is None:
            return

        def done(lines: int | None) -> None:
            if lines is not None:
                self._logs(agent, lines)

        self.push_screen(LogsModal(agent.name, str(self.logs_dir)), done)

    @work(group="actions")
    async def _logs(self, agent: AgentState, lines: int) -> None:
        if self.rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return
        self.notify(f"Fetching {lines} log lines from {agent.name}…", timeout=3)
        try:
            text = await self.rest.logs(agent.id, lines)
        except ApiError as exc:
            self._refused("Logs", exc)
            return
        path = self.save_logs(agent.name, text)
        self.notify(f"Saved to {path}", title=f"Logs of {agent.name}", timeout=8)
        self.push_screen(LogViewer(agent.name, path))

    def save_logs(self, agent_name: str, text: str) -> Path:
        """Write fetched logs to a new file (0600) and return its path."""
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", agent_name) or "agent"
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = self.logs_dir / f"{safe}-{stamp}.log"
        n = 1
        while path.exists():
            n += 1
            path = self.logs_dir / f"{safe}-{stamp}-{n}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        return path

    def action_pin(self) -> None:
        agent = self._require("pin")
        if agent is None:
            return

        def done(request: PinRequest | None) -> None:
            if request is not None:
                self._pin(agent, request)

        self.push_screen(
            PinModal(agent.name, agent.pool, agent.pinned_version or agent.version), done
        )

    @work(group="actions")
    async def _pin(self, agent: AgentState, request: PinRequest) -> None:
        if self.rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return
        try:
            if request.scope == "pool":
                await self.rest.pin_pool(agent.pool, request.version)
                what = f"pool {agent.pool}"
            else:
                await self.rest.pin_agent(agent.id, request.version)
                what = f"agent {agent.name}"
        except ApiError as exc:
            self._refused("Pin", exc)
            return
        self.notify(f"Pinned {what} to version {request.version}.", title="Pinned")

    def action_revoke(self) -> None:
        agent = self._require("revoke")
        if agent is None:
            return

        def done(confirmed: bool | None) -> None:
            if confirmed:
                self._revoke(agent)

        self.push_screen(RevokeModal(agent.name, agent.id), done)

    @work(group="actions")
    async def _revoke(self, agent: AgentState) -> None:
        if self.rest is None:
            self.notify("Not connected to a control plane.", severity="error")
            return
        try:
            await self.rest.revoke(agent.id)
        except ApiError as exc:
            self._refused("Revoke", exc)
            return
        self.notify(f"Revoked {agent.name}; its channel was closed.", title="Revoked")
