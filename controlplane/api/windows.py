"""A pool's maintenance and freeze windows: ``PUT/GET /v1/pools/{pool}/windows``."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    model_validator,
)

from ..schedules import zone_error
from ..window_book import PoolWindows, WindowBook, parse_time
from ..windows import maintenance_open, next_start
from .deps import CP, Admin, Viewer
from .names import PoolName
from .responses import errors

__all__ = ["WindowsBody", "WindowsInfo", "info", "router"]

router = APIRouter()

MAX_WINDOWS = 20
"""At most this many maintenance windows, and as many freezes, per pool."""

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _zone(value: str) -> str:
    problem = zone_error(value)
    if problem is not None:
        raise ValueError(problem)
    return value


TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, description="an IANA time zone, e.g. Europe/Berlin"),
    AfterValidator(_zone),
]
WindowName = Annotated[
    str,
    Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"),
]


class RecurringWindow(BaseModel):
    """Opens on ``weekdays`` at ``start`` (wall clock in ``timezone``) for ``duration_s``."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: WindowName
    weekdays: list[Weekday] = Field(min_length=1, max_length=7)
    start: str = Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="HH:MM")
    duration_s: float = Field(gt=0, le=7 * 86400, description="seconds of real time")
    timezone: TimeZone = "UTC"


class AbsoluteWindow(BaseModel):
    """A window from one time until another, once (ISO 8601; without an offset, read
    in ``timezone``, which also says how the times are told)."""

    model_config = ConfigDict(strict=True, extra="forbid", populate_by_name=True)

    name: WindowName
    from_: str = Field(alias="from", min_length=1, max_length=64, description="ISO 8601 time")
    until: str = Field(min_length=1, max_length=64, description="ISO 8601 time, after from")
    timezone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _ordered(self) -> AbsoluteWindow:
        if parse_time(self.until, self.timezone) <= parse_time(self.from_, self.timezone):
            raise ValueError(f"window {self.name}: 'until' must come after 'from'")
        return self


def _form(value: Any) -> str:
    # Told apart by their fields, so a refusal names the fields of the form meant.
    if isinstance(value, AbsoluteWindow):
        return "absolute"
    fields = value if isinstance(value, dict) else {}
    return "absolute" if "from" in fields or "until" in fields else "recurring"


AnyWindow = Annotated[
    Annotated[RecurringWindow, Tag("recurring")] | Annotated[AbsoluteWindow, Tag("absolute")],
    Discriminator(_form),
]
"""A window: recurring (weekdays, start, duration), or once (from, until)."""


class WindowsBody(BaseModel):
    """Every window of a pool: this replaces what it had (empty lists remove them)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    maintenance: list[AnyWindow] = Field(default_factory=list, max_length=MAX_WINDOWS)
    freezes: list[AnyWindow] = Field(default_factory=list, max_length=MAX_WINDOWS)

    @model_validator(mode="after")
    def _unique(self) -> WindowsBody:
        names = [w.name for w in [*self.maintenance, *self.freezes]]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"window names must differ; given twice: {', '.join(twice)}")
        return self


class WindowsInfo(BaseModel):
    """A pool's windows as set, and what they mean now."""

    pool: str
    maintenance: list[dict[str, Any]]
    freezes: list[dict[str, Any]]
    set_at: float | None
    set_by: str | None
    frozen: bool
    """A freeze holds the pool now: pins and rollouts cannot change."""
    frozen_by: str | None
    frozen_until: float | None
    in_maintenance: bool | None
    """Inside a maintenance window now (null: the pool has none, so any time is)."""
    maintenance_until: float | None
    """When the open maintenance window closes."""
    next_maintenance_at: float | None
    """When the next maintenance window opens, outside one."""
    hold: str | None
    """Why a rollout of the pool would wait now, in words (null: it would not)."""


def info(book: WindowBook, pool: str, now: float | None = None) -> WindowsInfo:
    """The windows of ``pool`` and their meaning at ``now``."""
    now = time.time() if now is None else now
    written = book.of(pool) or PoolWindows(pool, [], [], 0.0, "")
    maintenance, _ = book.rules(pool)
    frozen = book.freeze(pool, now)
    held = book.hold(pool, now)
    open_now = maintenance_open(maintenance, now)
    upcoming = [s for w in maintenance if (s := next_start(w, now)) is not None]
    return WindowsInfo(
        pool=pool,
        maintenance=written.maintenance,
        freezes=written.freezes,
        set_at=written.set_at or None,
        set_by=written.set_by or None,
        frozen=frozen is not None,
        frozen_by=frozen.window.name if frozen and frozen.window else None,
        frozen_until=frozen.until if frozen else None,
        in_maintenance=(open_now is not None) if maintenance else None,
        maintenance_until=open_now[1] if open_now else None,
        next_maintenance_at=min(upcoming) if upcoming and open_now is None else None,
        hold=held.text if held else None,
    )


def summary(windows: PoolWindows) -> str:
    """The windows in one line, for the audit."""
    parts = []
    for kind, items in (("maintenance", windows.maintenance), ("freeze", windows.freezes)):
        parts += [f"{kind} {w['name']}" for w in items]
    return ", ".join(parts) or "none"


@router.put("/v1/pools/{pool}/windows", response_model=WindowsInfo, responses=errors(403, 422))
async def set_windows(pool: PoolName, body: WindowsBody, cp: CP, who: Admin) -> WindowsInfo:
    """Replaces the pool's windows (allowed during a freeze, so that one set by
    mistake can be lifted)."""
    dumped = body.model_dump(by_alias=True)
    written = await cp.windows.put(pool, dumped["maintenance"], dumped["freezes"], who.name)
    await cp.fleet.audit(who.name, "pool.windows", f"pool:{pool}", "ok", summary(written))
    return info(cp.windows, pool)


@router.get("/v1/pools/{pool}/windows", response_model=WindowsInfo, responses=errors(422))
async def show_windows(pool: PoolName, cp: CP, who: Viewer) -> WindowsInfo:
    """The pool's windows (empty lists when it has none) and whether they hold it now."""
    return info(cp.windows, pool)
