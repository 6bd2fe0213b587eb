"""STAND-IN, to be replaced by the releases API (branch ``releasesapi``) once it is
on main: the few routes the agent's upgrade tests need, with the contract of the
design (docs: /work/notes/i10-design.md).

* ``PUT /v1/releases/{version}`` (admin): the raw wheel, kept by the ReleaseBook;
* ``GET /v1/releases/{version}/download``: a download token of that version, or
  an operator's API token; ``Range: bytes=N-`` answered 206 with ``Content-Range``;
* ``POST /v1/agents/{id}/upgrade {version, deadline_s}`` (admin), ``rollback
  {reason}`` (admin), ``restart {reason}`` and ``renew {reason}`` (operator):
  the agent's own result, or 409 with its refusal.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from fleet.protocol import CommandFinished, to_builtins

from ..errors import BadRequest, Conflict
from ..live import LiveAgent
from ..state import ControlPlane
from .deps import CP, Admin, Operator, authorize
from .names import AgentRef
from .responses import errors

__all__ = ["router"]

router = APIRouter()

_VERSION = r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$"
_RANGE = re.compile(r"^bytes=(\d+)-$")


class UpgradeBody(BaseModel):
    model_config = ConfigDict(strict=True)

    version: str = Field(pattern=_VERSION)
    deadline_s: float | None = Field(default=None, gt=0, le=3600)


class ReasonBody(BaseModel):
    model_config = ConfigDict(strict=True)

    reason: str = Field(default="", max_length=300)


@router.put("/v1/releases/{version}", responses=errors(400, 403, 409))
async def put_release(version: str, request: Request, cp: CP, who: Admin) -> dict[str, Any]:
    """Keep the raw wheel in the body as release ``version``."""
    if not re.match(_VERSION, version):
        raise BadRequest(f"{version!r} is not a version")
    cap = cp.settings.release_max_bytes
    directory = cp.releases.directory
    upload = directory / f".upload-{os.urandom(8).hex()}"
    size = 0
    try:
        with upload.open("wb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > cap:
                    raise BadRequest(f"the release is over release_max_bytes ({cap})")
                out.write(chunk)
        release = await cp.releases.add(version, upload, f"{version}.whl", who.name)
    finally:
        upload.unlink(missing_ok=True)
    await cp.fleet.audit(who.name, "release.add", version, "ok", release.sha256)
    return {"version": release.version, "sha256": release.sha256, "size": release.size}


def _allowed(request: Request, cp: ControlPlane, version: str) -> None:
    header = request.headers.get("authorization") or ""
    token = header.removeprefix("Bearer ").strip()
    if token and cp.releases.check_token(token, version) is not None:
        return
    authorize(request, "operator", hint="or a download token of this version")


async def _chunks(path: Path, start: int) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        handle.seek(start)
        while chunk := handle.read(256 * 1024):
            yield chunk


@router.get("/v1/releases/{version}/download", responses=errors(403, 404))
async def download(version: str, request: Request, cp: CP) -> Response:
    """The release file; ``Range: bytes=N-`` resumes."""
    _allowed(request, cp, version)
    release = cp.releases.get(version)
    path = cp.releases.path(release)
    start = 0
    asked = _RANGE.match(request.headers.get("range", ""))
    if asked:
        start = int(asked.group(1))
        if start >= release.size:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{release.size}"})
    headers = {
        "Content-Length": str(release.size - start),
        "ETag": f'"{release.sha256}"',
        "Accept-Ranges": "bytes",
    }
    status = 200
    if asked:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{release.size - 1}/{release.size}"
    return StreamingResponse(
        _chunks(path, start),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )


def _answer(result: CommandFinished, agent: LiveAgent) -> Any:
    if result.error is not None:
        raise Conflict(
            f"agent {agent.record.name} refused ({result.error.code}): {result.error.message}"
        )
    return to_builtins(result.result)


@router.post("/v1/agents/{agent_id}/upgrade", responses=errors(400, 403, 404, 409))
async def upgrade(agent_id: AgentRef, body: UpgradeBody, cp: CP, who: Admin) -> Any:
    agent = cp.agent(agent_id)
    return _answer(await cp.upgrades.upgrade(who, agent, body.version, body.deadline_s), agent)


@router.post("/v1/agents/{agent_id}/rollback", responses=errors(403, 404, 409))
async def rollback(agent_id: AgentRef, body: ReasonBody, cp: CP, who: Admin) -> Any:
    agent = cp.agent(agent_id)
    reason = body.reason or f"asked by {who.name}"
    return _answer(await cp.upgrades.rollback(who, agent, reason), agent)


@router.post("/v1/agents/{agent_id}/restart", responses=errors(403, 404, 409))
async def restart(agent_id: AgentRef, body: ReasonBody, cp: CP, who: Operator) -> Any:
    agent = cp.agent(agent_id)
    reason = body.reason or f"asked by {who.name}"
    return _answer(await cp.upgrades.restart(who, agent, reason), agent)


@router.post("/v1/agents/{agent_id}/renew", responses=errors(403, 404, 409))
async def renew(agent_id: AgentRef, body: ReasonBody, cp: CP, who: Operator) -> Any:
    agent = cp.agent(agent_id)
    reason = body.reason or f"asked by {who.name}"
    return _answer(await cp.upgrades.renew(who, agent, reason), agent)
