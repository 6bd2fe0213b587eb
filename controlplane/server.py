"""``fleet server``: the control plane on uvicorn, TLS on by default."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import logging
import os
import resource
import socket
import sys
from collections.abc import Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn

from fleet.files import check_private, write_public
from fleet.protocol import MAX_FRAME_BYTES

from .app import create_app
from .config import Settings
from .header_guard import guarded_h11
from .pki import CertificateAuthority
from .server_cert import (
    DEFAULT_NAMES,
    TLS12_CIPHERS,
    ServerCertError,
    ServerTLS,
    external_server_tls,
    own_server_tls,
)
from .state import ControlPlane
from .store import SQLITE_FILE, make_store
from .store.dsn import redact

__all__ = ["serve"]

TLS_READ_BUFFER = 16 * 1024


def _shrink_tls_read_buffers() -> None:
    # asyncio's SSLProtocol allocates (and zero-fills) a 256 KiB read buffer per
    # connection: 2.5 GB of RSS for 10,000 agents.  TLS records are at most 16 KiB
    # and the SSL object buffers whatever a read leaves, so 16 KiB loses nothing.
    # Measured with 2,000 agents: RSS per connected agent fell from about 300 KiB
    # (256 KiB buffer) to 115 KiB (32 KiB) and 98 KiB (16 KiB).
    asyncio.sslproto.SSLProtocol.max_size = TLS_READ_BUFFER


def _raise_fd_limit() -> None:
    # One descriptor per agent: 10,000 agents need more than the usual soft limit.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


AGENT_PORT_FILE = "agent.port"
"""Where the data directory records the agents' port: enrolled agents know it."""


def _agent_port(data_dir: Path, port: int, asked: int | None) -> int:
    """The agents' port: as asked, else as recorded, else the API port + 1 (or any)."""
    if asked is not None:
        return asked
    recorded = data_dir / AGENT_PORT_FILE
    if recorded.exists():
        try:
            return int(recorded.read_text().strip())
        except ValueError:
            raise OSError(
                f"{recorded} does not hold a port number; delete it, or pass --agent-port"
            ) from None
    return port + 1 if port else 0


def _bind_agents(host: str, port: int, data_dir: Path) -> socket.socket:
    try:
        return _bind(host, port)
    except OSError as exc:
        raise OSError(
            f"cannot listen for agents on {host}:{port} ({exc.strerror or exc}); enrolled "
            f"agents dial that port (it is recorded in {data_dir / AGENT_PORT_FILE}): free "
            "it, or pass --agent-port and enroll the agents again"
        ) from None


def _server_identity(
    ca: CertificateAuthority,
    host: str,
    tls: bool,
    sans: list[str] | None,
    tls_cert: Path | None,
    tls_key: Path | None,
) -> ServerTLS | None:
    if (tls_cert is None) != (tls_key is None):
        raise ServerCertError("--tls-cert and --tls-key go together: give both, or neither")
    if tls_cert is not None and tls_key is not None:
        if not tls:
            raise ServerCertError("--tls-cert does not mix with --no-tls; drop one of them")
        if sans:
            raise ServerCertError(
                "--san names the control plane's own certificate; with --tls-cert the "
                f"names are those {tls_cert} carries: drop --san, or drop --tls-cert"
            )
        return external_server_tls(tls_cert, tls_key)
    server_tls = own_server_tls(ca, host, sans)
    return server_tls if tls else None


def _check_keys(ca: CertificateAuthority, tls_key: Path | None) -> None:
    """Refuse to start on a private key that its group or others may read.

    Raises:
        PermissionError: naming the key and the ``chmod`` to run.
    """
    keys = [
        key
        for key in (ca.directory / "ca.key", ca.directory / "release.key", ca.server_key_file)
        if key.exists()
    ]
    for key in [*keys, *([tls_key] if tls_key is not None else [])]:
        check_private(key)


def _tls_banner(server_tls: ServerTLS | None) -> str:
    if server_tls is None:
        return "  TLS:         off (--no-tls)\n"
    hint = (
        "               (another name: fleet server --san NAME ..., then restart)\n"
        if server_tls.own
        else ""
    )
    return (
        f"  TLS names:   {', '.join(server_tls.names) or '(none)'}\n"
        f"  TLS cert:    {server_tls.how}; issuer {server_tls.issuer}; "
        f"valid until {server_tls.not_after:%Y-%m-%d}\n{hint}"
    )


def _store_banner(settings: Settings, data_dir: Path) -> str:
    if settings.store:
        # Never the password: the banner goes to logs.
        return (
            f"  store:       {redact(settings.store)} (PostgreSQL, "
            f"{settings.store_pool_size} connections at most)"
        )
    return f"  data:        {data_dir / SQLITE_FILE} (SQLite, WAL)"


