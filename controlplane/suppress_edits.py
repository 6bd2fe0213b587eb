"""Acknowledge, silence and plan maintenance: store, apply to the live fleet, audit.

The API routes are thin; the rules are here.  Every change is stored first (so it
survives a restart), then put in :attr:`Fleet.suppression`, then the alerts it
changes are published again, then audited.  Each ends by itself at its
``ends_at`` (the timers forget it and publish the alerts again) or early, by a
deletion, which keeps the row (``deleted_at``) for the record.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace
from typing import Literal

from .errors import BadRequest, Conflict, NotFound
from .fleet import Fleet
from .operators import Principal
from .store.base import AckRecord, MaintenanceRecord, SilenceRecord
from .suppress import until

__all__ = [
    "acknowledge",
    "add_silence",
    "add_window",
    "delete_silence",
    "delete_window",
    "span",
    "unacknowledge",
]

SLACK_S = 60.0
"""A start this far in the past is taken as now (a client's clock, a slow request)."""


def span(
    now: float,
    max_s: float,
    *,
    starts_at: float | None,
    duration_s: float | None,
    ends_at: float | None,
    what: str,
) -> tuple[float, float]:
    """(start, end) from a start (default now) and a duration or an end.

    Raises:
        BadRequest: neither or disagreeing duration and end; an end in the past;
            longer than ``max_s`` (the ``silence_max_s`` setting); a start beyond it.
    """
    start = now if starts_at is None else starts_at
    if start < now - SLACK_S:
        raise BadRequest(f"the {what} would start in the past; leave starts_at out to start now")
    start = max(start, now)
    if start - now > max_s:
        raise BadRequest(
            f"the {what} would start more than {max_s:.0f} s from now (silence_max_s); "
            "plan it nearer the time"
        )
    if duration_s is None and ends_at is None:
        raise BadRequest(f"say how long the {what} lasts: duration_s (seconds) or ends_at (epoch)")
    if duration_s is not None and duration_s <= 0:
        raise BadRequest(f"duration_s must be more than 0, not {duration_s}")
    end = start + duration_s if duration_s is not None else ends_at
    assert end is not None
    if duration_s is not None and ends_at is not None and abs(ends_at - end) > 1:
        raise BadRequest(
            f"duration_s and ends_at disagree (start + {duration_s:.0f} s is not ends_at): "
            "give one of them"
        )
    if end <= now:
        raise BadRequest(f"the {what} would end in the past ({until(end, now)}); give a later end")
    if end <= start:
        raise BadRequest(f"the {what} would end before it starts; give a later end")
    if end - start > max_s:
        raise BadRequest(
            f"the {what} would last {end - start:.0f} s, more than the {max_s:.0f} s the "
            "server allows (silence_max_s); make it shorter, and renew it if need be"
        )
    return start, end


async def acknowledge(
    fleet: Fleet, who: Principal, alert_id: str, note: str, expires_at: float | None
) -> AckRecord:
    """Acknowledge an open alert (again: replaces the earlier acknowledgement)."""
    who.require("operator")
    if alert_id not in fleet.published:
        raise NotFound(
            f"no open alert {alert_id!r} (cleared, or never raised); list open alerts "
            "with GET /v1/alerts"
        )
    now = time.time()
    if expires_at is not None and expires_at <= now:
        raise BadRequest("expires_at is in the past; leave it out to acknowledge until it clears")
    if expires_at is not None and expires_at - now > fleet.settings.silence_max_s:
        raise BadRequest(
            f"expires_at is more than {fleet.settings.silence_max_s:.0f} s away (silence_max_s)"
        )
    ack = AckRecord(alert_id, who.name, note, now, expires_at)
    await fleet.store.save_ack(ack)
    fleet.suppression.acks[alert_id] = ack
    await _changed(fleet, who, "alert.ack", f"alert:{alert_id}", note)
    return ack


async def unacknowledge(fleet: Fleet, who: Principal, alert_id: str) -> AckRecord:
    """Take an acknowledgement back: the alert is notified again."""
    who.require("operator")
    ack = fleet.suppression.acks.get(alert_id)
    if ack is None:
        raise NotFound(
            f"alert {alert_id!r} is not acknowledged; acknowledge it with "
            f"POST /v1/alerts/{alert_id}/ack"
        )
    await fleet.store.delete_ack(alert_id)
    fleet.suppression.acks.pop(alert_id, None)
    await _changed(fleet, who, "alert.unack", f"alert:{alert_id}", f"acked by {ack.acked_by}")
    return ack


def _matchers(s: SilenceRecord) -> str:
    pairs = (("agent", s.agent), ("pool", s.pool), ("connection", s.connection), ("kind", s.kind))
    return " ".join(f"{k}={v}" for k, v in pairs if v is not None)


async def add_silence(
    fleet: Fleet,
    who: Principal,
    *,
    matchers: dict[str, str | None],
    start: float,
    end: float,
    reason: str,
) -> SilenceRecord:
    """Silence the alerts that match every given matcher, from ``start`` to ``end``."""
    who.require("operator")
    if not any(matchers.values()):
        raise BadRequest(
            "a silence needs at least one matcher: agent, pool, connection or kind "
            "(a silence of everything would hide every incident)"
        )
    silence = SilenceRecord(
        id="sil_" + uuid.uuid4().hex[:12],
        starts_at=start,
        ends_at=end,
        reason=reason,
        created_by=who.name,
        created_at=time.time(),
        agent=matchers.get("agent"),
        pool=matchers.get("pool"),
        connection=matchers.get("connection"),
        kind=matchers.get("kind"),
    )
    await fleet.store.save_silence(silence)
    fleet.suppression.silences[silence.id] = silence
    detail = f"{_matchers(silence)} until {until(end, start)}: {reason}"
    await _changed(fleet, who, "silence.add", silence.id, detail)
    return silence


async def delete_silence(fleet: Fleet, who: Principal, silence_id: str) -> SilenceRecord:
    """End a silence early; its alerts are notified again."""
    who.require("operator")
    silence = fleet.suppression.silences.get(silence_id)
    if silence is None:
        raise NotFound(
            f"no active silence {silence_id!r} (ended, deleted or never made); "
            "list them with GET /v1/silences"
        )
    ended = replace(silence, deleted_at=time.time(), deleted_by=who.name)
    await fleet.store.save_silence(ended)
    del fleet.suppression.silences[silence_id]
    await _changed(fleet, who, "silence.delete", silence_id, _matchers(silence))
    return ended


async def add_window(
    fleet: Fleet,
    who: Principal,
    *,
    scope: Literal["agent", "pool"],
    target: str,
    start: float,
    end: float,
    reason: str,
) -> MaintenanceRecord:
    """Plan maintenance of an agent (its id) or a pool from ``start`` to ``end``."""
    who.require("operator")
    clash = [
        w
        for w in fleet.suppression.windows.values()
        if w.scope == scope and w.target == target and w.starts_at < end and start < w.ends_at
    ]
    if clash:
        raise Conflict(
            f"{scope} {target} already has maintenance {clash[0].id} until "
            f"{until(clash[0].ends_at, start)}; delete it (DELETE /v1/maintenance/"
            f"{clash[0].id}) and plan again, or pick another time"
        )
    window = MaintenanceRecord(
        id="mnt_" + uuid.uuid4().hex[:12],
        scope=scope,
        target=target,
        starts_at=start,
        ends_at=end,
        reason=reason,
        created_by=who.name,
        created_at=time.time(),
    )
    await fleet.store.save_maintenance(window)
    fleet.suppression.windows[window.id] = window
    detail = f"{window.id} until {until(end, start)}: {reason}"
    await _changed(fleet, who, "maintenance.add", f"{scope}:{target}", detail)
    return window


async def delete_window(fleet: Fleet, who: Principal, window_id: str) -> MaintenanceRecord:
    """End a maintenance window early."""
    who.require("operator")
    window = fleet.suppression.windows.get(window_id)
    if window is None:
        raise NotFound(
            f"no active maintenance window {window_id!r} (ended, deleted or never made); "
            "list them with GET /v1/maintenance"
        )
    ended = replace(window, deleted_at=time.time(), deleted_by=who.name)
    await fleet.store.save_maintenance(ended)
    del fleet.suppression.windows[window_id]
    target = f"{window.scope}:{window.target}"
    await _changed(fleet, who, "maintenance.delete", target, window_id)
    return ended


async def _changed(fleet: Fleet, who: Principal, action: str, target: str, detail: str) -> None:
    """After a change is stored and applied to the live view: the alerts it changes
    are published again, and it is audited."""
    fleet.refresh_suppression()
    await fleet.audit(who.name, action, target, "ok", detail)
