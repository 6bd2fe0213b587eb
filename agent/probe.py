"""Connectivity probes: DNS, TCP connect and optionally a TLS handshake, timed.

No shell and no external tool: the resolver, sockets and ``ssl`` of the standard
library.  Local policy (:mod:`agent.policy`) is checked before anything is
dialed.  The result is a ``ProbeResult`` of :mod:`fleet.protocol` as a dict.

Failure classes: ``denied`` (local policy), ``dns``, ``refused``, ``timeout``,
``unreachable`` (no route to the host or network), ``tls`` and ``error``
(anything else).  ``error`` always carries the raw error text.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Any

from agent._der import cert_info
from agent.policy import IPAddress, ProbePolicy
from fleet.protocol import ProbeCommand

__all__ = ["run_probe"]

_UNREACHABLE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}


@dataclass
class _Result:
    host: str
    port: int
    tls: bool
    ok: bool = False
    failure: str | None = None
    error: str | None = None
    resolved: list[str] = field(default_factory=list)
    dns_ms: float | None = None
    connect_ms: float | None = None
    tls_ms: float | None = None
    peer_cert_not_after: float | None = None
    peer_cert_subject: str | None = None

    def fail(self, failure: str, error: str) -> dict[str, Any]:
        self.failure = failure
        self.error = error
        return self.as_dict()

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": "probe"}
        out.update({k: v for k, v in self.__dict__.items() if v is not None})
        return out


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000.0, 3)


def _describe(exc: BaseException) -> str:
    text = str(exc) or exc.__class__.__name__
    return f"{exc.__class__.__name__}: {text}"


def _classify_connect(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "refused"
    if isinstance(exc, OSError) and exc.errno in _UNREACHABLE:
        return "unreachable"
    if isinstance(exc, OSError) and exc.errno == errno.ETIMEDOUT:
        return "timeout"
    return "error"


def _tls_context() -> ssl.SSLContext:
    # The probe measures whether a TLS handshake completes and reads the peer's
    # certificate; judging trust is the client's business, so it does not verify.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def _resolve(
    result: _Result, spec: ProbeCommand, policy: ProbePolicy, deadline: float
) -> list[IPAddress] | dict[str, Any]:
    """Resolve the host within the deadline, or return the failed result."""
    try:
        literal: IPAddress | None = ipaddress.ip_address(spec.host)
    except ValueError:
        literal = None
    name_ok = policy.host_matches(spec.host)
    if literal is not None:
        if not name_ok and not policy.address_allowed(literal):
            return result.fail("denied", f"{spec.host} is outside the agent's allow_cidrs")
        result.resolved = [str(literal)]
        return [literal]
    if not name_ok and not policy.networks:
        return result.fail("denied", f"{spec.host} matches none of the agent's allow_hosts")
    loop = asyncio.get_running_loop()
    start = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline):
            infos = await loop.getaddrinfo(spec.host, spec.port, type=socket.SOCK_STREAM)
    except TimeoutError:
        result.dns_ms = _ms(start)
        return result.fail("timeout", f"DNS lookup of {spec.host} timed out")
    except (socket.gaierror, UnicodeError) as exc:
        result.dns_ms = _ms(start)
        return result.fail("dns", _describe(exc))
    result.dns_ms = _ms(start)
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    result.resolved = [str(a) for a in addresses]
    if not name_ok:
        denial = policy.addresses_denial(spec.host, addresses)
        if denial is not None:
            return result.fail("denied", denial)
    return addresses


async def run_probe(spec: ProbeCommand, policy: ProbePolicy) -> dict[str, Any]:
    """Probe ``spec.host:spec.port`` within ``spec.timeout_s``.

    Args:
        spec: what to probe.
        policy: the local allow-list, checked before anything is dialed.

    Returns:
        A ``ProbeResult`` dict; never raises for network failures.
    """
    result = _Result(host=spec.host, port=spec.port, tls=spec.tls)
    denial = policy.port_denial(spec.port)
    if denial is not None:
        return result.fail("denied", denial)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + spec.timeout_s
    resolved = await _resolve(result, spec, policy, deadline)
    if isinstance(resolved, dict):
        return resolved

    writer: asyncio.StreamWriter | None = None
    last_exc: BaseException | None = None
    start = time.perf_counter()
    for address in resolved:
        try:
            async with asyncio.timeout_at(deadline):
                _, writer = await asyncio.open_connection(str(address), spec.port)
            break
        except (OSError, TimeoutError) as exc:
            last_exc = exc
            if isinstance(exc, TimeoutError):
                break
    result.connect_ms = _ms(start)
    if writer is None:
        failure = last_exc or OSError("no address to connect to")
        timed_out = isinstance(failure, TimeoutError)
        error = "TCP connect timed out" if timed_out else _describe(failure)
        return result.fail(_classify_connect(failure), error)

    try:
        if spec.tls:
            failed = await _handshake(result, spec, writer, deadline)
            if failed is not None:
                return failed
        result.ok = True
        return result.as_dict()
    finally:
        writer.close()
        try:
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
        except (OSError, TimeoutError, ssl.SSLError):
            pass


async def _handshake(
    result: _Result, spec: ProbeCommand, writer: asyncio.StreamWriter, deadline: float
) -> dict[str, Any] | None:
    server_name = spec.server_name
    if server_name is None:
        try:
            ipaddress.ip_address(spec.host)
        except ValueError:
            server_name = spec.host
    remaining = max(0.001, deadline - asyncio.get_running_loop().time())
    start = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline):
            await writer.start_tls(
                _tls_context(), server_hostname=server_name, ssl_handshake_timeout=remaining
            )
    except TimeoutError:
        result.tls_ms = _ms(start)
        return result.fail("timeout", "TLS handshake timed out")
    except (ssl.SSLError, ConnectionError, OSError) as exc:
        result.tls_ms = _ms(start)
        return result.fail("tls", _describe(exc))
    result.tls_ms = _ms(start)
    ssl_object = writer.get_extra_info("ssl_object")
    der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
    if der:
        try:
            info = cert_info(der)
        except ValueError:
            result.peer_cert_subject = "(unreadable certificate)"
        else:
            result.peer_cert_not_after = info.not_after
            result.peer_cert_subject = info.subject
    return None
