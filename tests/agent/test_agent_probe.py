"""Probes against real loopback listeners, a closed port and a real TLS server."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import socket
import ssl

import pytest

from agent.config import load_config
from agent.policy import ProbePolicy
from agent.probe import run_probe
from fleet.protocol import ProbeCommand
from tests.agent.certs import self_signed

OPEN = ProbePolicy.from_config(
    load_config(
        file=None,
        env={},
        flags={
            "allow_hosts": ["localhost"],
            "allow_cidrs": ["127.0.0.0/8", "::1/128"],
            "allow_ports": ["1-65535"],
        },
    )
)


class Listener:
    """A real TCP listener that counts accepted connections."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.accepted = 0
        self.ssl_context = ssl_context
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        async def handle(reader, writer):
            self.accepted += 1
            with contextlib.suppress(OSError, ssl.SSLError):
                await reader.read(100)
            writer.close()

        self.server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.ssl_context)
        return self

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def __aexit__(self, *exc) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_open_port_is_ok_with_timings():
    async with Listener() as listener:
        result = await run_probe(ProbeCommand(host="localhost", port=listener.port), OPEN)
    assert result["ok"] is True
    assert result.get("failure") is None
    assert "127.0.0.1" in result["resolved"]
    assert result["dns_ms"] >= 0 and result["connect_ms"] >= 0
    assert "tls_ms" not in result


async def test_closed_port_is_refused_with_the_raw_error():
    result = await run_probe(ProbeCommand(host="127.0.0.1", port=closed_port()), OPEN)
    assert result["ok"] is False
    assert result["failure"] == "refused"
    assert "ConnectionRefusedError" in result["error"]
    assert result["resolved"] == ["127.0.0.1"]


async def test_tls_server_with_soon_expiring_certificate(tmp_path):
    issued = self_signed("soon.internal", lifetime=dt.timedelta(hours=2))
    cert, key = issued.write(tmp_path, "soon")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    async with Listener(ctx) as listener:
        result = await run_probe(
            ProbeCommand(host="127.0.0.1", port=listener.port, tls=True, server_name="soon"), OPEN
        )
    assert result["ok"] is True, result
    assert result["tls_ms"] > 0
    assert result["peer_cert_not_after"] == issued.not_after.timestamp()
    assert result["peer_cert_subject"] == "CN=soon.internal"


async def test_tls_probe_of_a_plain_tcp_service_is_a_tls_failure():
    async def garbage(reader, writer):
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n" * 4)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run_probe(ProbeCommand(host="127.0.0.1", port=port, tls=True), OPEN)
    finally:
        server.close()
        await server.wait_closed()
    assert result["ok"] is False
    assert result["failure"] == "tls"
    assert result["connect_ms"] >= 0 and result["error"]


async def test_silent_tls_server_times_out():
    done = asyncio.Event()
    handlers = []

    async def silent(reader, writer):
        handlers.append(asyncio.current_task())
        await done.wait()
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        result = await run_probe(
            ProbeCommand(host="127.0.0.1", port=port, tls=True, timeout_s=0.3), OPEN
        )
    finally:
        done.set()
        await asyncio.gather(*handlers, return_exceptions=True)
        server.close()
        await server.wait_closed()
    assert result["failure"] == "timeout"
    assert "TLS handshake" in result["error"]


async def test_unresolvable_name_is_a_dns_failure_without_any_traffic():
    # A 64-character label fails in the IDNA codec, before any resolver query.
    host = "a" * 64 + ".test"
    policy = ProbePolicy.from_config(
        load_config(file=None, env={}, flags={"allow_hosts": ["*"], "allow_ports": ["80"]})
    )
    result = await run_probe(ProbeCommand(host=host, port=80), policy)
    assert result["failure"] == "dns"
    assert result["error"]


@pytest.mark.parametrize(
    ("flags", "host", "reason"),
    [
        ({"allow_hosts": ["localhost"], "allow_ports": ["1-1000"]}, "localhost", "allow_ports"),
        (
            {"allow_hosts": ["*.db.internal"], "allow_ports": ["1-65535"]},
            "localhost",
            "allow_hosts",
        ),
        ({"allow_cidrs": ["10.0.0.0/8"], "allow_ports": ["1-65535"]}, "127.0.0.1", "allow_cidrs"),
        (
            {"allow_cidrs": ["10.0.0.0/8"], "allow_ports": ["1-65535"]},
            "localhost",
            "outside the agent's allow_cidrs",
        ),
        ({}, "127.0.0.1", "allow_ports"),
    ],
)
async def test_local_policy_denies_before_dialing(flags, host, reason):
    policy = ProbePolicy.from_config(load_config(file=None, env={}, flags=flags))
    async with Listener() as listener:
        result = await run_probe(ProbeCommand(host=host, port=listener.port), policy)
        await asyncio.sleep(0.05)
        assert listener.accepted == 0  # nothing was dialed
    assert result["ok"] is False
    assert result["failure"] == "denied"
    assert reason in result["error"]


async def test_cidr_allows_a_name_that_resolves_inside_it():
    policy = ProbePolicy.from_config(
        load_config(
            file=None,
            env={},
            flags={"allow_cidrs": ["127.0.0.0/8", "::1/128"], "allow_ports": ["1024-65535"]},
        )
    )
    async with Listener() as listener:
        result = await run_probe(ProbeCommand(host="localhost", port=listener.port), policy)
        await asyncio.sleep(0.05)
        assert listener.accepted == 1
    assert result["ok"] is True


def test_policy_matching_rules():
    policy = ProbePolicy.from_config(
        load_config(
            file=None,
            env={},
            flags={
                "allow_hosts": ["*.DB.internal"],
                "allow_cidrs": ["10.1.0.0/16"],
                "allow_ports": ["5432-5439", "443"],
            },
        )
    )
    assert policy.host_matches("pg1.db.internal.") and policy.host_matches("PG1.db.INTERNAL")
    assert not policy.host_matches("db.internal.evil.com")
    assert policy.port_denial(5435) is None and policy.port_denial(443) is None
    assert policy.port_denial(22) is not None
    import ipaddress

    assert policy.address_allowed(ipaddress.ip_address("10.1.2.3"))
    assert policy.address_allowed(ipaddress.ip_address("::ffff:10.1.2.3"))
    assert not policy.address_allowed(ipaddress.ip_address("10.2.0.1"))


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        (OSError(errno.EHOSTUNREACH, "No route to host"), "unreachable"),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), "unreachable"),
        (OSError(errno.ETIMEDOUT, "Connection timed out"), "timeout"),
        (TimeoutError(), "timeout"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), "refused"),
        (OSError(errno.EACCES, "Permission denied"), "error"),
    ],
)
def test_connect_errors_are_classified(exc, failure):
    # Each errno the classifier knows, including those a test machine cannot produce.
    from agent.probe import _classify_connect

    assert _classify_connect(exc) == failure
