"""TLS for the dashboard: trust a CA file, or fetch the CA and check it against a pin."""

from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlsplit

from ..errors import ConfigError, TlsPinMismatch

__all__ = ["fetch_pinned_ca", "make_ssl_context"]


def fetch_pinned_ca(server_url: str, pin: str, timeout: float = 10.0) -> str:
    """Fetch ``/v1/ca`` without verification and return its PEM if it matches ``pin``.

    :func:`fleet.ctl.trust.fetch_pinned_ca`, with the dashboard's errors.
    """
    from fleet.ctl.errors import CtlError, PinMismatchError
    from fleet.ctl.trust import fetch_pinned_ca as fetch

    try:
        return fetch(server_url, pin, timeout)
    except PinMismatchError as exc:
        raise TlsPinMismatch(str(exc)) from None
    except CtlError as exc:
        raise ConfigError(str(exc)) from None


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
