"""The ``store`` setting: empty for SQLite in the data directory, or a PostgreSQL URL.

Only the standard library: the settings and the command line read it without
loading a database driver.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["SCHEMES", "check_store_url", "has_password", "redact"]

SCHEMES = ("postgresql", "postgres")
"""URL schemes of the PostgreSQL store (libpq's two)."""

_PASSWORD_KEYS = ("password",)
"""Query parameters that carry a password (libpq's ``?password=``)."""


def _split(url: str) -> tuple[str, str, str, str]:
    """``(scheme, userinfo, hosts, rest)`` without parsing ports: libpq URLs may name
    several hosts (``h1:5432,h2:5432``), which :func:`urlsplit` refuses to parse."""
    parts = urlsplit(url)
    userinfo, _, hosts = parts.netloc.rpartition("@")
    return parts.scheme, userinfo, hosts, url[len(parts.scheme) + 3 + len(parts.netloc) :]


def check_store_url(value: str) -> str:
    """``value`` if it is a usable ``store`` setting, stripped.

    Raises:
        ValueError: neither empty nor a ``postgresql://`` URL naming a database.
    """
    value = value.strip()
    if not value:
        return value
    scheme, _, hosts, rest = _split(value)
    if scheme.lower() not in SCHEMES or not value.lower().startswith(f"{scheme.lower()}://"):
        raise ValueError(
            "must be empty (SQLite in the data directory) or a PostgreSQL URL "
            "postgresql://USER@HOST:PORT/DATABASE"
        )
    database = rest.split("?", 1)[0].lstrip("/")
    if not hosts or not database:
        raise ValueError(
            f"{redact(value)} must name a host and a database: postgresql://USER@HOST:PORT/DATABASE"
        )
    return value


def has_password(url: str) -> bool:
    """Whether ``url`` carries a password (``user:secret@`` or ``?password=``)."""
    _, userinfo, _, rest = _split(url)
    query = rest.split("?", 1)[1] if "?" in rest else ""
    return ":" in userinfo or any(k in _PASSWORD_KEYS for k, _ in parse_qsl(query))


def redact(url: str) -> str:
    """``url`` without its password, to show in a banner, a log or an error."""
    if not url:
        return url
    parts = urlsplit(url)
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = f"{userinfo.partition(':')[0]}{at}{hosts}"
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k not in _PASSWORD_KEYS])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
