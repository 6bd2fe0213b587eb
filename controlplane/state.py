"""The control plane's services: operators and roles, enrollment, revocation, commands.

The REST routers and the channel handler are thin; the rules live here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.protocol import (
    AlertInfo,
    CloseCode,
    Command,
    CommandEvent,
    CommandFinished,
    ConfigResult,
    LogsResult,
    Presence,
    ProbeResult,
    RenewResult,
    RollbackResult,
    UpgradeResult,
)
from fleet.units import NAME_MAX

from .channel import AgentChannel, clock_sweeper
from .config import Settings
from .errors import Conflict, NotFound, PolicyDenied, TooManyRequests, Unauthenticated
from .fleet import Fleet
from .heap import trim_periodically
from .instruments import Instruments
from .limits import FailureCounter, PendingConnections, RefusalAudit
from .live import LiveAgent
from .notify.notifier import Notifier
from .notify.targets import target_labels
from .operators import ROLES, Operators, Principal, Role
from .pki import CertificateAuthority
from .reconciler import Reconciler
from .rekeys import Rekeys
from .release_key import ReleaseKey
from .releases import KIND as RELEASE_KIND
from .releases import ReleaseBook
from .remediation import Remediations
from .remediation_policies import KIND as POLICY_KIND
from .rollout_plan import KIND as ROLLOUT_KIND
from .rollouts import Rollouts
from .scrape_token import ScrapeToken
from .secrets import ENROLL_PREFIX, hash_token, looks_like, new_token
from .store.base import AgentRecord, Store, TokenRecord
from .upgrades import Upgrades
from .window_book import KIND as WINDOWS_KIND
from .window_book import WindowBook

if TYPE_CHECKING:
    from .replicas import Replicas

__all__ = ["ROLES", "ControlPlane", "Principal", "Role"]  # the last three from .operators

log = logging.getLogger("controlplane")


@dataclass(frozen=True)
class EnrollResult:
    agent: AgentRecord
    certificate_pem: str


class ControlPlane:
    def __init__(
        self, data_dir: Path, store: Store, settings: Settings, ca: CertificateAuthority
    ) -> None:
        self.data_dir = data_dir
        self.store = store
        self.settings = settings
        self.ca = ca
        self.instruments = Instruments()
        """Command and flush timings for ``/metrics`` (:mod:`controlplane.metrics`)."""
        self.fleet = Fleet(settings, store, self.instruments)
        self.channels: dict[str, AgentChannel] = {}
        self.rekeys = Rekeys(store, self.fleet.audit)
        """Certificates renewed for a new key, superseding the older ones at first use."""
        self.operators = Operators(store, self.fleet.audit, data_dir / "admin.token")
        self.endpoint = ""
        self.channel_port: int | None = None
        """The agents' own listener's port (None: agents use the API port's route)."""
        self.server_tls = "fleet-ca"
        """Who signed the certificate the server presents: ``fleet-ca`` (its own CA,
        which the pin covers), ``external`` (``--tls-cert``: agents verify it with
        ``--ca-file`` or the system store) or ``off`` (``--no-tls``)."""
        self.stopping = False
        """Set when :meth:`stop` begins: a replica's agents are handed over, not away."""
        self._timers: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._trimmer: asyncio.Task[None] | None = None
        self._last_used: asyncio.Task[None] | None = None
        self._alert_writer: asyncio.Task[None] | None = None
        self._rollouts: asyncio.Task[None] | None = None
        self._reconciler: asyncio.Task[None] | None = None
        self._remediation: asyncio.Task[None] | None = None
        window = settings.auth_failure_window_s
        self.refusals = RefusalAudit(self.fleet.audit, window)
        """Refusals anyone could repeat: one audit row per source and window."""
        self.auth_failures = FailureCounter(settings.auth_failures, window)
        """Failed enrollments and authentications per source address."""
        self.pending = PendingConnections(settings.pending_connections)
        """Websockets per source address that have not authenticated yet."""
        self.unread = PendingConnections(settings.pending_connections)
        """Connections per source address, on either port, that have not sent a whole
        request's headers yet (the websocket upgrade's, on the agents' port)."""
        self._refusals: asyncio.Task[None] | None = None
        self.notifier = Notifier(
            settings,
            partial(target_labels, self.fleet),
            hold=self.fleet.suppression.hold,
            ack=self._acked_by,
            base_url=lambda: self.endpoint,
        )
        """Delivers alert changes to the configured receivers; silences and maintenance
        windows (``hold``) hold notifications back, acknowledgements (``ack``) stop
        only the webhook and Slack repeats."""
        self.fleet.alert_listeners.append(self._notify)
        self.replicas: Replicas | None = None
        """The other control planes on the same PostgreSQL, if any (None on SQLite)."""
        self.releases = ReleaseBook(
            store, data_dir / "releases", ReleaseKey.load_or_create(ca.directory)
        )
        """Agent releases, signed with the release key kept beside the CA."""
        self.upgrades = Upgrades(self, self.releases)
        """Sends upgrades and rollbacks to agents, follows the steps they report."""
        self.windows = WindowBook(store, self.fleet.audit)
        """Each pool's maintenance and freeze windows."""
        self.rollouts = Rollouts(self)
        """Rollouts of a version to a pool: canaries, waves, the health gate."""
        self.reconciler = Reconciler(self)
        """Upgrades agents that run another version than their pin."""
        self.remediation = Remediations(self)
        """Each pool's remediation policy, its checks, actions and approval inbox."""
        self.scrape_token = (
            ScrapeToken(settings.metrics_token_file) if settings.metrics_token_file else None
        )
        """The scrape token that opens ``GET /metrics`` (besides any API token)."""

    # -------------------------------------------------------------- lifecycle

    def _acked_by(self, alert: AlertInfo) -> str | None:
        """Who acknowledged ``alert`` (still in force), for the notifier's repeats."""
        ack = self.fleet.suppression.ack_of(alert.id, time.time())
        return ack.acked_by if ack is not None else None

    def _notify(self, alert: AlertInfo, raised: bool) -> None:
        # Notifications go out once, from the leading replica (every one, when alone).
        if self.fleet.leader:
            self.notifier.alert_changed(alert, raised)

    def _start_leading(self) -> None:
        """Start the fleet-wide timers (at start, or when this replica comes to lead)."""
        if self._rollouts is None or self._rollouts.done():
            self._rollouts = asyncio.create_task(self.rollouts.run())
        if self._reconciler is None or self._reconciler.done():
            self._reconciler = asyncio.create_task(self.reconciler.run())
        if self._remediation is None or self._remediation.done():
            self._remediation = asyncio.create_task(self.remediation.run())

    def _stop_leading(self) -> None:
        for task in (self._rollouts, self._reconciler, self._remediation):
            if task is not None:
                task.cancel()

    async def reload_documents(self, kind: str) -> None:
        """Another replica changed documents of ``kind`` (one of
        :data:`~controlplane.replicas.DOCUMENT_KINDS`): read them again."""
        if kind == WINDOWS_KIND:
            await self.windows.load()
        elif kind == ROLLOUT_KIND:
            await self.rollouts.load()
        elif kind == RELEASE_KIND:
            await self.releases.load_documents()
        elif kind == POLICY_KIND:
            await self.remediation.policies.load()

    async def start(self) -> None:
        await self.store.open()
        await self.store.claim()
        if getattr(self.store, "shared", False):
            # Imported here: asyncpg is loaded only by the control planes that use it.
            from .replicas import Replicas
            from .store.postgres import PostgresStore

            assert isinstance(self.store, PostgresStore)
            self.replicas = Replicas(self, self.store)
            self.replicas.on_lead = self._start_leading
            self.replicas.on_step_down = self._stop_leading
            await self.replicas.prepare()
        await self.fleet.load()
        await self.releases.load()
        await self.windows.load()
        await self.rollouts.load()
        await self.rekeys.load()
        await self.remediation.load()
        await self.operators.load()
        self.notifier.load(self.fleet.published.values())
        await self.notifier.start()
        self._last_used = asyncio.create_task(
            self.operators.run_flush(self.settings.flush_interval_s)
        )
        self._timers = asyncio.create_task(self.fleet.run_timers())
        self._alert_writer = asyncio.create_task(self.fleet.run_alert_writer())
        self._sweeper = asyncio.create_task(clock_sweeper(self))
        self._trimmer = asyncio.create_task(trim_periodically(self.settings.heap_trim_s))
        self._refusals = asyncio.create_task(self.refusals.run())
        if self.replicas is not None:
            await self.replicas.start()  # leads at once when nobody does
        else:
            self._start_leading()

    async def stop(self) -> None:
        self.stopping = True
        for task in (
            self._timers,
            self._alert_writer,
            self._sweeper,
            self._trimmer,
            self._last_used,
            self._refusals,
            self._rollouts,
            self._reconciler,
            self._remediation,
        ):
            if task is not None:
                task.cancel()
        self.reconciler.stop()
        for channel in list(self.channels.values()):
            await channel.close(CloseCode.GOING_AWAY, "control plane is shutting down")
        try:
            await self.rollouts.stop()
            await self.refusals.flush()
            await self.fleet.flush()
            await self.operators.flush()
            if self.replicas is not None:
                await self.replicas.stop()
        finally:
            await self.notifier.stop()
            await self.store.close()

    # ------------------------------------------------------------ operators

    def authenticate(self, authorization: str | None) -> Principal:
        """The caller of a request or stream (see :meth:`Operators.authenticate`)."""
        return self.operators.authenticate(authorization)

    # ------------------------------------------------------------ limits

    def auth_failed(self, address: str, action: str, detail: str) -> float | None:
        """Count a failed authentication from ``address`` and audit it (per window).

        Returns the seconds ``address`` must now wait when it is over its limit
        (answer 429 or close 4010 rather than 401), else None. A valid API
        token or agent certificate always passes: someone failing on the same
        address (a shared NAT) cannot lock its owner out, and guessing a
        256-bit token is hopeless anyway; the limit keeps failures cheap and
        the audit small.
        """
        self.auth_failures.fail(address)
        self.refusals.note("anonymous", action, address, detail)
        return self.auth_failures.retry_after(address)

    def auth_retry_after(self, address: str, action: str) -> float | None:
        """Seconds ``address`` must wait after too many failures (audited), or None."""
        wait = self.auth_failures.retry_after(address)
        if wait is not None:
            self.refusals.note(
                "anonymous",
                action,
                address,
                f"over {self.settings.auth_failures} failed attempts in "
                f"{self.settings.auth_failure_window_s:.0f} s",
            )
        return wait

    def check_auth_rate(self, address: str, action: str) -> None:
        """Raise :class:`TooManyRequests` while ``address`` is over its failures
        (enrollment checks before it reads the token: every attempt is refused)."""
        wait = self.auth_retry_after(address, action)
        if wait is not None:
            raise TooManyRequests(
                f"too many failed attempts from {address}: wait {wait:.0f} s, then check "
                "the token you are using",
                wait,
            )

    # ------------------------------------------------------------ enrollment

    async def create_token(
        self, actor: Principal, pool: str, ttl_s: float, uses: int, labels: dict[str, str]
    ) -> tuple[str, TokenRecord]:
        actor.require("admin")
        token = new_token(ENROLL_PREFIX)
        now = time.time()
        rec = TokenRecord(
            id=uuid.uuid4().hex[:12],
            token_hash=hash_token(token),
            pool=pool,
            labels=labels,
            created_at=now,
            expires_at=now + ttl_s,
            uses_total=uses,
            uses_left=uses,
            created_by=actor.name,
        )
        await self.store.add_token(rec)
        await self.fleet.audit(
            actor.name, "token.create", f"pool:{pool}", "ok", f"id {rec.id}, uses {uses}"
        )
        return token, rec

    async def revoke_token(self, actor: Principal, token_id: str) -> TokenRecord:
        """Withdraw an enrollment token: it is refused at enrollment from now on."""
        actor.require("admin")
        rec = next((t for t in await self.store.list_tokens() if t.id == token_id), None)
        if rec is None:
            await self.fleet.audit(actor.name, "token.revoke", token_id, "refused", "unknown")
            raise NotFound(
                f"no enrollment token {token_id!r}; list them with GET /v1/tokens "
                "(fleet tokens list)"
            )
        if rec.revoked_at is None:
            rec.revoked_at = time.time()
            await self.store.revoke_token(rec.id, rec.revoked_at)
            await self.fleet.audit(actor.name, "token.revoke", rec.id, "ok", f"pool {rec.pool}")
        return rec

    async def _refuse(self, client: str, target: str, why: str) -> Unauthenticated:
        # Anyone can repeat a bad enrollment: counted per source and window.
        self.auth_failures.fail(client)
        self.refusals.note("anonymous", "enroll", target, why)
        return Unauthenticated(why)

    async def enroll(self, token: str, csr_pem: str, name: str | None, client: str) -> EnrollResult:
        self.check_auth_rate(client, "enroll")
        if not looks_like(token, ENROLL_PREFIX):
            raise await self._refuse(
                client,
                client,
                "malformed enrollment token (they start with 'flte_' and have 45 characters); "
                "copy it again from 'fleet token create'",
            )
        rec = await self.store.get_token(hash_token(token))
        if rec is None:
            raise await self._refuse(
                client, client, "unknown enrollment token; ask an admin for a new one"
            )
        if rec.revoked_at is not None:
            raise await self._refuse(
                client,
                f"token:{rec.id}",
                f"enrollment token {rec.id} was revoked "
                f"{time.time() - rec.revoked_at:.0f} s ago; ask an admin for a new one",
            )
        if rec.expires_at <= time.time():
            raise await self._refuse(
                client,
                f"token:{rec.id}",
                "enrollment token expired "
                f"{time.time() - rec.expires_at:.0f} s ago; ask an admin for a new one",
            )
        if rec.uses_left <= 0:
            raise await self._refuse(
                client,
                f"token:{rec.id}",
                f"enrollment token was already used ({rec.uses_total} of {rec.uses_total} uses); "
                "ask an admin for a new one",
            )
        agent_id = "ag_" + uuid.uuid4().hex[:16]
        # Sign before spending the token: a bad CSR must not burn a use.
        issued = self.ca.sign_csr(
            csr_pem, agent_id, dt.timedelta(seconds=self.settings.cert_lifetime_s)
        )
        if not await self.store.use_token(rec.id):
            raise await self._refuse(
                client,
                f"token:{rec.id}",
                "enrollment token was already used; ask an admin for a new one",
            )
        name = (name or "").strip() or agent_id
        if name in self.fleet.by_name:
            # Still a valid name: at most NAME_MAX characters with the suffix.
            name = f"{name[: NAME_MAX - 7]}-{agent_id[3:9]}"
        record = AgentRecord(
            id=agent_id,
            name=name,
            pool=rec.pool,
            labels=rec.labels,
            enrolled_at=time.time(),
            cert_serial=issued.serial,
            cert_not_after=issued.not_after,
        )
        await self.store.add_agent(record)
        await self.store.add_certificate(issued.serial, agent_id, issued.not_after)
        self.fleet.add_agent(LiveAgent(record, self.settings.history_len))
        await self.fleet.audit(
            f"token:{rec.id}", "enroll", agent_id, "ok", f"name {name}, pool {rec.pool}"
        )
        return EnrollResult(record, issued.pem)

    # ------------------------------------------------------------- agents

    def agent(self, agent_id: str) -> LiveAgent:
        agent = self.fleet.agents.get(agent_id) or self.fleet.by_name.get(agent_id)
        if agent is None:
            raise NotFound(f"no agent {agent_id!r}; list agents with GET /v1/agents")
        return agent

    async def revoke(self, actor: Principal, agent_id: str) -> LiveAgent:
        actor.require("admin")
        agent = self.agent(agent_id)
        await self.store.revoke_agent(agent.id, time.time())
        await self.revoked_here(agent)
        await self.fleet.audit(actor.name, "agent.revoke", agent.id, "ok", agent.record.name)
        return agent

    async def revoked_here(self, agent: LiveAgent) -> None:
        """The agent was revoked (here, or on another replica): refuse its certificate,
        close its channel if this replica holds it, show it revoked."""
        agent.record.revoked = True
        self.fleet.revoked_serials.add(agent.record.cert_serial)
        channel = agent.channel
        agent.channel = None
        self.channels.pop(agent.id, None)
        agent.remote = None
        agent.set_state(Presence.REVOKED)
        self.fleet.refresh(agent)
        if channel is not None:
            await channel.close(
                CloseCode.REVOKED, "this agent was revoked by an administrator; stop and re-enroll"
            )

    def reachable(self, agent: LiveAgent) -> bool:
        """Whether a command can reach the agent now: its channel is here, or on another
        replica that is alive (then it goes through that replica)."""
        if agent.channel is not None:
            return True
        return self.replicas is not None and self.replicas.holds_elsewhere(agent)

    async def request(
        self, agent: LiveAgent, command: Command, timeout_s: float
    ) -> CommandFinished:
        """Send ``command`` to the agent and wait for its result: on its channel here,
        or through the replica holding it. Raises Conflict when it is not reachable,
        CommandTimeout when it did not answer."""
        channel = agent.channel
        if channel is not None:
            return await channel.request(command, timeout_s)
        if self.replicas is not None and self.replicas.holds_elsewhere(agent):
            return await self.replicas.call(agent, command, timeout_s)
        raise Conflict(
            f"agent {agent.record.name} is {agent.state.value}, not connected; "
            "try another agent of its pool, or wait until it reconnects"
        )

    async def command(
        self, actor: Principal, agent: LiveAgent, command: Command, action: str, target: str
    ) -> CommandFinished:
        """Run a command on an agent: role, online check, audit, event."""
        actor.require("operator")
        if not self.reachable(agent):
            await self.fleet.audit(actor.name, action, target, "refused", "agent offline")
            raise Conflict(
                f"agent {agent.record.name} is {agent.state.value}, not connected; "
                "try another agent of its pool, or wait until it reconnects"
            )
        timeout = getattr(command, "timeout_s", self.settings.command_timeout_s)
        timeout = max(timeout + 3.0, self.settings.command_timeout_s)
        started = time.perf_counter()
        try:
            result = await self.request(agent, command, timeout)
        except Exception as exc:
            self.instruments.command(action, "error", time.perf_counter() - started)
            message = getattr(exc, "message", str(exc))
            await self.fleet.audit(actor.name, action, target, "error", message)
            self._command_event(agent, action, actor.name, False, message)
            raise
        return await self._finished(actor, agent, result, action, target, started)

    async def _finished(
        self,
        actor: Principal,
        agent: LiveAgent,
        result: CommandFinished,
        action: str,
        target: str,
        started: float,
    ) -> CommandFinished:
        ok = result.error is None and (
            getattr(result.result, "ok", True) if result.result is not None else False
        )
        self.instruments.command(action, "ok" if ok else "failed", time.perf_counter() - started)
        summary = _summarise(result)
        await self.fleet.audit(actor.name, action, target, "ok" if ok else "failed", summary)
        self._command_event(agent, action, actor.name, ok, summary)
        return result

    def _command_event(
        self, agent: LiveAgent, kind: str, actor: str, ok: bool, summary: str
    ) -> None:
        event_id = uuid.uuid4().hex[:12]
        self.fleet.bus.publish(
            lambda seq: CommandEvent(
                seq=seq,
                agent_id=agent.id,
                request_id=event_id,
                kind=kind,
                actor=actor,
                ok=ok,
                summary=summary,
                at=time.time(),
            )
        )

    def check_policy(self, agent: LiveAgent, host: str, port: int) -> str | None:
        policy = self.fleet.pools.get(agent.record.pool)
        if policy is None:
            return (
                f"pool {agent.record.pool!r} has no probe policy, so no probe is allowed; "
                f"an admin sets one with PUT /v1/pools/{agent.record.pool}/policy"
            )
        return policy.check(host, port)

    async def deny(self, actor: Principal, action: str, target: str, why: str) -> PolicyDenied:
        await self.fleet.audit(actor.name, action, target, "denied", why)
        return PolicyDenied(f"probe denied by policy: {why}")


def _summarise(result: CommandFinished) -> str:
    if result.error is not None:
        return f"{result.error.code}: {result.error.message}"
    r = result.result
    if r is None:
        return "no result"
    if isinstance(r, ProbeResult):
        if r.ok:
            parts = [f"{r.host}:{r.port} ok"]
            if r.connect_ms is not None:
                parts.append(f"connect {r.connect_ms:.1f} ms")
            if r.tls_ms is not None:
                parts.append(f"tls {r.tls_ms:.1f} ms")
            return ", ".join(parts)
        return f"{r.host}:{r.port} failed ({r.failure}): {r.error or ''}".strip()
    if isinstance(r, LogsResult):
        return f"{len(r.lines)} log lines"
    if isinstance(r, ConfigResult):
        return f"config {r.hash}"
    if isinstance(r, UpgradeResult):
        return f"upgrade to {r.version} accepted ({r.driver}) {r.detail}".strip()
    if isinstance(r, RollbackResult):
        return f"rolling back to {r.version or 'the installed version'} {r.detail}".strip()
    if isinstance(r, RenewResult):
        return f"certificate renewed {r.detail}".strip()
    return f"restarting {r.detail}".strip()
