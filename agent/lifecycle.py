"""The agent's own lifecycle: upgrade, rollback, restart and renew commands, the
confirmation of a new version, and the report of each step.

The channel (:class:`agent.channel.Agent`) hands this module four moments:

* each welcome (:meth:`Lifecycle.on_welcome`): keep the release key if none is
  kept, and report the last step in ``state.json`` if the control plane was not
  told yet (a rollback by the supervisor, a failure while disconnected);
* the third heartbeat of a session (:meth:`Lifecycle.healthy`): a version on
  trial confirms itself (:data:`agent.versions.HEALTHY_HEARTBEATS`);
* each command of these four kinds (:meth:`Lifecycle.refusal`, :meth:`Lifecycle.job`):
  answered at once (accepted, ``busy``, or ``failed``), the steps follow as
  ``UpgradeStatus`` frames while the channel is up;
* each answer delivered (:meth:`Lifecycle.delivered`): a rollback or a restart
  restarts the agent once its answer is on the wire.

Steps are written to ``state.json`` (``last``) before they are sent, and marked
reported once sent, so none is lost to a restart or a cut channel.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from websockets.exceptions import ConnectionClosed

from agent.config import AgentConfig
from agent.keys import follow_release_key_isolated
from agent.versions import (
    HEALTHY_HEARTBEATS,
    SUPERVISED_ENV,
    LastStep,
    Versions,
    VersionState,
    confirm,
    interrupted,
    record_step,
    roll_back,
)
from fleet import __version__
from fleet.files import write_public
from fleet.protocol import (
    RELEASE_KEY_PREFIX,
    CommandError,
    CommandRequest,
    KeyEndorsement,
    ProtocolError,
    RenewCommand,
    RestartCommand,
    RollbackCommand,
    UpgradeCommand,
    UpgradeStatus,
    Welcome,
    convert,
    dump,
)

__all__ = ["LIFECYCLE_COMMANDS", "AgentControl", "Lifecycle"]

log = logging.getLogger("agent.lifecycle")

LIFECYCLE_COMMANDS = (UpgradeCommand, RollbackCommand, RestartCommand, RenewCommand)

_PARENT_CHECK_S = 1.0
"""How often a supervised agent checks that its supervisor still lives."""

Send = Callable[[str], Awaitable[None]]
Job = Callable[[], Awaitable[dict[str, Any]]]


class AgentControl(Protocol):
    """What the lifecycle needs of the running agent."""

    server: str
    config: AgentConfig

    def request_restart(self, reason: str) -> None: ...

    def request_stop(self, reason: str = ..., *, goodbye: bool = ...) -> None: ...

    async def renew_now(self) -> float: ...

    def reconnect(self) -> None: ...

    def tls_context(self) -> Any: ...


class Lifecycle:
    """Upgrades, rollbacks, restarts and renewals of one running agent.

    Args:
        agent: the running agent.
        versions: its ``STATE/versions``.
    """

    def __init__(self, agent: AgentControl, versions: Versions) -> None:
        self.agent = agent
        self.versions = versions
        self._send: Send | None = None
        self._upgrading: str | None = None
        """The version being installed, while an upgrade runs."""
        self._task: asyncio.Task[None] | None = None
        self._after_answer: dict[str, Callable[[], None]] = {}
        """What to do once the answer to a request id is sent (restart, reconnect)."""
        self._warned_key: str | None = None
        self._confirmed = False
        self.versions.update(lambda s: interrupted(s, time.time()))

    # ------------------------------------------------------------- channel moments

    async def on_welcome(self, send: Send, welcome: Welcome) -> None:
        """A session began: keep the release key, report the unreported last step."""
        await self._keep_release_key(welcome.release_key, welcome.release_key_chain)
        self._send = send if "upgrade_status" in welcome.accepts else None
        await self._report_last()

    def on_session_end(self) -> None:
        self._send = None

    async def healthy(self) -> None:
        """The session sent :data:`HEALTHY_HEARTBEATS` heartbeats: confirm a trial."""
        if self._confirmed:
            return
        self._confirmed = True
        before = self.versions.read()
        after = await asyncio.to_thread(
            self.versions.update, lambda s: confirm(s, __version__, time.time())
        )
        if after == before:
            return
        if before.trial is not None and after.trial is None:
            log.info(
                "version %s confirmed after %d heartbeats; %s kept for a rollback",
                __version__,
                HEALTHY_HEARTBEATS,
                after.previous or "the base install",
            )
            removed = await asyncio.to_thread(self.versions.prune, after)
            if removed:
                log.info("removed unused versions: %s", ", ".join(removed))
        await self._report_last()

    def delivered(self, request_id: str) -> None:
        """The answer to ``request_id`` was sent: restart or reconnect now if it asked."""
        then = self._after_answer.pop(request_id, None)
        if then is not None:
            then()

    async def watch_parent(self) -> None:
        """Stop when the supervisor that started this agent is gone (no orphan); only
        under a supervisor (``FLEET_AGENT_SUPERVISED=1``)."""
        if os.environ.get(SUPERVISED_ENV) != "1":
            return
        parent = os.getppid()
        while True:
            await asyncio.sleep(_PARENT_CHECK_S)
            if os.getppid() != parent:
                break
        log.error("the supervisor (pid %d) is gone; stopping", parent)
        self.agent.request_stop(f"the supervisor (pid {parent}) is gone", goodbye=False)

    # ------------------------------------------------------------- commands

    def refusal(self, spec: object, depth: int) -> CommandError | None:
        """Why a command of these kinds is refused at once, given ``depth`` commands
        pending; None to run it."""
        if isinstance(spec, UpgradeCommand | RollbackCommand) and self._upgrading:
            return CommandError(
                code="busy", message=f"an upgrade to {self._upgrading} is in progress"
            )
        if isinstance(spec, UpgradeCommand):
            limit = self.agent.config.upgrade_busy_queue
            if depth > limit:
                return CommandError(
                    code="busy",
                    message=f"{depth} commands pending on the agent, over upgrade_busy_queue "
                    f"({limit}); try again when it is quieter",
                )
            return self._upgrade_refusal(spec)
        if isinstance(spec, RollbackCommand) and self.versions.read().active is None:
            return CommandError(
                code="failed",
                message=f"this agent runs the version it was installed with ({__version__}); "
                "there is nothing to roll back to",
            )
        return None

    def _upgrade_refusal(self, spec: UpgradeCommand) -> CommandError | None:
        if spec.version == __version__:
            return CommandError(code="failed", message=f"this agent runs {__version__} already")
        driver = self.agent.config.upgrade_driver
        if driver == "release" and not self.versions.release_key_file.is_file():
            return CommandError(
                code="failed",
                message=f"this agent keeps no release key ({self.versions.release_key_file}) "
                "to verify a release with: it was enrolled before releases were signed and "
                "has not met a control plane that sends one; enroll it again",
            )
        return None

    def job(self, req: CommandRequest) -> Job:
        """The work-queue job answering ``req`` (one of :data:`LIFECYCLE_COMMANDS`)."""
        spec = req.command
        if isinstance(spec, UpgradeCommand):
            return lambda: self._start_upgrade(spec)
        if isinstance(spec, RollbackCommand):
            return lambda: self._rollback(req.request_id, spec.reason)
        if isinstance(spec, RestartCommand):
            return lambda: self._restart(req.request_id, spec.reason)
        return lambda: self._renew(req.request_id)

    async def _start_upgrade(self, spec: UpgradeCommand) -> dict[str, Any]:
        driver = self.agent.config.upgrade_driver
        self._upgrading = spec.version
        self._task = asyncio.create_task(self._upgrade(spec, driver), name="agent-upgrade")
        detail = f"upgrading {__version__} to {spec.version}"
        if driver == "command":
            detail += f" with {self.agent.config.upgrade_command[0]}"
        return {"kind": "upgrade", "version": spec.version, "driver": driver, "detail": detail}

    async def _upgrade(self, spec: UpgradeCommand, driver: str) -> None:
        # Imported on the first upgrade only: the idle agent never holds http.client,
        # zipfile and the download code in memory.
        from agent.upgrader import Fetcher, UpgradeFailed, install_release, run_command

        version = spec.version

        async def report(step: str, detail: str) -> None:
            log.info("upgrade to %s: %s (%s)", version, step, detail)
            await self._step(version, step, detail)

        try:
            if driver == "command":
                config = self.agent.config
                await run_command(
                    list(config.upgrade_command), version, config.upgrade_command_timeout_s, report
                )
                await asyncio.to_thread(self.versions.update, lambda s: _after_command(s, version))
            else:
                fetcher = Fetcher(
                    self.agent.server, self.agent.tls_context, self.agent.config.proxy
                )
                await install_release(spec, self.versions, fetcher, report)
            await self._report_last()
            self.agent.request_restart(f"restarting into {version} (upgrade)")
        except UpgradeFailed as exc:
            log.error("upgrade to %s failed: %s", version, exc)
            await self._step(version, "failed", str(exc))
        except Exception as exc:  # a bug must be reported, not kill the agent
            log.exception("upgrade to %s failed", version)
            await self._step(version, "failed", f"{exc.__class__.__name__}: {exc}")
        finally:
            self._upgrading = None

    async def _rollback(self, request_id: str, reason: str) -> dict[str, Any]:
        state = await asyncio.to_thread(
            self.versions.update, lambda s: roll_back(s, reason, time.time())
        )
        back = state.active or "the base install"
        log.warning("rolling back from %s to %s: %s", __version__, back, reason)
        why = f"rolling back to {back}: {reason}"
        self._after_answer[request_id] = lambda: self.agent.request_restart(why)
        return {"kind": "rollback", "version": state.active, "detail": f"restarting into {back}"}

    async def _restart(self, request_id: str, reason: str) -> dict[str, Any]:
        log.warning("restarting on request: %s", reason)
        why = f"restarting on request: {reason}"
        self._after_answer[request_id] = lambda: self.agent.request_restart(why)
        return {"kind": "restart", "detail": f"restarting {__version__}"}

    async def _renew(self, request_id: str) -> dict[str, Any]:
        not_after = await self.agent.renew_now()
        # The new key is used from the next connection: reconnect once answered.
        self._after_answer[request_id] = self.agent.reconnect
        return {
            "kind": "renew",
            "not_after": not_after,
            "detail": "certificate renewed with a new key; reconnecting with it",
        }

    # ------------------------------------------------------------- steps

    async def _step(self, version: str, step: str, detail: str) -> None:
        await asyncio.to_thread(
            self.versions.update,
            lambda s: record_step(s, version, step, time.time(), detail, __version__),
        )
        await self._report_last()

    async def _report_last(self) -> None:
        """Send ``last`` if the control plane listens and was not told yet."""
        send = self._send
        last = self.versions.read().last
        if send is None or last is None or last.reported:
            return
        # A rollback is reported by the version it went back to: this one.
        from_version = last.from_version or __version__
        try:
            status = convert(
                {
                    "type": "upgrade_status",
                    "version": last.version,
                    "step": last.step,
                    "detail": last.detail,
                    "from_version": from_version,
                    "at": last.at,
                },
                UpgradeStatus,
            )
        except ProtocolError as exc:  # never sendable: do not try after every welcome
            log.error("cannot report the last upgrade step: %s", exc)
            await asyncio.to_thread(self.versions.update, lambda s: _reported(s, last))
            return
        try:
            await send(dump(status))
        except ConnectionClosed:
            return  # reported after the next welcome
        # Marked at once, not in a thread: the session ending (a cancellation) must not
        # come between the send and the mark, or the step would be sent twice.
        self.versions.update(lambda s: _reported(s, last))

    async def _follows(self, kept: str, chain: Sequence[KeyEndorsement]) -> str | None:
        """The key ``kept`` leads to through ``chain``; None when that cannot be told."""
        try:
            return await follow_release_key_isolated(kept, chain)
        except RuntimeError as exc:
            log.error("checking the release key's rotation failed: %s", exc)
            return None

    async def _keep_release_key(
        self, key: str | None, chain: Sequence[KeyEndorsement] = ()
    ) -> None:
        if key is None or not key.startswith(RELEASE_KEY_PREFIX):
            return
        path = self.versions.release_key_file
        try:
            kept = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            write_public(path, (key + "\n").encode("ascii"))
            log.info("kept the release key the control plane sent: %s", key)
            return
        except (OSError, UnicodeDecodeError):
            return
        if kept != key and chain and await self._follows(kept, chain) == key:
            # Rotated on the control plane: each key since ours endorsed the next.
            write_public(path, (key + "\n").encode("ascii"))
            log.warning(
                "the release key was rotated: this agent now keeps %s (endorsed, through "
                "the control plane's chain, by the key it kept: %s)",
                key,
                kept,
            )
            return
        if kept != key and key != self._warned_key:
            self._warned_key = key
            log.warning(
                "the control plane sends the release key %s, but this agent keeps %s "
                "(from enrollment, %s): releases it signs will be refused; if the key was "
                "changed on purpose, enroll this agent again",
                key,
                kept,
                path,
            )


def _after_command(state: VersionState, version: str) -> VersionState:
    """The ``command`` driver upgraded the base install: run it, and say so."""
    step = LastStep(version, "restarting", time.time(), from_version=__version__)
    return VersionState(active=None, previous=state.active, trial=None, last=step)


def _reported(state: VersionState, sent: LastStep) -> VersionState:
    if state.last != sent:
        return state  # a newer step came meanwhile: it is still to be sent
    return state._replace(last=sent._replace(reported=True))
