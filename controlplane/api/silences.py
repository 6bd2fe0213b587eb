"""Acknowledge alerts, silence them by matcher, plan maintenance windows.

Reading is for viewers; every change is for operators and is audited.  The rules
(lengths, clashes, what is held) are in :mod:`controlplane.suppress_edits` and
:mod:`controlplane.suppress`.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from ..errors import BadRequest
from ..state import ControlPlane
from ..store.base import MaintenanceRecord
from ..suppress_edits import (
    acknowledge,
    add_silence,
    add_window,
    delete_silence,
    delete_window,
    span,
    unacknowledge,
)
from .deps import CP, Operator, Viewer
from .models import AckInfo, MaintenanceInfo, SilenceInfo
from .names import AgentRef, ConnectionName, LabelValue, PoolName
from .responses import errors

router = APIRouter()

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
AlertId = Annotated[str, Path(pattern=ID_PATTERN, description="an alert's id (GET /v1/alerts)")]
SilenceId = Annotated[str, Path(pattern=ID_PATTERN, description="a silence's id (sil_...)")]
WindowId = Annotated[str, Path(pattern=ID_PATTERN, description="a window's id (mnt_...)")]
Kind = Annotated[
    str,
    Field(pattern=r"^[a-z][a-z0-9_]{0,63}$", description="an alert kind, e.g. offline, stale"),
]
Epoch = Annotated[float, Field(ge=0, le=1e11, description="epoch seconds")]
Seconds = Annotated[float, Field(gt=0, le=1e9, description="seconds")]


class _Span(BaseModel):
    """When: ``starts_at`` (default now) and ``duration_s`` or ``ends_at``."""

    starts_at: Epoch | None = None
    duration_s: Seconds | None = None
    ends_at: Epoch | None = None
    reason: LabelValue = ""

    def span(self, cp: ControlPlane, what: str) -> tuple[float, float]:
        return span(
            time.time(),
            cp.settings.silence_max_s,
            starts_at=self.starts_at,
            duration_s=self.duration_s,
            ends_at=self.ends_at,
            what=what,
        )


class AckBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: LabelValue = ""
    expires_at: Epoch | None = None
    """The acknowledgement lapses then (default: it lasts while the alert is open)."""


class SilenceBody(_Span):
    """Matchers (at least one; all given must match exactly) and when."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [{"required": [m]} for m in ("agent", "pool", "connection", "kind")]
        },
    )

    agent: AgentRef | None = None
    """An agent's id or name."""
    pool: PoolName | None = None
    connection: ConnectionName | None = None
    kind: Kind | None = None


class MaintenanceBody(_Span):
    """An agent or a pool (one of them), and when."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"oneOf": [{"required": ["agent"]}, {"required": ["pool"]}]},
    )

    agent: AgentRef | None = None
    """An agent's id or name."""
    pool: PoolName | None = None


# ------------------------------------------------------------------ acks


@router.post("/v1/alerts/{alert_id}/ack", response_model=AckInfo, responses=errors(400, 403, 404))
async def ack_alert(alert_id: AlertId, body: AckBody, cp: CP, who: Operator) -> AckInfo:
    """Acknowledge an open alert: it stays shown (marked), repeat notifications stop."""
    return AckInfo.of(await acknowledge(cp.fleet, who, alert_id, body.note, body.expires_at))


@router.delete("/v1/alerts/{alert_id}/ack", response_model=AckInfo, responses=errors(403, 404))
async def unack_alert(alert_id: AlertId, cp: CP, who: Operator) -> AckInfo:
    """Take the acknowledgement back; answers with the one removed."""
    return AckInfo.of(await unacknowledge(cp.fleet, who, alert_id))


# -------------------------------------------------------------- silences


@router.get("/v1/silences", response_model=list[SilenceInfo], responses=errors(503))
async def list_silences(cp: CP, who: Viewer, all: bool = False) -> list[SilenceInfo]:
    """Active and pending silences (with ``all``, ended and deleted ones too)."""
    now = time.time()
    if not all:
        found = sorted(cp.fleet.suppression.silences.values(), key=lambda s: s.starts_at)
    else:
        found = await cp.store.list_silences(ended_after=None)
    return [SilenceInfo.of(s, now) for s in found]


@router.post("/v1/silences", response_model=SilenceInfo, responses=errors(400, 403))
async def create_silence(body: SilenceBody, cp: CP, who: Operator) -> SilenceInfo:
    start, end = body.span(cp, "silence")
    matchers = {
        "agent": body.agent,
        "pool": body.pool,
        "connection": body.connection,
        "kind": body.kind,
    }
    silence = await add_silence(
        cp.fleet, who, matchers=matchers, start=start, end=end, reason=body.reason
    )
    return SilenceInfo.of(silence, time.time())


@router.delete("/v1/silences/{silence_id}", response_model=SilenceInfo, responses=errors(403, 404))
async def remove_silence(silence_id: SilenceId, cp: CP, who: Operator) -> SilenceInfo:
    """End a silence now; answers with it, deleted."""
    return SilenceInfo.of(await delete_silence(cp.fleet, who, silence_id), time.time())


# ----------------------------------------------------------- maintenance


def _window_info(cp: ControlPlane, w: MaintenanceRecord, now: float) -> MaintenanceInfo:
    named = cp.fleet.agent_of(w.target) if w.scope == "agent" else None
    return MaintenanceInfo.of(w, now, named[0] if named else w.target)


@router.get("/v1/maintenance", response_model=list[MaintenanceInfo], responses=errors(503))
async def list_windows(cp: CP, who: Viewer, all: bool = False) -> list[MaintenanceInfo]:
    """Active and planned windows (with ``all``, ended and deleted ones too)."""
    now = time.time()
    if not all:
        found = sorted(cp.fleet.suppression.windows.values(), key=lambda w: w.starts_at)
    else:
        found = await cp.store.list_maintenance(ended_after=None)
    return [_window_info(cp, w, now) for w in found]


@router.post(
    "/v1/maintenance", response_model=MaintenanceInfo, responses=errors(400, 403, 404, 409)
)
async def create_window(body: MaintenanceBody, cp: CP, who: Operator) -> MaintenanceInfo:
    """Plan maintenance of an agent or a pool: its alerts (and a pool's minimum) are
    held back, shown as such, not notified."""
    scope: Literal["agent", "pool"]
    if (body.agent is None) == (body.pool is None):
        raise BadRequest("give an agent or a pool (one of them) for the maintenance window")
    if body.agent is not None:
        scope, target = "agent", cp.agent(body.agent).id
    else:
        assert body.pool is not None
        scope, target = "pool", body.pool
    start, end = body.span(cp, "maintenance window")
    window = await add_window(
        cp.fleet, who, scope=scope, target=target, start=start, end=end, reason=body.reason
    )
    return _window_info(cp, window, time.time())


@router.delete(
    "/v1/maintenance/{window_id}", response_model=MaintenanceInfo, responses=errors(403, 404)
)
async def remove_window(window_id: WindowId, cp: CP, who: Operator) -> MaintenanceInfo:
    """End a maintenance window now; answers with it, deleted."""
    return _window_info(cp, await delete_window(cp.fleet, who, window_id), time.time())
