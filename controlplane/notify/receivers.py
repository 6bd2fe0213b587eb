"""The receivers of notifications, as the server config file declares them.

In ``server.toml``::

    [[receivers]]
    name = "oncall"
    kind = "alertmanager"
    url = "http://127.0.0.1:9093"

    [[receivers]]
    name = "ci-hook"
    kind = "webhook"
    url = "https://hooks.example.com/fleet"
    secret_file = "/etc/fleet/ci-hook.secret"   # 0600; the secret never goes in this file

A webhook's signing secret is read from ``secret_file``, a file only its owner may
read (like every key file): the config file, argv and logs never hold it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from fleet.files import check_private

__all__ = ["KINDS", "Receiver", "read_secret", "shown_url"]

KINDS = ("alertmanager", "webhook", "slack")


def shown_url(url: str, kind: str = "") -> str:
    """``url`` without what may be secret: userinfo and query always, and the path of a
    Slack webhook (its path is the token)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    path = "/…" if kind == "slack" and parts.path not in ("", "/") else parts.path
    return urlunsplit((parts.scheme, netloc, path, "", ""))


class Receiver(BaseModel):
    """One receiver: where alerts go and in which dialect."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    kind: Literal["alertmanager", "webhook", "slack"]
    url: str = Field(min_length=1)
    """Alertmanager: its base URL (``/api/v2/alerts`` is added); others: the URL to POST."""
    secret_file: Path | None = None
    """webhook only: the file holding the HMAC secret (mode 0600)."""

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"url {shown_url(value)!r} must be an http:// or https:// URL with a host"
            )
        return value.strip()

    @model_validator(mode="after")
    def _secret(self) -> Self:
        if self.kind == "webhook":
            if self.secret_file is None:
                raise ValueError(
                    f"receiver {self.name!r}: a webhook needs secret_file, a 0600 file "
                    "holding its signing secret (e.g. made with "
                    "`openssl rand -hex 32 > FILE; chmod 600 FILE`)"
                )
            read_secret(self.secret_file, self.name)
        elif self.secret_file is not None:
            raise ValueError(f"receiver {self.name!r}: secret_file is for webhooks only; drop it")
        return self

    @property
    def shown_url(self) -> str:
        return shown_url(self.url, self.kind)

    def shown(self) -> dict[str, str]:
        """As ``--print-config`` shows it: the URL without its secret parts."""
        out = {"name": self.name, "kind": self.kind, "url": self.shown_url}
        if self.secret_file is not None:
            out["secret_file"] = str(self.secret_file)
        return out


def read_secret(path: Path, name: str) -> bytes:
    """The signing secret in ``path``, checked private; a clear error if it is not usable."""
    try:
        check_private(path)
        secret = path.read_bytes().strip()
    except FileNotFoundError:
        raise ValueError(f"receiver {name!r}: secret_file {path} does not exist") from None
    except PermissionError as exc:
        raise ValueError(f"receiver {name!r}: {exc}") from None
    except OSError as exc:
        raise ValueError(f"receiver {name!r}: cannot read {path}: {exc.strerror}") from None
    if len(secret) < 16:
        raise ValueError(
            f"receiver {name!r}: the secret in {path} is shorter than 16 bytes; "
            "make a longer one (`openssl rand -hex 32`)"
        )
    return secret
