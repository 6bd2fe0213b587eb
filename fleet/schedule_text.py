"""Schedules as people type them: ``[NAME=]CRON[@ZONE]``, shared by the CLI and the dashboard.

Only the shape is read here; the control plane checks the cron expression and the
time zone and says what is wrong (422), so the rule lives in one place.
"""

from __future__ import annotations

from typing import Any

__all__ = ["format_schedule", "parse_schedule", "parse_schedules"]

EXAMPLE = "0 14 * * *@Europe/Berlin"


def parse_schedule(text: str) -> dict[str, Any]:
    """``nightly=0 14 * * *@Europe/Berlin`` -> ``{"cron", "timezone", "name"}``.

    The zone defaults to UTC; a macro alone (``@daily``) is a cron, not a zone.

    Raises:
        ValueError: no cron expression, with an example.
    """
    name: str | None = None
    rest = text.strip()
    head, eq, tail = rest.partition("=")
    if eq and " " not in head.strip():
        name, rest = head.strip() or None, tail.strip()
    cron, at, zone = rest.rpartition("@")
    if not at or not cron.strip():
        cron, zone = rest, "UTC"
    if not cron.strip():
        raise ValueError(f"{text!r} has no cron expression: write e.g. '{EXAMPLE}'")
    return {"cron": cron.strip(), "timezone": zone.strip() or "UTC", "name": name}


def parse_schedules(text: str) -> list[dict[str, Any]]:
    """Several schedules on one line, separated by ``;`` (the dashboard's field)."""
    return [parse_schedule(part) for part in text.split(";") if part.strip()]


def format_schedule(cron: str, timezone: str, name: str | None = None) -> str:
    """The inverse of :func:`parse_schedule`."""
    text = f"{cron}@{timezone}"
    return f"{name}={text}" if name else text
