"""``fleet agent run``: one outbound channel to the control plane, kept open.

The agent dials ``wss://SERVER/v1/agent/connect``, proves it holds its key by
signing the server's nonce, then heartbeats, answers time probes at once, runs
commands on its work queue and renews its certificate at two thirds of its life,
each time with a new key; once the new key and certificate are installed it
closes the channel and reconnects with them at once, which makes the control
plane refuse the old ones.  On a network error it reconnects after a full-jitter
delay (window 1 s doubling to 60 s).  It stops for good when the control plane
says the agent is revoked (:class:`~agent.errors.Revoked`) or its certificate
expired (:class:`~agent.errors.CertificateExpired`), and on SIGTERM/SIGINT/SIGHUP.
Upgrades, rollbacks, restarts and renewals on request are :mod:`agent.lifecycle`'s;
a restart ends :meth:`Agent.run` with :attr:`Agent.restarting` set (exit 75).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from collections.abc import Coroutine
from datetime import UTC, datetime
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from agent._der import CertInfo, cert_info, csr_public_key, pem_to_der
from agent.backoff import FullJitter
from agent.commands import CommandRunner, describe, summarize
from agent.config import AgentConfig
from agent.disconnects import DisconnectLog, SleepWatch, classify
from agent.errors import CertificateExpired, ChannelClosed, Revoked, StateError
from agent.keys import rekey_isolated, sign_isolated
from agent.lifecycle import LIFECYCLE_COMMANDS, Lifecycle
from agent.link import Link, LinkState
from agent.logs import LogBook
from agent.policy import ProbePolicy
from agent.samples import Sampler
from agent.state import Identity, channel_url, install_renewal
from agent.tls import client_context, describe_trust, explain_isolated, trusted_pems
from agent.versions import HEALTHY_HEARTBEATS, Versions
from agent.workqueue import Outcome, WorkQueue
from fleet import __version__
from fleet.files import write_public
from fleet.protocol import (
    CLOSE_MEANINGS,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Auth,
    CloseCode,
    CommandError,
    CommandFinished,
    CommandRequest,
    Disconnect,
    DisconnectCause,
    Disconnects,
    ErrorMessage,
    Goodbye,
    Heartbeat,
    Hello,
    ProtocolError,
    RenewRequest,
    RenewResponse,
    ServerToAgent,
    TimeProbe,
    TimeReply,
    Welcome,
    command_request_id,
    command_result,
    dump,
    parse_server_message,
)

__all__ = ["Agent"]

log = logging.getLogger("agent.channel")

# websocket pings keep NAT and proxies aware of the connection; an application
# message at least this often keeps load balancers that ignore pings from idling it.
_PING_INTERVAL_S = 20.0
_MAX_SILENCE_S = 30.0
# Long enough to wait out a control plane busy with a reconnect storm: with 10,000
# simulated agents, a 10 s handshake timeout made agents give up on handshakes the
# server was about to finish, back off, and take 175 s to return; at 30 s they were
# all back in 36 s (bench/controlplane_load.py --agents 10000).
_HANDSHAKE_TIMEOUT_S = 30.0
_RENEW_ANSWER_TIMEOUT_S = 60.0
_MIN_RENEW_GAP_S = 30.0
"""Never renew more often than this, even if a short-lived certificate is already due
(across the reconnect that follows each renewal, too)."""
_REKEYED_REASON = "renewed with a new key; reconnecting with it"
"""The reason of the normal close (1000) before the agent reconnects with its new key."""
_STABLE_AFTER_S = 10.0
"""A connection that held this long resets the reconnect window."""

_SLEEP_BLAME_S = 120.0
"""A channel that ends within this long of a detected sleep ended because of it."""

_RATE_LIMITED_ATTEMPT = 5
"""After a rate-limit close the next delay is drawn from a window of at least
2**5 = 32 s (capped by the backoff's cap): never hammer a server that said stop."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Stop(Exception):
    """The agent was asked to stop."""


class _RenewFailed(Exception):
    pass


class _Rekeyed(Exception):
    """A new key and its certificate are installed: reconnect with them now."""


class Agent:
    """The running agent.

    Args:
        identity: the enrolled identity from the state directory.
        config: the effective configuration.
        logbook: the agent's logs, for the ``logs`` command.
        backoff: reconnect delays (a seam for tests).
    """

    def __init__(
        self,
        identity: Identity,
        config: AgentConfig,
        logbook: LogBook,
        *,
        backoff: FullJitter | None = None,
    ) -> None:
        self.identity = identity
        self.config = config
        self.server = (config.server or identity.server).rstrip("/")
        self.link = Link()
        self.backoff = backoff or FullJitter()
        self._last_close: int | None = None
        """The close code of the last session, if the server closed it."""
        self.sampler = Sampler(enabled=config.samples)
        self.runner = CommandRunner(config, ProbePolicy.from_config(config), logbook)
        self.config_hash = config.hash()
        self.cert_pem = ""
        self.cert: CertInfo
        self._read_certificate()
        self.started = time.monotonic()
        self._stop = asyncio.Event()
        self._last_error: ErrorMessage | None = None
        self._renew_waiter: asyncio.Future[RenewResponse] | None = None
        self._last_renewal = -_MIN_RENEW_GAP_S
        """When the last renewal succeeded (monotonic)."""
        self._connected_at: float | None = None
        self._connected_wall: float | None = None
        self.disconnects = DisconnectLog()
        """Why earlier channels ended; reported after each welcome."""
        self.sleep_watch = SleepWatch()
        self._slept: tuple[float, float] | None = None
        """(seconds slept, monotonic time noticed) while connected, not yet recorded."""
        self._tls_issuer: str | None = None
        """Issuer of the certificate the server presented, this session or attempt."""
        self._ended: tuple[DisconnectCause, int | None, str] | None = None
        """How this session's channel closed, classified before it became an error."""
        self.stop_reason = "stopped by request"
        self._goodbye = True
        self.restarting = False
        """:meth:`run` returned to be started again (exit 75): an upgrade, a restart."""
        self._renew_lock = asyncio.Lock()
        self._reconnect = asyncio.Event()
        self._ws: ClientConnection | None = None
        self.lifecycle = Lifecycle(self, Versions(identity.state_dir))

    def request_stop(self, reason: str = "stopped by request", *, goodbye: bool = True) -> None:
        """Ask the agent to close its channel (saying goodbye unless told not to) and
        return from :meth:`run`."""
        self.stop_reason = reason[:200]
        self._goodbye = goodbye
        self._stop.set()

    def request_restart(self, reason: str) -> None:
        """Stop as :meth:`request_stop` does, to be started again (exit 75)."""
        self.restarting = True
        self.request_stop(reason)

    def tls_context(self) -> ssl.SSLContext:
        """The TLS context of the channel (also for release downloads)."""
        return self._ssl_context()

    def _ssl_context(self) -> ssl.SSLContext:
        return client_context(
            self.identity.tls_trust,
            ca_file=self.identity.trust_file,
            extra_ca_file=self.config.extra_ca_file,
        )

    async def _explain_tls(self, exc: ssl.SSLCertVerificationError) -> str:
        """Which TLS check failed, from the certificate the server presents (read again).

        The same analysis as enrollment (:func:`agent.tls.explain_tls_failure`), in a
        child process: one more handshake and one short process per failed attempt.
        """
        # http.client only on this path: the channel itself never needs it.
        from agent.https import ProxyError, Target, peer_certificate

        url = channel_url(self.server, self.identity.channel_port)
        try:
            target = Target.of(url, self.config.proxy)
            async with asyncio.timeout(_HANDSHAKE_TIMEOUT_S):
                leaf = await asyncio.to_thread(peer_certificate, target)
            with contextlib.suppress(ValueError):
                # Recorded with the failure: a new issuer is the mark of SSL inspection.
                self._tls_issuer = cert_info(leaf).issuer[:300] or None
            trust_file, extra = self.identity.trust_file, self.config.extra_ca_file
            return await explain_isolated(
                leaf,
                target.host,
                trusted_pems(trust_file, extra),
                exc,
                trust=describe_trust(self.identity.tls_trust, trust_file, extra),
            )
        except (OSError, ProxyError, TimeoutError):
            return _explain(exc)

    async def run(self, *, handle_signals: bool = True) -> None:
        """Keep the channel open until stopped.

        Args:
            handle_signals: stop on SIGTERM and SIGINT (off when embedded in tests).

        Raises:
            Revoked: the control plane revoked this agent.
            CertificateExpired: the certificate expired; enroll again.
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP) if handle_signals else ():
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop, _SIGNAL_REASONS[sig])
        log.info(
            "agent %s (%s) version %s starting; server %s; certificate valid until %s",
            self.identity.name,
            self.identity.agent_id,
            __version__,
            self.server,
            _iso(self.cert.not_after),
        )
        watch = asyncio.create_task(self.lifecycle.watch_parent(), name="agent-parent-watch")
        try:
            while not self._stop.is_set():
                self.link.to(LinkState.CONNECTING)
                self._connected_at = self._connected_wall = None
                self._last_close = None
                self._tls_issuer = None
                self._ended = None
                self._note_sleep(connected=False)
                try:
                    await self._session_or_stop()
                except (Revoked, CertificateExpired) as exc:
                    log.error("%s", exc)
                    raise
                except _Stop:
                    break
                except _Rekeyed:
                    # On purpose, not a failure: neither recorded nor backed off.
                    log.info("reconnecting at once with the new key")
                    self.backoff.reset()
                    continue
                except ssl.SSLCertVerificationError as exc:
                    log.warning("channel failed: %s", await self._explain_tls(exc))
                    self._record_end(exc)
                except Exception as exc:  # every other failure is retried
                    if isinstance(exc, ChannelClosed):
                        self._last_close = exc.code
                    log.warning("channel failed: %s", _explain(exc))
                    self._record_end(exc)
                if self._stop.is_set():
                    break
                held = time.monotonic() - (self._connected_at or time.monotonic())
                if self._last_close == CloseCode.RATE_LIMITED:
                    self.backoff.attempt = max(self.backoff.attempt, _RATE_LIMITED_ATTEMPT)
                elif held >= _STABLE_AFTER_S:
                    self.backoff.reset()
                delay = self.backoff.next_delay()
                self.link.to(LinkState.BACKING_OFF)
                log.info("reconnecting in %.2f s", delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
        finally:
            watch.cancel()
            if self.link.state is not LinkState.STOPPED:
                self.link.to(LinkState.STOPPED)
            log.info("agent %s", "restarting" if self.restarting else "stopped")

    def _note_sleep(self, *, connected: bool) -> None:
        """Check whether the host slept; while connected, blame the next end on it."""
        slept = self.sleep_watch.check()
        if slept is None:
            return
        log.warning(
            "this host slept for about %.0f s (the wall clock jumped ahead of the monotonic clock)",
            slept,
        )
        if connected:
            self._slept = (slept, time.monotonic())
        else:
            self.disconnects.add(
                Disconnect(
                    cause="sleep",
                    detail=f"the host slept for about {slept:.0f} s while disconnected",
                    ended_at=time.time(),
                    slept_s=slept,
                )
            )

    def _record_end(self, exc: BaseException) -> None:
        """Remember why this session's channel ended (or why the attempt failed)."""
        if self._connected_at is not None:
            self._note_sleep(connected=True)
        cause, code, detail = self._ended or classify(exc)
        now, mono = time.time(), time.monotonic()
        slept_s = None
        if self._slept is not None:
            slept, noticed = self._slept
            self._slept = None
            if mono - noticed <= _SLEEP_BLAME_S:
                cause, slept_s = "sleep", slept
                detail = f"the host slept for about {slept:.0f} s; then {detail}"[:300]
        self.disconnects.add(
            Disconnect(
                cause=cause,
                detail=detail,
                code=code,
                connected_at=self._connected_wall,
                ended_at=now,
                age_s=(
                    round(mono - self._connected_at, 3) if self._connected_at is not None else None
                ),
                slept_s=slept_s,
                tls_issuer=self._tls_issuer,
            )
        )

    async def _session_or_stop(self) -> None:
        """One session; a stop request while connecting abandons it at once.

        Once connected, the session itself closes the channel cleanly on a stop.
        """
        session = asyncio.create_task(self._connect_and_serve())
        stopper = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({session, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not session.done() and self.link.state is not LinkState.CONNECTED:
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)
                raise _Stop
            await session
        finally:
            stopper.cancel()
            if not session.done():
                session.cancel()
                await asyncio.gather(session, return_exceptions=True)

    async def _connect_and_serve(self) -> None:
        url = channel_url(self.server, self.identity.channel_port)
        self._last_error = None
        async with connect(
            url,
            ssl=self._ssl_context(),
            proxy=self.config.proxy or True,
            open_timeout=_HANDSHAKE_TIMEOUT_S,
            ping_interval=_PING_INTERVAL_S,
            ping_timeout=_PING_INTERVAL_S,
            close_timeout=5,
            max_size=MAX_FRAME_BYTES,
            compression=None,
            user_agent_header=f"fleet-agent/{__version__}",
        ) as ws:
            self._tls_issuer = _peer_issuer(ws)
            try:
                welcome = await self._authenticate(ws)
            except ConnectionClosed as exc:
                raise self._closed(exc) from None
            self._connected_at = time.monotonic()
            self._connected_wall = time.time()
            try:
                await self._serve(ws, welcome)
            except ConnectionClosed as exc:
                raise self._closed(exc) from None

    def _closed(self, exc: ConnectionClosed) -> ChannelClosed:
        self._ended = classify(exc)
        code = exc.rcvd.code if exc.rcvd is not None else CloseCode.ABNORMAL
        reason = exc.rcvd.reason if exc.rcvd is not None else ""
        said = self._last_error.message if self._last_error is not None else reason
        if code == CloseCode.REVOKED:
            return Revoked(
                code,
                f"the control plane revoked this agent ({said or 'no reason given'}); "
                "it will not reconnect. To bring this host back, enroll it again with a "
                "new token into a fresh state directory.",
            )
        if code == CloseCode.CERT_EXPIRED:
            return CertificateExpired(
                code,
                f"the agent's certificate expired ({said or 'no reason given'}); "
                "enroll again with a new token (`fleet agent enroll --force ...`).",
            )
        if exc.rcvd is None:
            # No close frame came: nobody closed it, the connection was cut.
            return ChannelClosed(
                code,
                f"the channel was cut without a close ({code}): the network, or a load "
                "balancer, proxy or NAT between here and the control plane",
            )
        meaning = CLOSE_MEANINGS.get(code, "closed")
        detail = f": {said}" if said else ""
        return ChannelClosed(code, f"control plane closed the channel ({code} {meaning}){detail}")

    async def _recv(self, ws: ClientConnection) -> ServerToAgent:
        async with asyncio.timeout(_HANDSHAKE_TIMEOUT_S):
            raw = await ws.recv()
        message = parse_server_message(raw)
        if isinstance(message, ErrorMessage):
            self._last_error = message
            log.error("control plane error %s: %s", message.code, message.message)
        return message

    async def _authenticate(self, ws: ClientConnection) -> Welcome:
        self.link.to(LinkState.AUTHENTICATING)
        hello = await self._recv(ws)
        if not isinstance(hello, Hello):
            raise ProtocolError(f"expected hello, got {type(hello).__name__}")
        if hello.protocol_version != PROTOCOL_VERSION:
            log.warning(
                "control plane speaks protocol %s, this agent %s",
                hello.protocol_version,
                PROTOCOL_VERSION,
            )
        signature = await sign_isolated(self.identity.key_path, hello.nonce)
        await ws.send(
            dump(
                Auth(
                    protocol_version=PROTOCOL_VERSION,
                    agent_id=self.identity.agent_id,
                    certificate_pem=self.cert_pem,
                    signature=signature,
                    version=__version__,
                )
            )
        )
        while True:
            answer = await self._recv(ws)
            if isinstance(answer, Welcome):
                break
            if not isinstance(answer, ErrorMessage):
                raise ProtocolError(f"expected welcome, got {type(answer).__name__}")
        self.link.to(LinkState.CONNECTED)
        log.info(
            "connected to %s as %s; heartbeat every %g s",
            self.server,
            answer.agent_id,
            answer.heartbeat_interval_s,
        )
        if answer.pinned_version and answer.pinned_version != __version__:
            log.warning(
                "version drift: this agent runs %s, its pool is pinned to %s",
                __version__,
                answer.pinned_version,
            )
        return answer

    async def _serve(self, ws: ClientConnection, welcome: Welcome) -> None:
        async def deliver(outcome: Outcome) -> None:
            if outcome.result is not None:
                log.info("command %s done: %s", outcome.request_id, summarize(outcome.result))
                try:
                    result = command_result(outcome.result)
                except ProtocolError as exc:
                    log.error("command %s: %s", outcome.request_id, exc)
                    await ws.send(_command_error(outcome.request_id, "failed", str(exc)))
                    return
                await ws.send(dump(CommandFinished(request_id=outcome.request_id, result=result)))
                self.lifecycle.delivered(outcome.request_id)
            else:
                await ws.send(
                    _command_error(
                        outcome.request_id,
                        outcome.error_code or "failed",
                        outcome.error_message or "",
                    )
                )

        queue = WorkQueue(
            concurrency=self.config.max_concurrency,
            limit=self.config.max_queue,
            max_timeout_s=self.config.command_timeout_s,
            on_done=deliver,
        )
        queue.start()
        await self._report_disconnects(ws, welcome)
        self._ws = ws
        await self.lifecycle.on_welcome(ws.send, welcome)
        jobs: list[Coroutine[Any, Any, None]] = [
            self._heartbeats(ws, welcome, queue),
            self._receive(ws, queue),
            self._renewals(ws),
            self._wait_stop(ws, welcome),
            self._wait_reconnect(),
        ]
        if welcome.keepalive_s is not None and welcome.keepalive_s < _PING_INTERVAL_S:
            jobs.append(_keepalive(ws, welcome.keepalive_s))
        tasks = [asyncio.create_task(job) for job in jobs]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await queue.stop()
            self._ws = None
            self.lifecycle.on_session_end()
        if self._stop.is_set():
            # Asked to stop: the close it started may have ended another job first.
            raise _Stop
        try:
            for task in done:
                task.result()  # re-raises what ended the session
        except _Rekeyed:
            await ws.close(CloseCode.NORMAL, _REKEYED_REASON)
            raise
        raise ConnectionError("channel ended")

    async def _report_disconnects(self, ws: ClientConnection, welcome: Welcome) -> None:
        """Tell the control plane why the earlier channels ended (if it listens)."""
        records = self.disconnects.unreported()
        if not records or "disconnects" not in welcome.accepts:
            return
        await ws.send(dump(Disconnects(records=records)))
        self.disconnects.mark_reported(records)
        log.info("reported %d earlier disconnect(s) to the control plane", len(records))

    async def _wait_stop(self, ws: ClientConnection, welcome: Welcome) -> None:
        await self._stop.wait()
        if "goodbye" in welcome.accepts and self._goodbye:
            # Stopped on purpose: the control plane shows "stopped", not an offline alert.
            with contextlib.suppress(ConnectionClosed):
                await ws.send(dump(Goodbye(reason=self.stop_reason)))
        await ws.close(CloseCode.NORMAL, "agent stopping")
        raise _Stop

    async def _heartbeats(self, ws: ClientConnection, welcome: Welcome, queue: WorkQueue) -> None:
        interval = min(welcome.heartbeat_interval_s, _MAX_SILENCE_S)
        seq = 0
        while True:
            self._note_sleep(connected=True)
            sample = self.sampler.read()
            await ws.send(
                dump(
                    Heartbeat(
                        seq=seq,
                        sent_at=time.time(),
                        version=__version__,
                        uptime_s=max(0.0, time.monotonic() - self.started),
                        queue_depth=queue.depth,
                        cpu_percent=sample.cpu_percent,
                        mem_rss_bytes=sample.mem_rss_bytes,
                        mem_host_percent=sample.mem_host_percent,
                        cert_not_after=self.cert.not_after,
                        config_hash=self.config_hash,
                    )
                )
            )
            seq += 1
            if seq == HEALTHY_HEARTBEATS:
                await self.lifecycle.healthy()
            await asyncio.sleep(interval)

    async def _receive(self, ws: ClientConnection, queue: WorkQueue) -> None:
        async for raw in ws:
            received = time.time()
            try:
                message = parse_server_message(raw)
            except ProtocolError as exc:
                # A newer control plane may send what this agent does not know yet.
                log.warning("ignored a frame from the control plane: %s", exc)
                request_id = command_request_id(raw)
                if request_id is not None:
                    await ws.send(_command_error(request_id, "unsupported", str(exc)))
                continue
            if isinstance(message, TimeProbe):
                await ws.send(
                    dump(TimeReply(id=message.id, t1=message.t1, t2=received, t3=time.time()))
                )
            elif isinstance(message, CommandRequest):
                await self._submit(ws, queue, message)
            elif isinstance(message, RenewResponse):
                waiter = self._renew_waiter
                if waiter is not None and not waiter.done():
                    waiter.set_result(message)
            elif isinstance(message, ErrorMessage):
                self._last_error = message
                log.error("control plane error %s: %s", message.code, message.message)
            else:
                log.warning("ignored an unexpected %s message", type(message).__name__)
        # The iterator ends on a normal close; report it like any other close.
        raise ConnectionClosed(
            ws.protocol.close_rcvd, ws.protocol.close_sent, ws.protocol.close_rcvd_then_sent
        )

    async def _submit(self, ws: ClientConnection, queue: WorkQueue, req: CommandRequest) -> None:
        log.info("command %s: %s", req.request_id, describe(req.command))
        if isinstance(req.command, LIFECYCLE_COMMANDS):
            refusal = self.lifecycle.refusal(req.command, queue.depth)
            if refusal is not None:
                log.warning("command %s refused: %s", req.request_id, refusal.message)
                await ws.send(_command_error(req.request_id, refusal.code, refusal.message))
                return
            # Never behind the queue: a wedged queue is what a restart is sent to fix.
            queue.run_now(req.request_id, self.lifecycle.job(req), req.timeout_s)
            return
        job = self.runner.job(req.command)
        if not queue.submit(req.request_id, job, req.timeout_s):
            log.warning("command %s refused: %d commands pending", req.request_id, queue.depth)
            await ws.send(
                _command_error(
                    req.request_id,
                    "busy",
                    f"{queue.depth} commands pending on the agent (limit {self.config.max_queue})",
                )
            )

    def renew_at(self) -> float:
        """When to renew: two thirds into the certificate's life."""
        life = self.cert.not_after - self.cert.not_before
        return self.cert.not_before + life * 2.0 / 3.0

    async def _renewals(self, ws: ClientConnection) -> None:
        failures = 0
        while True:
            wait = max(
                self.renew_at() - time.time(),
                self._last_renewal + _MIN_RENEW_GAP_S - time.monotonic(),
            )
            if wait > 0:
                await asyncio.sleep(min(wait, 3600.0))
                continue
            try:
                await self._renew_once(ws)
            except (_RenewFailed, RuntimeError, TimeoutError, ValueError) as exc:
                failures += 1
                retry = min(900.0, 15.0 * 2 ** min(failures - 1, 6))
                log.warning(
                    "certificate renewal failed: %s; retrying in %.0f s (expires %s)",
                    exc,
                    retry,
                    _iso(self.cert.not_after),
                )
                await asyncio.sleep(retry)

    async def renew_now(self) -> float:
        """Renew now (the ``renew`` command); the new ``not_after``.  The channel goes
        on with the old key until :meth:`reconnect` (once the answer is sent)."""
        if self._ws is None:
            raise RuntimeError("the channel is not open")
        with contextlib.suppress(_Rekeyed):
            await self._renew_once(self._ws)
        return self.cert.not_after

    def reconnect(self) -> None:
        """End this session on purpose and reconnect at once (with a renewed key)."""
        self._reconnect.set()

    async def _wait_reconnect(self) -> None:
        await self._reconnect.wait()
        self._reconnect.clear()
        raise _Rekeyed

    async def _renew_once(self, ws: ClientConnection) -> None:
        """Renew with a new key; raises :class:`_Rekeyed` once the new pair is installed.

        One renewal at a time (the schedule and the ``renew`` command share it).

        The new key waits in ``key.pem.new`` (written by the key child) until the
        certificate for it has come and been checked; a renewal that fails or is
        cut off on the way discards it and leaves ``key.pem`` and ``cert.pem`` as
        they were, still good: the control plane supersedes them only when the new
        certificate is first used.
        """
        async with self._renew_lock:
            await self._renew_locked(ws)

    async def _renew_locked(self, ws: ClientConnection) -> None:
        log.info(
            "renewing the certificate with a new key (valid until %s)", _iso(self.cert.not_after)
        )
        new_key = self.identity.new_key_path
        try:
            csr = await rekey_isolated(new_key, self.identity.name)
            answer = await self._ask_renewal(ws, csr)
            certificate = self._check_renewal(answer, csr)
        except BaseException:
            new_key.unlink(missing_ok=True)  # never certified, or never to be installed
            raise
        try:
            install_renewal(self.identity, certificate.encode("ascii"))
        except OSError as exc:
            log.error("could not install the renewed certificate and its key: %s", exc)
        # The pair on disk now: the new one, or the old one if the swap failed
        # before its key; the next authentication uses what is there.
        self._read_certificate()
        if self.cert_pem != certificate:
            raise _RenewFailed(
                "the renewed certificate could not be installed; the current one stays"
            )
        self._last_renewal = time.monotonic()
        if answer.ca_pem:
            write_public(self.identity.ca_path, answer.ca_pem.encode("ascii"))
        log.info(
            "certificate renewed with a new key; valid until %s; reconnecting with it",
            _iso(self.cert.not_after),
        )
        raise _Rekeyed

    async def _ask_renewal(self, ws: ClientConnection, csr: str) -> RenewResponse:
        waiter: asyncio.Future[RenewResponse] = asyncio.get_running_loop().create_future()
        self._renew_waiter = waiter
        try:
            await ws.send(dump(RenewRequest(csr_pem=csr)))
            async with asyncio.timeout(_RENEW_ANSWER_TIMEOUT_S):
                return await waiter
        finally:
            self._renew_waiter = None

    def _check_renewal(self, answer: RenewResponse, csr: str) -> str:
        """The answer's certificate, if it certifies the CSR's key and lasts longer."""
        if answer.error or not answer.certificate_pem:
            raise _RenewFailed(answer.error or "the answer carried no certificate")
        info = cert_info(pem_to_der(answer.certificate_pem))
        if info.public_key != csr_public_key(csr):
            # Installed, it would lock this agent out: its key would not match.
            raise _RenewFailed("the new certificate is not for the key the agent sent")
        if info.not_after < self.cert.not_after:
            raise _RenewFailed("the new certificate expires before the current one")
        return answer.certificate_pem

    def _read_certificate(self) -> None:
        """Read ``cert.pem`` into :attr:`cert_pem` and :attr:`cert`.

        Raises:
            StateError: it is unreadable.
        """
        path = self.identity.cert_path
        try:
            self.cert_pem = path.read_text(encoding="ascii")
            self.cert = cert_info(pem_to_der(self.cert_pem))
        except (OSError, ValueError) as exc:
            raise StateError(f"{path} is unreadable ({exc}); enroll again") from None


_SIGNAL_REASONS = {
    signal.SIGTERM: "received SIGTERM (systemctl stop, a shutdown or kill)",
    signal.SIGINT: "received SIGINT (interrupted)",
    signal.SIGHUP: "received SIGHUP (its terminal closed)",
}


def _peer_issuer(ws: ClientConnection) -> str | None:
    """Issuer of the certificate the server presented on ``ws`` (None without TLS)."""
    ssl_object = ws.transport.get_extra_info("ssl_object")
    if not isinstance(ssl_object, ssl.SSLObject | ssl.SSLSocket):
        return None
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    try:
        return cert_info(der).issuer[:300] or None
    except ValueError:
        return None


def _command_error(request_id: str, code: str, message: str) -> str:
    """A ``command_result`` frame carrying an error.

    Args:
        request_id: the request this answers.
        code: ``denied``, ``timeout``, ``busy``, ``unsupported`` or ``failed``.
        message: what happened, in words.
    """
    error = CommandError(code=code, message=message)
    return dump(CommandFinished(request_id=request_id, error=error))


def _explain(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        # Only when the certificate could not be read again for a full explanation.
        return (
            f"TLS verification failed ({exc.verify_message}); if the certificate is "
            "'not yet valid' or 'expired', check this host's clock; behind an "
            "SSL-inspecting proxy, set extra_ca_file"
        )
    if isinstance(exc, InvalidURI | InvalidHandshake):
        return f"websocket handshake failed: {exc}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{exc.__class__.__name__}: {exc}" if str(exc) else exc.__class__.__name__


async def _keepalive(ws: ClientConnection, every_s: float) -> None:
    """Ping sooner than websockets' own keepalive (which still times out a peer that
    never answers): the control plane asks for it when a load balancer on the path
    cuts channels that are quiet for longer (``channel_keepalive_s``)."""
    while True:
        await asyncio.sleep(every_s)
        await ws.ping()
