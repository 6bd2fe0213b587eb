"""Create, change and delete connections, keeping routing, alerts and dashboards in step."""

from __future__ import annotations

import dataclasses
from functools import partial

from fleet.protocol import ConnectionInfo, ConnectionRemoved

from .errors import Conflict, NotFound
from .fleet import Fleet
from .operators import Principal
from .store.base import ConnectionRecord, ScheduleRecord

__all__ = ["create_connection", "delete_connection", "get_connection", "update_connection"]


def get_connection(fleet: Fleet, name: str) -> ConnectionRecord:
    """The connection ``name``, or a 404 that says how to list them."""
    rec = fleet.connections.get(name)
    if rec is None:
        raise NotFound(
            f"no connection {name!r}; list them with GET /v1/connections (fleet connections list)"
        )
    return rec


async def create_connection(
    fleet: Fleet, actor: Principal, rec: ConnectionRecord
) -> ConnectionInfo:
    """Add a connection; a name in use is a 409 that says to update it instead."""
    actor.require("admin")
    exists = Conflict(
        f"connection {rec.name} exists; change it with PATCH /v1/connections/{rec.name} "
        f"(fleet connections update {rec.name})"
    )
    if rec.name in fleet.connections:
        await fleet.audit(actor.name, "connection.create", rec.name, "refused", "exists")
        raise exists
    try:
        info = await fleet.add_connection(rec)
    except Conflict:  # a concurrent create won the race to the store
        await fleet.audit(actor.name, "connection.create", rec.name, "refused", "exists")
        raise exists from None
    await fleet.audit(actor.name, "connection.create", rec.name, "ok", f"{rec.host}:{rec.port}")
    return info


async def update_connection(
    fleet: Fleet,
    actor: Principal,
    name: str,
    host: str | None,
    port: int | None,
    pools: list[str] | None,
    schedules: list[ScheduleRecord] | None = None,
) -> ConnectionInfo:
    """Change some of a connection's fields; routing is recomputed and published."""
    actor.require("admin")
    try:
        old = get_connection(fleet, name)
    except NotFound:
        await fleet.audit(actor.name, "connection.update", name, "refused", "unknown")
        raise
    new = dataclasses.replace(
        old,
        host=old.host if host is None else host,
        port=old.port if port is None else port,
        pools=old.pools if pools is None else list(pools),
        schedules=old.schedules if schedules is None else list(schedules),
    )
    await fleet.store.update_connection(new)
    fleet.connections[name] = new
    fleet.route_connection(new)
    changes = [
        f"{field} {_text(getattr(old, field))} -> {_text(getattr(new, field))}"
        for field in ("host", "port", "pools", "schedules")
        if getattr(old, field) != getattr(new, field)
    ]
    await fleet.audit(
        actor.name, "connection.update", name, "ok", "; ".join(changes) or "no change"
    )
    return fleet.connection_state[name]


async def delete_connection(fleet: Fleet, actor: Principal, name: str) -> ConnectionRecord:
    """Delete a connection, clear its alerts and tell dashboards to drop it."""
    actor.require("admin")
    try:
        rec = get_connection(fleet, name)
    except NotFound:
        await fleet.audit(actor.name, "connection.delete", name, "refused", "unknown")
        raise
    await fleet.store.delete_connection(name)
    del fleet.connections[name]
    fleet.connection_state.pop(name, None)
    fleet.via.pop(name, None)
    fleet.schedule_watch.forget(name)
    fleet.publish_alerts([], fleet.alerts.clear_target(f"connection:{name}"))
    await fleet.settle_alerts()  # cleared before dashboards drop the connection
    fleet.bus.publish(partial(_removed, name))
    await fleet.audit(actor.name, "connection.delete", name, "ok", f"{rec.host}:{rec.port}")
    return rec


def _removed(name: str, seq: int) -> ConnectionRemoved:
    return ConnectionRemoved(seq=seq, name=name)


def _text(value: object) -> str:
    """A field for the audit log: lists as ``a, b``, schedules as ``cron@zone``."""
    if isinstance(value, list):
        return (
            ", ".join(
                f"{v.cron}@{v.timezone}" if isinstance(v, ScheduleRecord) else str(v) for v in value
            )
            or "none"
        )
    return str(value)
