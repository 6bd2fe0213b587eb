"""One line per disconnect record, the same in ``fleet agents show`` and the dashboard.

Imports only the protocol and the unit formatters, so the CLI and the dashboard
(each with its own extras) both use it.
"""

from __future__ import annotations

import time

from .protocol import Disconnect
from .units import format_duration

__all__ = ["CAUSE_WORDS", "disconnect_line"]

CAUSE_WORDS: dict[str, str] = {
    "server_close": "closed by server",
    "ping_timeout": "ping timeout",
    "reset": "connection cut",
    "tls": "TLS error",
    "proxy": "proxy refused",
    "dns": "DNS failure",
    "refused": "refused",
    "timeout": "timed out",
    "sleep": "host slept",
    "stopped": "stopped",
    "other": "failed",
}
"""Each cause in a few words."""


def disconnect_line(record: Disconnect) -> str:
    """``2026-12-01 22:10:03Z  connection cut after 7s: connection closed ...``."""
    at = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(record.ended_at))
    what = CAUSE_WORDS.get(record.cause, record.cause)
    if record.age_s is not None:
        what += f" after {format_duration(record.age_s)}"
    if record.attempts > 1:
        what += f" ({record.attempts} attempts)"
    detail = f": {record.detail}" if record.detail else ""
    return f"{at}  {what}{detail}"
