"""Upgrading one agent: send the command, follow the steps it reports.

The rules of *when* (rollouts, pins, remediation) live elsewhere; this module is
the one way they all reach an agent: :meth:`Upgrades.upgrade` and
:meth:`Upgrades.rollback` send the command over the agent's channel (audited, as
every command is), and :meth:`Upgrades.on_status` takes each step the agent
reports (:class:`fleet.protocol.UpgradeStatus`), shows it beside the agent and
tells the listeners (a rollout waits for ``running``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fleet.protocol import (
    CommandFinished,
    RenewCommand,
    RestartCommand,
    RollbackCommand,
    UpgradeCommand,
    UpgradeInfo,
    UpgradeStatus,
)

from .errors import FleetError
from .live import LiveAgent
from .operators import Principal
from .releases import ReleaseBook

if TYPE_CHECKING:
    from .state import ControlPlane

__all__ = ["DONE_STEPS", "Upgrades"]

log = logging.getLogger("controlplane.upgrades")

DONE_STEPS = frozenset({"running", "rolled_back", "failed", "refused"})
"""Steps that end an upgrade; the others are on the way."""

_AUDITED = DONE_STEPS | {"restarting"}

Listener = Callable[[LiveAgent, UpgradeInfo], None]


class Upgrades:
    """Sends upgrades and rollbacks to agents and follows their steps.

    Args:
        cp: the control plane (commands, audit, the fleet's event bus).
        releases: the stored releases.
    """

    def __init__(self, cp: ControlPlane, releases: ReleaseBook) -> None:
        self.cp = cp
        self.releases = releases
        self.listeners: list[Listener] = []
        """Called with each step an agent reports (or the control plane records);
        they must not block or await."""

    # ------------------------------------------------------------- commands

    async def upgrade(
        self, actor: Principal, agent: LiveAgent, version: str, deadline_s: float | None = None
    ) -> CommandFinished:
        """Ask ``agent`` to upgrade to ``version``; its answer says whether it accepted.

        Raises:
            NotFound: no release of ``version`` is stored.
            Conflict: the agent is not connected.
        """
        release = self.releases.get(version)
        settings = self.cp.settings
        command = UpgradeCommand(
            version=release.version,
            sha256=release.sha256,
            size=release.size,
            signature=release.signature,
            download_path=release.download_path,
            token=self.releases.mint_token(agent.id, version, settings.upgrade_token_ttl_s),
            deadline_s=deadline_s or settings.upgrade_deadline_s,
        )
        self.record(
            agent,
            UpgradeInfo(
                version=version, step="requested", at=time.time(), from_version=agent.version
            ),
        )
        try:
            result = await self.cp.command(actor, agent, command, "agent.upgrade", agent.id)
        except FleetError as exc:
            # Offline, or no answer: shown as refused, not left at "requested".
            self._refused(agent, version, exc.message)
            raise
        if result.error is not None:
            self._refused(agent, version, f"{result.error.code}: {result.error.message}")
        return result

    def _refused(self, agent: LiveAgent, version: str, detail: str) -> None:
        self.record(
            agent,
            UpgradeInfo(
                version=version,
                step="refused",
                detail=detail[:300],
                from_version=agent.version,
                at=time.time(),
            ),
        )

    async def rollback(self, actor: Principal, agent: LiveAgent, reason: str) -> CommandFinished:
        """Ask ``agent`` to switch back to the version it ran before its last upgrade."""
        return await self.cp.command(
            actor, agent, RollbackCommand(reason=reason[:300]), "agent.rollback", agent.id
        )

    async def restart(self, actor: Principal, agent: LiveAgent, reason: str) -> CommandFinished:
        """Ask ``agent`` to restart its process."""
        return await self.cp.command(
            actor, agent, RestartCommand(reason=reason[:300]), "agent.restart", agent.id
        )

    async def renew(self, actor: Principal, agent: LiveAgent, reason: str) -> CommandFinished:
        """Ask ``agent`` to renew its certificate now."""
        return await self.cp.command(
            actor, agent, RenewCommand(reason=reason[:300]), "agent.renew", agent.id
        )

    # ------------------------------------------------------------- steps

    def on_status(self, agent: LiveAgent, msg: UpgradeStatus) -> None:
        """A step the agent reported on its channel."""
        info = UpgradeInfo(
            version=msg.version,
            step=msg.step,
            detail=msg.detail,
            from_version=msg.from_version,
            at=msg.at,
        )
        self.record(agent, info)
        if msg.step in _AUDITED:
            detail = f"{msg.step} {msg.version}" + (f": {msg.detail}" if msg.detail else "")
            result = "ok" if msg.step in ("running", "restarting") else "failed"
            self.cp.fleet.audit_later(agent.id, "agent.upgrade_step", agent.id, result, detail)

    def record(self, agent: LiveAgent, info: UpgradeInfo) -> None:
        """Show ``info`` beside the agent (kept across restarts) and tell the listeners."""
        agent.upgrade = info
        agent.dirty = True
        self.cp.fleet.refresh(agent)
        for listener in self.listeners:
            try:
                listener(agent, info)
            except Exception:
                log.exception("upgrade listener failed on %s", agent.id)