def serve(
    data_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8443,
    tls: bool = True,
    settings: Settings | None = None,
    log_level: str = "warning",
    agent_port: int | None = None,
    *,
    sans: list[str] | None = None,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
) -> None:
    """Run the control plane until interrupted.

    Agents get a listener of their own (:mod:`controlplane.agent_listener`) on
    ``agent_port``: by default the one recorded in the data directory, else
    ``port + 1``, else (with ``port`` 0) any free port, then recorded.

    Args:
        sans: extra names for the own server certificate (``--san``); None keeps
            the ones remembered in the data directory.
        tls_cert: present this certificate (the company's PKI) instead of our own,
            with ``tls_key``.

    Raises:
        OSError: cannot listen, or the TLS certificate is unusable
            (:class:`~controlplane.server_cert.ServerCertError`).
    """
    settings = settings or Settings()
    _raise_fd_limit()
    _shrink_tls_read_buffers()
    data_dir.mkdir(parents=True, exist_ok=True)
    data_dir.chmod(0o700)
    ca = CertificateAuthority.load_or_create(data_dir / "pki")
    server_tls = _server_identity(ca, host, tls, sans, tls_cert, tls_key)
    _check_keys(ca, tls_key)
    for name in ("ca.pem", "ca.pin"):
        (data_dir / name).write_bytes((data_dir / "pki" / name).read_bytes())
    store = make_store(
        settings.store,
        data_dir,
        pool_size=settings.store_pool_size,
        password_file=settings.store_password_file,
    )
    cp = ControlPlane(data_dir, store, settings, ca)
    sock = _bind(host, port)
    bound_port = sock.getsockname()[1]
    agent_sock = _bind_agents(host, _agent_port(data_dir, port, agent_port), data_dir)
    cp.channel_port = agent_sock.getsockname()[1]
    cp.server_tls = "off" if server_tls is None else "fleet-ca" if server_tls.own else "external"
    write_public(data_dir / AGENT_PORT_FILE, f"{cp.channel_port}\n".encode())
    scheme = "https" if tls else "http"
    shown_host = f"[{host}]" if ":" in host else host
    if host.strip("[]") in ("0.0.0.0", "::") and server_tls is not None:  # noqa: S104
        # Agents cannot dial a wildcard address: advertise the first name of ours.
        named = [n for n in server_tls.names if n not in DEFAULT_NAMES and "*" not in n]
        if named:
            shown_host = f"[{named[0]}]" if ":" in named[0] else named[0]
    cp.endpoint = f"{scheme}://{shown_host}:{bound_port}"

    def ready() -> None:
        # Atomic: a client that reads it while it is written sees all of it or none.
        write_public(data_dir / "endpoint", (cp.endpoint + "\n").encode())
        print(
            f"fleet control plane listening on {cp.endpoint}\n"
            f"  agents:      port {cp.channel_port} (the agent channel)\n"
            f"  CA pin:      {ca.pin}\n"
            f"  CA file:     {data_dir / 'ca.pem'}\n"
            f"{_tls_banner(server_tls)}"
            f"  admin token: {data_dir / 'admin.token'} (0600; written once)\n"
            f"{_store_banner(settings, data_dir)}",
            flush=True,
        )

    logging.basicConfig(
        level=getattr(logging, log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    config = uvicorn.Config(
        create_app(
            cp,
            on_ready=ready,
            agent_listener=(agent_sock, server_tls.context() if server_tls else None),
        ),
        ssl_certfile=str(server_tls.cert_file) if server_tls else None,
        ssl_keyfile=str(server_tls.key_file) if server_tls else None,
        ssl_ciphers=TLS12_CIPHERS,
        # uvicorn's h11 protocol ("auto" without httptools), counting and timing
        # each connection until its request's headers are complete: uvicorn alone
        # lets a slowloris hold any number of them for as long as it likes.
        http=guarded_h11(cp.unread, cp.refusals, settings.header_timeout_s),
        # The sans-io implementation of websockets: one less task per connection.
        ws="websockets-sansio",
        ws_max_size=MAX_FRAME_BYTES,
        ws_ping_interval=20.0,
        ws_ping_timeout=20.0,
        # Heartbeats are small and mostly unique numbers: deflate costs CPU and
        # memory per connection for little gain.
        ws_per_message_deflate=False,
        log_level=log_level,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        server_header=False,
    )
    server = _Server(config)
    server.cp = cp
    _run(server.serve(sockets=[sock]))


class _Server(uvicorn.Server):
    cp: ControlPlane

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn (and websockets, for the agents' port, started in the lifespan) call
        # loop.create_server without a TLS handshake timeout: the loop's default is
        # 60 s, and a client that never finishes its handshake held a connection that
        # long. Every server made during start-up gets ours.
        loop = asyncio.get_running_loop()
        create_server = loop.create_server
        timeout = self.cp.settings.tls_handshake_timeout_s

        async def with_handshake_timeout(*args: Any, **kwargs: Any) -> asyncio.Server:
            if kwargs.get("ssl") is not None:
                kwargs.setdefault("ssl_handshake_timeout", timeout)
            return await create_server(*args, **kwargs)

        loop.create_server = with_handshake_timeout  # type: ignore[method-assign]
        try:
            await super().startup(sockets)
        finally:
            del loop.create_server

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Said at the signal, before uvicorn closes a connection: a replica's agents
        # are handed over to the others, not shown away (controlplane/channel.py).
        self.cp.stopping = True
        super().handle_exit(sig, frame)


def _run(main: Coroutine[Any, Any, None]) -> None:
    # uvloop where it is installed (as uvicorn itself prefers): with 2,000 agents
    # it gave 11 % more heartbeats per CPU-second and 17 % less RSS than asyncio's
    # loop (bench/controlplane_load.py).  FLEET_LOOP=asyncio opts out.
    if os.environ.get("FLEET_LOOP", "auto") != "asyncio":
        try:
            import uvloop
        except ImportError:
            pass
        else:
            uvloop.run(main)
            return
    asyncio.run(main)
