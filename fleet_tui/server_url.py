"""The control plane's URL, checked before anything dials it.

A URL without a scheme (``127.0.0.1:8443``) used to reach the websocket library
and end as "dashboard error: InvalidURI … please report it"; a typo of the
user's deserves the fix instead.
"""

from __future__ import annotations

from typing import NoReturn
from urllib.parse import urlsplit

from .errors import ConfigError

__all__ = ["check_server_url"]

_EXAMPLE = "https://127.0.0.1:8443"


def check_server_url(url: str) -> str:
    """``url`` without a trailing slash; raises :class:`ConfigError` saying the fix."""
    url = url.strip().rstrip("/")
    if "://" not in url:
        _fail(
            url,
            f"it has no scheme: write https://{url} (the control plane speaks TLS "
            "unless it was started with --no-tls: then http://)",
        )
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError as exc:
        _fail(url, f"{exc}; write it as {_EXAMPLE}")
    if parts.scheme not in ("https", "http"):
        _fail(url, f"the scheme must be https:// (or http://), not {parts.scheme}://")
    if not parts.hostname:
        _fail(url, f"it names no host; write it as {_EXAMPLE}")
    if parts.query or parts.fragment or parts.username or parts.password:
        _fail(url, f"give only the scheme, host and port, as in {_EXAMPLE}")
    return url


def _fail(url: str, why: str) -> NoReturn:
    raise ConfigError(f"--server {url!r} is not a control plane URL: {why}")
