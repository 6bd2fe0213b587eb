"""Durations, start times and names: one rule each, for the CLI, the API, the
dashboard and the config files.

Standard library only, so that the agent, the control plane and the dashboard may
all import it.
"""

from __future__ import annotations

import datetime as dt
import re

__all__ = [
    "LABEL_VALUE_MAX",
    "LABEL_VALUE_PATTERN",
    "NAME_MAX",
    "NAME_PATTERN",
    "NAME_RULE",
    "VERSION_MAX",
    "VERSION_PATTERN",
    "VERSION_RULE",
    "check_label_value",
    "check_name",
    "check_version",
    "count",
    "format_ago",
    "format_duration",
    "format_size",
    "parse_duration",
    "parse_start",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")

NAME_MAX = 64
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"
"""Names of agents, pools, operators, connections and label keys: letters, digits and
``._@-``, starting with a letter or digit, at most 64 characters.  Nothing that a
header, a file name, a log line or a shell could misread (no spaces, quotes, CR/LF,
``/``, ``;``)."""
NAME_RULE = f"1 to {NAME_MAX} letters, digits and . _ @ -, starting with a letter or digit"
""":data:`NAME_PATTERN` in words, for error messages and the API schema."""
_NAME = re.compile(NAME_PATTERN)

LABEL_VALUE_MAX = 256
"""Label values: at most this many printable characters (see :func:`check_label_value`)."""

VERSION_MAX = 64
VERSION_PATTERN = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"
"""A release version (``0.2.0``, ``0.3.0rc1``, ``1.0.0+build.7``): what the channel,
the API and the CLI accept, and a safe path segment (no ``/``, no spaces)."""
VERSION_RULE = (
    f"1 to {VERSION_MAX} letters, digits and . + _ -, starting with a letter or digit (e.g. 0.2.0)"
)
_VERSION = re.compile(VERSION_PATTERN)


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``90s``, ``30m``, ``24h``, ``7d``, ``1h30m``, ``500ms``.

    Raises:
        ValueError: with what is wrong and what to write instead; a bare number is
            refused, since ``30`` could mean seconds or minutes.
    """
    value = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", value):
        raise ValueError(f"{text!r} has no unit: write {value}s, {value}m, {value}h or {value}d")
    pos, total = 0, 0.0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise ValueError(f"{text!r} is not a duration: write e.g. 90s, 30m, 24h or 7d")
    return total


START_SLACK_S = 60.0
"""A start this far in the past is taken as now (a slow typist, a slow request); the
control plane allows the same."""

START_EXAMPLES = "+30m, 2026-05-01T14:00 (local time) or 2026-05-01T14:00Z"
""":func:`parse_start`'s forms, for help texts and placeholders."""


def parse_start(text: str, now: float) -> float:
    """Epoch seconds of a start time written ``now``, ``+30m`` (a delay, as
    :func:`parse_duration` reads it) or in ISO 8601: ``2026-05-01T14:00`` (local
    time), ``2026-05-01 14:00Z``, ``2026-05-01T14:00+02:00``.

    Args:
        text: What the user wrote.
        now: The time now, epoch seconds, for ``+30m`` and the check of the past.

    Raises:
        ValueError: with what is wrong and what to write instead: not a time, a
            time without a date, or a start more than :data:`START_SLACK_S` ago.
    """
    value = text.strip()
    if value.lower() == "now":
        return now
    if value.startswith("+"):
        try:
            return now + parse_duration(value[1:])
        except ValueError:
            raise ValueError(
                f"{text!r} is not a delay: write + and a duration, e.g. +30m, +2h or +1d"
            ) from None
    try:
        # A time without a zone is the local time, as ``date`` and cron read it.
        start = dt.datetime.fromisoformat(value).timestamp()
    except (ValueError, OverflowError, OSError):
        raise ValueError(_not_a_start(text, value, now)) from None
    if start < now - START_SLACK_S:
        shown = dt.datetime.fromtimestamp(start, dt.UTC).strftime("%Y-%m-%d %H:%MZ")
        raise ValueError(
            f"{text!r} is in the past ({shown}, {format_ago(start, now)}): give a later "
            "time, or none to start now"
        )
    return start


def _not_a_start(text: str, value: str, now: float) -> str:
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", value):
        today = dt.datetime.fromtimestamp(now).strftime("%Y-%m-%d")
        hhmm = value if value.index(":") == 2 else "0" + value
        return f"{text!r} has no date: write {today}T{hhmm} (local time), or a delay: +30m"
    if re.fullmatch(r"\d+(\.\d+)?(ms|s|m|h|d|w)\S*", value.lower()):
        return f"{text!r} is a duration: write +{value} to start in {value}"
    return f"{text!r} is not a start time: write now, {START_EXAMPLES}"


def format_duration(seconds: float) -> str:
    """The inverse of :func:`parse_duration`, to the largest whole units: ``1h30m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    rest = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


def format_size(size: float) -> str:
    """Bytes in binary units, to one decimal: ``512 B``, ``3.4 KiB``, ``64.0 MiB``."""
    if size < 1024:
        return f"{size:.0f} B"
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def format_ago(at: float | None, now: float) -> str:
    """``at`` (epoch seconds) relative to ``now``, to two units: ``3m20s ago``, ``in 2h``.

    ``-`` when ``at`` is None (never happened); ``now`` within a second is ``just now``.
    """
    if at is None:
        return "-"
    delta = now - at
    if abs(delta) < 1:
        return "just now"
    text = _two_units(abs(delta))
    return f"{text} ago" if delta > 0 else f"in {text}"


def _two_units(seconds: float) -> str:
    rest = round(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size and len(parts) < 2:
            parts.append(f"{rest // size}{unit}")
            rest %= size
        elif parts:
            break
    return "".join(parts)


def check_name(kind: str, name: str) -> str:
    """``name`` if it is a valid name for a ``kind`` (agent, pool, user, connection).

    Raises:
        ValueError: saying what is allowed.
    """
    if not _NAME.fullmatch(name):
        shown = name if len(name) <= 70 else name[:67] + "..."
        raise ValueError(f"{kind} name {shown!r} is not allowed: use {NAME_RULE}")
    return name


def check_version(version: str) -> str:
    """``version`` if it is a valid release version.

    Raises:
        ValueError: saying what is allowed.
    """
    if not _VERSION.fullmatch(version):
        shown = version if len(version) <= 70 else version[:67] + "..."
        raise ValueError(f"version {shown!r} is not allowed: use {VERSION_RULE}")
    return version


LABEL_VALUE_PATTERN = r"^[^\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]*$"
"""Label values: no C0 or C1 control characters (CR, LF, NUL, ESC...), no line or
paragraph separators and no bidirectional controls (which can make a terminal show
text other than what is stored).  The same pattern goes in the OpenAPI document."""
_LABEL_VALUE = re.compile(LABEL_VALUE_PATTERN)


def check_label_value(key: str, value: str) -> str:
    """``value`` if it may be the value of label ``key``.

    A label value is 0 to :data:`LABEL_VALUE_MAX` characters matching
    :data:`LABEL_VALUE_PATTERN`: spaces and any letter are fine; control characters,
    line separators and bidirectional controls are not.

    Raises:
        ValueError: saying what is allowed.
    """
    if len(value) > LABEL_VALUE_MAX or not _LABEL_VALUE.fullmatch(value):
        shown = value if len(value) <= 70 else value[:67] + "..."
        what = f"label {key!r} value" if key else "label value"
        raise ValueError(
            f"{what} {shown!r} is not allowed: use at most {LABEL_VALUE_MAX} "
            "characters, none of them a control character (CR, LF, NUL, ESC...), a line "
            "separator or a bidirectional control"
        )
    return value


def count(n: int, noun: str, plural: str | None = None) -> str:
    """``1 connection``, ``2 connections``, ``1,204 agents``: never "1 connections"."""
    word = noun if n == 1 else (plural or f"{noun}s")
    return f"{n:,} {word}"
