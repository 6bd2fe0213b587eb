"""TLS for the dashboard: trust a CA file, or fetch the CA and check it against a pin."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from fleet.pins import pins_equal, spki_pin

from ..errors import ConfigError, TlsPinMismatch

__all__ = ["fetch_pinned_ca", "make_ssl_context"]


def fetch_pinned_ca(server_url: str, pin: str, timeout: float = 10.0) -> str:
    """Fetch ``/v1/ca`` without verification and return its PEM if it matches ``pin``."""
    import httpx

    try:
        resp = httpx.get(
            server_url.rstrip("/") + "/v1/ca",
            verify=False,  # noqa: S501 - checked against the pin below
            timeout=timeout,
        )
        resp.raise_for_status()
    except httpx.HTTPError as exc:
        raise ConfigError(f"could not fetch the CA from {server_url}: {exc}") from None
    pem = resp.text
    try:
        got = spki_pin(pem)
    except ValueError as exc:
        raise ConfigError(f"{server_url}/v1/ca sent no readable CA certificate: {exc}") from None
    if not pins_equal(got, pin):
        raise TlsPinMismatch(
            f"the server's CA has pin {got}, not {pin}: check the pin, or you may be "
            "talking to the wrong server"
        )
    return pem


def make_ssl_context(
    server_url: str, ca_file: str | Path | None = None, ca_pin: str | None = None
) -> ssl.SSLContext | None:
    """The client TLS context for ``server_url``, or None for plain ``http``.

    With neither ``ca_file`` nor ``ca_pin`` the system trust store is used.
    """
    if urlsplit(server_url).scheme not in ("https", "wss"):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if ca_file is not None:
        try:
            ctx.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot use CA file {ca_file}: {exc}") from None
    elif ca_pin is not None:
        ctx.load_verify_locations(cadata=fetch_pinned_ca(server_url, ca_pin))
    return ctx
