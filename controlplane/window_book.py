"""Each pool's maintenance and freeze windows: kept as documents, read as rules.

The windows of a pool are one document (kind ``pool_windows``, keyed by pool),
replaced whole by an admin.  They are kept as written (weekday names, ``HH:MM``,
ISO times) and parsed here, by the one parser the API's validation also calls,
into the :mod:`controlplane.windows` values the rules read.

A freeze refuses changes (pins, rollout starts and resumes) with 409 naming the
window and when it ends, audited; the windows themselves stay editable, so that
a freeze set by mistake can be lifted.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .errors import Conflict
from .schedules import zone_error, zone_of
from .store.base import Store
from .windows import WEEKDAYS, Absolute, Hold, Recurring, Window, hold

__all__ = ["KIND", "PoolWindows", "WindowBook", "parse_time", "parse_window"]

KIND = "pool_windows"
"""The store's document kind (keyed by pool)."""

Audit = Callable[[str, str, str, str, str], Awaitable[None]]


def parse_time(text: str, timezone: str) -> float:
    """An ISO 8601 time as Unix time; one without an offset is read in ``timezone``.

    Raises:
        ValueError: not an ISO time (the message shows one).
    """
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO time; write e.g. 2026-11-27T00:00:00+01:00"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone_of(timezone) or dt.UTC)
    return value.timestamp()


def parse_window(body: dict[str, Any]) -> Window:
    """A window as written (the API's JSON) to the value the rules read.

    Raises:
        ValueError: what is wrong, in words.
    """
    timezone = str(body.get("timezone") or "UTC")
    problem = zone_error(timezone)
    if problem is not None:
        raise ValueError(problem)
    name = str(body["name"])
    if "from" in body or "until" in body:
        starts, ends = (
            parse_time(str(body["from"]), timezone),
            parse_time(str(body["until"]), timezone),
        )
        if ends <= starts:
            raise ValueError(f"window {name}: 'until' must come after 'from'")
        return Absolute(name, starts, ends, timezone)
    hour, _, minute = str(body["start"]).partition(":")
    days = sorted({WEEKDAYS.index(str(day)) for day in body["weekdays"]})
    return Recurring(name, tuple(days), int(hour), int(minute), float(body["duration_s"]), timezone)


@dataclass(frozen=True)
class PoolWindows:
    """A pool's windows, as written and as parsed."""

    pool: str
    maintenance: list[dict[str, Any]]
    freezes: list[dict[str, Any]]
    set_at: float
    set_by: str

    def parsed(self) -> tuple[list[Window], list[Window]]:
        return [parse_window(w) for w in self.maintenance], [parse_window(w) for w in self.freezes]


class WindowBook:
    """Every pool's windows, in memory, with the store behind.

    Args:
        store: where each pool's windows are kept.
        audit: ``audit(actor, action, target, result, detail)``.
    """

    def __init__(self, store: Store, audit: Audit) -> None:
        self.store = store
        self.audit = audit
        self._written: dict[str, PoolWindows] = {}
        self._rules: dict[str, tuple[list[Window], list[Window]]] = {}

    async def load(self) -> None:
        for _pool, body in await self.store.list_documents(KIND):
            try:
                self._keep(PoolWindows(**body))
            except (TypeError, KeyError, ValueError):
                continue  # written by another version: the pool has none until set again

    def _keep(self, windows: PoolWindows) -> None:
        rules = windows.parsed()
        self._written[windows.pool] = windows
        self._rules[windows.pool] = rules

    def of(self, pool: str) -> PoolWindows | None:
        """The windows of ``pool`` as written, or None if it has none."""
        return self._written.get(pool)

    def rules(self, pool: str) -> tuple[list[Window], list[Window]]:
        """(maintenance, freezes) of ``pool``, parsed."""
        return self._rules.get(pool, ([], []))

    def hold(self, pool: str, now: float | None = None) -> Hold | None:
        """Why a change to ``pool`` must wait now (a freeze, or outside its maintenance
        windows when it has any), else None."""
        maintenance, freezes = self.rules(pool)
        return hold(maintenance, freezes, time.time() if now is None else now)

    def freeze(self, pool: str, now: float | None = None) -> Hold | None:
        """The freeze holding ``pool`` now, else None (maintenance windows aside)."""
        return hold([], self.rules(pool)[1], time.time() if now is None else now)

    async def put(
        self, pool: str, maintenance: list[dict[str, Any]], freezes: list[dict[str, Any]], by: str
    ) -> PoolWindows:
        """Replace the windows of ``pool`` (checked by :func:`parse_window` first)."""
        windows = PoolWindows(pool, maintenance, freezes, time.time(), by)
        windows.parsed()  # raises before anything is stored
        if maintenance or freezes:
            await self.store.put_document(KIND, pool, _body(windows), windows.set_at)
            self._keep(windows)
        else:
            await self.store.delete_document(KIND, pool)
            self._written.pop(pool, None)
            self._rules.pop(pool, None)
        return windows

    async def refuse_if_frozen(self, actor: str, action: str, target: str, pool: str) -> None:
        """Raise :class:`Conflict` (audited as refused) while a freeze holds ``pool``."""
        frozen = self.freeze(pool)
        if frozen is None:
            return
        why = f"pool {pool} is {frozen.text}"
        await self.audit(actor, action, target, "refused", why)
        raise Conflict(
            f"{why}: pins and rollouts cannot change during a freeze; wait until it ends, "
            f"or an admin changes the freezes (PUT /v1/pools/{pool}/windows)"
        )


def _body(windows: PoolWindows) -> dict[str, Any]:
    return {
        "pool": windows.pool,
        "maintenance": windows.maintenance,
        "freezes": windows.freezes,
        "set_at": windows.set_at,
        "set_by": windows.set_by,
    }
