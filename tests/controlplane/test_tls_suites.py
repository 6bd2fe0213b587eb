"""What each port accepts: TLS 1.2 with AEAD suites only, and TLS 1.3.

Every TLS 1.2 suite this machine's OpenSSL can offer is tried on its own, against
the API port and the agent port of a real control plane.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlsplit

AEAD = ("GCM", "CHACHA20")


def _handshake(port: int, ctx: ssl.SSLContext) -> str | None:
    """The suite the server chose, or None when it refused the handshake."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                chosen = tls.cipher()
                return chosen[0] if chosen else None
        except (ssl.SSLError, ConnectionResetError):
            return None


def _client(version: ssl.TLSVersion, cipher: str | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # we look at the suites, not the certificate
    ctx.minimum_version = ctx.maximum_version = version
    if cipher is not None:
        ctx.set_ciphers(f"{cipher}:@SECLEVEL=0")
    return ctx


def _offered_tls12() -> list[str]:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return sorted({c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"})


def test_each_port_accepts_only_aead_suites_on_tls12_and_tls13(control_plane):
    offered = _offered_tls12()
    assert "ECDHE-ECDSA-AES128-SHA256" in offered, "this OpenSSL offers the CBC suite"
    ports = {"api": urlsplit(control_plane.url).port, "agents": control_plane.agent_port}
    for port_name, port in ports.items():
        assert port is not None
        accepted = [
            name
            for name in offered
            if _handshake(port, _client(ssl.TLSVersion.TLSv1_2, name)) == name
        ]
        assert accepted, f"{port_name}: no TLS 1.2 suite accepted"
        assert all(any(mark in name for mark in AEAD) for name in accepted), (
            f"{port_name} accepts non-AEAD suites on TLS 1.2: {accepted}"
        )
        assert "ECDHE-ECDSA-AES128-GCM-SHA256" in accepted, accepted
        assert all(name.startswith("ECDHE-") for name in accepted), accepted
        tls13 = _handshake(port, _client(ssl.TLSVersion.TLSv1_3))
        assert tls13 is not None and tls13.startswith("TLS_"), f"{port_name}: TLS 1.3 refused"
