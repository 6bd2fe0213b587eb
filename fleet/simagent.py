"""Simulated agents that speak the real protocol: for the demo's fleet and for tests.

A :class:`SimAgent` enrolls over REST with a real CSR, then holds a real wss
channel with proof of possession, like the real agent, but in-process and
scriptable: its samples, clock offset, version and whether it heartbeats at all
are attributes a test or the demo sets.  Many run in one event loop.

It upgrades as the real agent does, seen from the control plane: it accepts an
``upgrade``, reports downloading, verifying, installing and restarting, says
goodbye, comes back with the new version (its uptime starting again) and reports
``running`` after three heartbeats.  A version in :attr:`SimAgent.bad_versions`
fails instead (``fail``: refused at verification, never run) or crash-loops
(``crash``: the new version never connects; the old one comes back and reports
``rolled_back``).  ``rollback`` switches back to the previous version, ``restart``
restarts, ``renew`` renews.  It does so with :attr:`SimAgent.obeys_actions`; without,
it answers ``unsupported``, as an agent older than those commands.  It downloads
nothing: the release's bytes are the real agent's business.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import websockets
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from agent.config import config_hash as hash_config
from agent.state import channel_url

from .protocol import (
    AGENT_CHANNEL_PATH,
    AUTH_CONTEXT,
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    Auth,
    CloseCode,
    CommandError,
    CommandFinished,
    CommandRequest,
    ConfigCommand,
    ConfigResult,
    ErrorMessage,
    FailureClass,
    Goodbye,
    Heartbeat,
    Hello,
    LogsCommand,
    LogsResult,
    ProbeCommand,
    ProbeResult,
    RenewCommand,
    RenewRequest,
    RenewResponse,
    RenewResult,
    RestartCommand,
    RestartResult,
    RollbackCommand,
    RollbackResult,
    TimeProbe,
    TimeReply,
    UpgradeCommand,
    UpgradeResult,
    UpgradeStatus,
    UpgradeStep,
    Welcome,
    dump,
    parse_server_message,
)

__all__ = ["Identity", "SimAgent", "enroll"]


SIM_CONFIG: dict[str, object] = {"heartbeat_s": 5.0, "samples": True, "simulated": True}
"""What a simulated agent reports as its effective config (hashed as real agents do)."""


@dataclass
class Identity:
    agent_id: str
    name: str
    pool: str
    key: ec.EllipticCurvePrivateKey
    certificate_pem: str
    ca_pem: str
    not_after: float
    channel_port: int | None = None


def make_csr(key: ec.EllipticCurvePrivateKey, name: str) -> str:
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM).decode()


async def enroll(
    client: httpx.AsyncClient, token: str, name: str, version: str = "1.0.0"
) -> Identity:
    """Enroll one agent; raises ``httpx.HTTPStatusError`` when refused."""
    key = ec.generate_private_key(ec.SECP256R1())
    response = await client.post(
        "/v1/enroll",
        json={"token": token, "csr_pem": make_csr(key, name), "name": name, "version": version},
    )
    response.raise_for_status()
    body = response.json()
    return Identity(
        agent_id=body["agent_id"],
        name=body["name"],
        pool=body["pool"],
        key=key,
        certificate_pem=body["certificate_pem"],
        ca_pem=body["ca_pem"],
        not_after=body["not_after"],
        channel_port=body.get("channel_port"),
    )


def sign_nonce(key: ec.EllipticCurvePrivateKey, nonce: str) -> str:
    return base64.b64encode(
        key.sign((AUTH_CONTEXT + nonce).encode(), ec.ECDSA(hashes.SHA256()))
    ).decode()


CommandHandler = Callable[[CommandRequest], Awaitable[CommandFinished]]


@dataclass
class SimAgent:
    """One simulated agent.  Set attributes to change what it reports."""

    identity: Identity
    ws_url: str
    """``wss://host:port`` of the control plane's API."""
    ca_file: Path
    api_route: bool = False
    """True: dial the API port's channel route, not the agents' own port."""
    local_addr: tuple[str, int] | None = None
    """Dial from this address: a load generator spreads its agents over several
    loopback addresses (one has about 28,000 ephemeral ports toward one port)."""
    tls: ssl.SSLContext | None = None
    """A client context to share (a load generator of 100,000 agents loads the CA
    once); None: one of its own per channel, from ``ca_file``."""
    version: str = "1.0.0"
    clock_offset_s: float = 0.0
    cpu_percent: float = 5.0
    mem_host_percent: float = 40.0
    mem_rss_bytes: int = 30 << 20
    queue_depth: int = 0
    cert_not_after: float | None = None
    config_hash: str | None = field(default_factory=lambda: hash_config(SIM_CONFIG))
    heartbeating: bool = True
    """False: keep the socket open but stop heartbeats (to test stale detection)."""
    handler: CommandHandler | None = None
    interval_s: float = 5.0
    close_code: int | None = None
    close_message: str | None = None
    connected: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)
    obeys_actions: bool = False
    """True: obey ``upgrade``, ``rollback``, ``restart`` and ``renew`` as a current agent
    does; False: answer ``unsupported``, as an agent older than those commands."""
    bad_versions: dict[str, str] = field(default_factory=dict)
    """Versions that do not work here: ``fail`` (refused before it runs) or ``crash``
    (the new version exits at start; the previous one comes back, rolled back)."""
    upgrade_step_s: float = 0.2
    """Time each upgrade step takes, and the restart."""
    previous_version: str | None = None
    """What a rollback goes back to (set by an upgrade)."""
    restarts: int = 0
    """Restarts so far (restart commands obeyed, upgrades, rollbacks): each closed the
    channel and started the uptime again, as a process restarted by its supervisor."""
    _seq: int = 0
    _ws: websockets.ClientConnection | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _renewal: asyncio.Future[str] | None = None
    _accepts: list[str] = field(default_factory=list)
    _restart_in: float | None = None
    """Set while restarting: reconnect after this many seconds, a new process."""
    _after_welcome: list[UpgradeStatus] = field(default_factory=list)
    """Steps to report once connected again (a rollback, as the real agent's ``last``)."""
    _confirm: UpgradeStatus | None = None
    """``running``, reported after three heartbeats of the new version."""

    @property
    def channel_url(self) -> str:
        """Where this agent dials: the port enrollment named, as a real agent does."""
        if self.identity.channel_port and not self.api_route:
            return channel_url(self.ws_url, self.identity.channel_port)
        return self.ws_url + AGENT_CHANNEL_PATH

    def now(self) -> float:
        return time.time() + self.clock_offset_s

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    async def run(self, reconnect: bool = True) -> None:
        """Hold the channel; reconnect with full jitter unless revoked."""
        import random

        window = 1.0
        while True:
            try:
                await self._session()
                window = 1.0
            except (TimeoutError, OSError, websockets.WebSocketException):
                pass
            self.connected.clear()
            if self._restart_in is not None:
                # A new process: it dials at once, its uptime and sequence start again.
                await asyncio.sleep(self._restart_in)
                self._restart_in = None
                self.started, self._seq = time.monotonic(), 0
                self.restarts += 1
                continue
            if not reconnect or self.close_code == CloseCode.REVOKED:
                return
            await asyncio.sleep(random.uniform(0, window))
            window = min(window * 2, 60.0)

    async def _session(self) -> None:
        extra: dict[str, Any] = {"local_addr": self.local_addr} if self.local_addr else {}
        async with websockets.connect(
            self.channel_url,
            ssl=self.tls or self.ssl_context(),
            max_size=MAX_FRAME_BYTES,
            compression=None,
            open_timeout=30,
            ping_interval=20,
            ping_timeout=20,
            **extra,
        ) as ws:
            self._ws = ws
            hello = parse_server_message(await ws.recv())
            assert isinstance(hello, Hello)
            await ws.send(
                dump(
                    Auth(
                        protocol_version=PROTOCOL_VERSION,
                        agent_id=self.identity.agent_id,
                        certificate_pem=self.identity.certificate_pem,
                        signature=sign_nonce(self.identity.key, hello.nonce),
                        version=self.version,
                    )
                )
            )
            beat: asyncio.Task[None] | None = None
            try:
                async for raw in ws:
                    t_recv = self.now()
                    msg = parse_server_message(raw)
                    if isinstance(msg, Welcome):
                        self.interval_s = msg.heartbeat_interval_s
                        self._accepts = list(msg.accepts)
                        self.connected.set()
                        for status in self._after_welcome:
                            await self._report(status)
                        self._after_welcome.clear()
                        beat = asyncio.create_task(self._heartbeats(ws))
                    elif isinstance(msg, TimeProbe):
                        await ws.send(
                            dump(TimeReply(id=msg.id, t1=msg.t1, t2=t_recv, t3=self.now()))
                        )
                    elif isinstance(msg, CommandRequest):
                        task = asyncio.create_task(self._command(ws, msg))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    elif isinstance(msg, ErrorMessage):
                        self.close_code, self.close_message = msg.code, msg.message
                    elif isinstance(msg, RenewResponse):
                        if msg.certificate_pem:
                            self.identity.certificate_pem = msg.certificate_pem
                        if self._renewal is not None and not self._renewal.done():
                            self._renewal.set_result(msg.certificate_pem or f"!{msg.error}")
            except websockets.ConnectionClosed as exc:
                if exc.rcvd is not None:
                    self.close_code = exc.rcvd.code
            finally:
                if beat is not None:
                    beat.cancel()
            if ws.close_code is not None and ws.close_code != CloseCode.NORMAL:
                self.close_code = ws.close_code

    async def _heartbeats(self, ws: websockets.ClientConnection) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            sent = 0
            while True:
                if self.heartbeating:
                    await self.send_heartbeat(ws)
                    sent += 1
                    if sent == 3 and self._confirm is not None:
                        # Confirmed, as the real agent's trial: three heartbeats in.
                        confirm, self._confirm = self._confirm, None
                        await self._report(confirm)
                await asyncio.sleep(self.interval_s)

    async def send_heartbeat(self, ws: websockets.ClientConnection | None = None) -> None:
        ws = ws or self._ws
        assert ws is not None
        self._seq += 1
        await ws.send(
            dump(
                Heartbeat(
                    seq=self._seq,
                    sent_at=self.now(),
                    version=self.version,
                    uptime_s=time.monotonic() - self.started,
                    cpu_percent=self.cpu_percent,
                    mem_rss_bytes=self.mem_rss_bytes,
                    mem_host_percent=self.mem_host_percent,
                    queue_depth=self.queue_depth,
                    cert_not_after=self.cert_not_after or self.identity.not_after,
                    config_hash=self.config_hash,
                )
            )
        )

    async def send_raw(self, data: str | bytes) -> None:
        assert self._ws is not None
        await self._ws.send(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the channel, normally unless told: as the real agent does before it
        reconnects with a renewed key."""
        assert self._ws is not None
        await self._ws.close(code, reason)

    async def renew(self, new_key: bool = True) -> None:
        """Ask for a new certificate, for a new key (or, ``new_key=False``, the same)."""
        assert self._ws is not None
        key = ec.generate_private_key(ec.SECP256R1()) if new_key else self.identity.key
        self.identity.key = key
        await self._ws.send(dump(RenewRequest(csr_pem=make_csr(key, self.identity.name))))

    async def _command(self, ws: websockets.ClientConnection, req: CommandRequest) -> None:
        restarting = False
        if self.handler is not None:
            result = await self.handler(req)
        elif self.obeys_actions and isinstance(req.command, RenewCommand):
            result = await self._renew_now(req)
        elif self.obeys_actions and isinstance(req.command, RestartCommand):
            result = CommandFinished(request_id=req.request_id, result=RestartResult())
            restarting = True
        else:
            result = self.lifecycle(req) or await default_handler(req)
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(dump(result))
            if restarting:
                # As a process that exits for its supervisor to start it again.
                self.restarts += 1
                self.started = time.monotonic()
                await ws.close(CloseCode.GOING_AWAY, "restarting")

    async def _renew_now(self, req: CommandRequest) -> CommandFinished:
        """A renew command: renew the certificate (same key) and answer when renewed."""
        self._renewal = asyncio.get_running_loop().create_future()
        await self.renew(new_key=False)
        try:
            async with asyncio.timeout(10):
                answer = await self._renewal
        except TimeoutError:
            answer = "!no answer to the renewal"
        if answer.startswith("!"):
            error = CommandError(code="failed", message=answer[1:])
            return CommandFinished(request_id=req.request_id, error=error)
        cert = x509.load_pem_x509_certificate(answer.encode())
        self.identity.not_after = cert.not_valid_after_utc.timestamp()
        self.cert_not_after = None  # heartbeats report the new certificate's expiry
        return CommandFinished(
            request_id=req.request_id, result=RenewResult(not_after=self.identity.not_after)
        )

    # ------------------------------------------------------------ upgrades

    def lifecycle(self, req: CommandRequest) -> CommandFinished | None:
        """With :attr:`obeys_actions`, answer an upgrade or a rollback and start it;
        None for anything else (a handler of the demo's calls it too)."""
        cmd = req.command
        done = partial(CommandFinished, request_id=req.request_id)
        if not self.obeys_actions:
            return None
        if isinstance(cmd, UpgradeCommand):
            if cmd.version == self.version:
                return done(
                    error=CommandError(code="failed", message=f"already running {cmd.version}")
                )
            self._spawn(self._upgrade(cmd.version))
            return done(result=UpgradeResult(version=cmd.version, driver="release"))
        if isinstance(cmd, RollbackCommand):
            if self.previous_version is None:
                return done(
                    error=CommandError(code="failed", message="no previous version to go back to")
                )
            back = self.previous_version
            self._spawn(self._rollback(back, cmd.reason))
            return done(result=RollbackResult(version=back))
        return None

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _report(self, status: UpgradeStatus | None = None, **fields: Any) -> None:
        """Send an upgrade step, if the control plane takes them."""
        msg = status or UpgradeStatus(at=time.time(), **fields)
        if self._ws is None or "upgrade_status" not in self._accepts:
            return
        with contextlib.suppress(websockets.ConnectionClosed):
            await self._ws.send(dump(msg))

    async def _step(self, version: str, step: UpgradeStep, old: str, detail: str = "") -> None:
        await self._report(version=version, step=step, detail=detail, from_version=old)

    async def _upgrade(self, version: str) -> None:
        old, mode, pause = self.version, self.bad_versions.get(version), self.upgrade_step_s
        for step in ("downloading", "verifying"):
            await self._step(version, step, old)
            await asyncio.sleep(pause)
        if mode == "fail":
            why = "bad signature: the release key did not sign this file; it was not run"
            await self._step(version, "failed", old, why)
            return
        await self._step(version, "installing", old)
        await asyncio.sleep(pause)
        await self._step(version, "restarting", old)
        self.previous_version = old
        if mode == "crash":
            # The new version exits at start, twice: the old one comes back and says so.
            why = f"{version} exited twice before it confirmed; back on {old}"
            self._after_welcome.append(
                UpgradeStatus(
                    version=version,
                    step="rolled_back",
                    detail=why,
                    from_version=old,
                    at=time.time(),
                )
            )
            await self.restart(f"restarting into {version}", offline_s=3 * pause)
            return
        self.version = version
        self._confirm = UpgradeStatus(
            version=version, step="running", from_version=old, at=time.time()
        )
        await self.restart(f"restarting into {version}")

    async def _rollback(self, back: str, reason: str) -> None:
        await asyncio.sleep(self.upgrade_step_s)  # its answer goes out first
        left = self.version
        self.version, self.previous_version = back, None
        self._confirm = None
        self._after_welcome.append(
            UpgradeStatus(
                version=left, step="rolled_back", detail=reason, from_version=left, at=time.time()
            )
        )
        await self.restart(f"rolling back to {back}")

    async def restart(self, reason: str, offline_s: float | None = None) -> None:
        """Say goodbye and close, then come back as a new process after ``offline_s``."""
        self._restart_in = self.upgrade_step_s if offline_s is None else offline_s
        ws = self._ws
        if ws is None:
            return
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(dump(Goodbye(reason=reason[:200])))
            await ws.close()


async def _tcp_probe(cmd: ProbeCommand) -> ProbeResult:
    """A real TCP connect (the simulated agent does no TLS handshake)."""
    start = time.perf_counter()
    failure: FailureClass
    try:
        async with asyncio.timeout(cmd.timeout_s):
            _, writer = await asyncio.open_connection(cmd.host, cmd.port)
    except ConnectionRefusedError as exc:
        failure, error = "refused", str(exc)
    except TimeoutError:
        failure, error = "timeout", f"no answer in {cmd.timeout_s} s"
    except OSError as exc:
        failure, error = "error", str(exc)
    else:
        writer.close()
        ms = round((time.perf_counter() - start) * 1000, 2)
        return ProbeResult(host=cmd.host, port=cmd.port, tls=cmd.tls, ok=True, connect_ms=ms)
    return ProbeResult(
        host=cmd.host, port=cmd.port, tls=cmd.tls, ok=False, failure=failure, error=error
    )


async def default_handler(req: CommandRequest) -> CommandFinished:
    """What a simulated agent answers: a real TCP probe, canned logs and config."""
    cmd = req.command
    if isinstance(cmd, ProbeCommand):
        return CommandFinished(request_id=req.request_id, result=await _tcp_probe(cmd))
    if isinstance(cmd, LogsCommand):
        lines = [f"2026-01-01T00:00:{i:02d}Z INFO simulated agent line {i}" for i in range(20)]
        return CommandFinished(
            request_id=req.request_id, result=LogsResult(lines=lines[-cmd.lines :])
        )
    if isinstance(cmd, ConfigCommand):
        return CommandFinished(
            request_id=req.request_id,
            result=ConfigResult(config=SIM_CONFIG, hash=hash_config(SIM_CONFIG)),
        )
    return CommandFinished(
        request_id=req.request_id, error=CommandError(code="unsupported", message=cmd.kind)
    )
