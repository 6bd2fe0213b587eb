"""Agent releases: upload, list, show, remove, and download (by agents, with a token).

An upload is the raw wheel as the body (``application/octet-stream``), streamed
to a file under ``DATA/releases`` and refused with 413 from its
``Content-Length``, or as soon as the bytes passed ``release_max_bytes``, never
held in memory. :class:`~controlplane.releases.ReleaseBook` checks it, keeps it
under its hash and signs it. Every change and every refusal is audited.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials
from starlette.requests import ClientDisconnect

from fleet.protocol import RELEASES_PATH
from fleet.units import format_size

from ..errors import (
    BadRequest,
    FleetError,
    NotFound,
    PayloadTooLarge,
    TooManyRequests,
    Unauthenticated,
)
from ..releases import DOWNLOAD_PREFIX
from ..state import ControlPlane
from .deps import CP, Admin, Viewer, authorize, bearer
from .headers import attachment
from .models import ReleaseInfo
from .names import ReleaseVersion
from .ranges import FileStream, file_response, ranged_responses
from .responses import errors

__all__ = ["receive_upload", "router"]

router = APIRouter()
log = logging.getLogger("controlplane.api")

FLUSH_BYTES = 1 << 20
"""An upload is written to its file in pieces of about this size, off the event loop."""

FILENAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$"

_WHEEL_BODY = {
    "requestBody": {
        "required": True,
        "description": "The wheel itself (`pip wheel --no-deps .`), at most the "
        "server's release_max_bytes",
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


def _too_big(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the release is over {limit} bytes ({format_size(limit)}), the server's "
        "release_max_bytes: build a smaller wheel, or raise the cap "
        "(fleet server --set release_max_bytes=BYTES)"
    )


async def receive_upload(request: Request, target: Path, limit: int) -> int:
    """Stream the body of ``request`` into ``target``; its size.

    Raises:
        PayloadTooLarge: ``Content-Length`` says more than ``limit``, or more than
            ``limit`` bytes came (nothing more is read).
        BadRequest: the client went away before the body ended.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise _too_big(limit)
    size = 0
    pending = bytearray()
    with target.open("wb") as handle:
        try:
            async for piece in request.stream():
                size += len(piece)
                if size > limit:
                    raise _too_big(limit)
                pending += piece
                if len(pending) >= FLUSH_BYTES:
                    await asyncio.to_thread(handle.write, pending)
                    pending.clear()
        except ClientDisconnect:
            raise BadRequest("the upload ended before the whole body arrived") from None
        await asyncio.to_thread(handle.write, pending)
    return size


async def _refused(cp: ControlPlane, who: str, action: str, version: str, exc: FleetError) -> None:
    await cp.fleet.audit(who, action, version, "refused", exc.message[:500])


@router.put(
    RELEASES_PATH + "/{version}",
    response_model=ReleaseInfo,
    responses=errors(400, 403, 409, 413),
    openapi_extra=_WHEEL_BODY,
)
async def add_release(
    version: ReleaseVersion,
    request: Request,
    cp: CP,
    who: Admin,
    filename: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=FILENAME_PATTERN,
            description="The wheel's file name, shown in listings (default: "
            "fleet_health-VERSION-py3-none-any.whl)",
        ),
    ] = None,
) -> ReleaseInfo:
    """Store the wheel in the body as release ``version``, signed; the same file again
    is answered with the stored release, another file under a stored version is 409."""
    book = cp.releases
    upload = book.new_upload()
    try:
        existed = version in book.releases
        size = await receive_upload(request, upload, cp.settings.release_max_bytes)
        name = filename or f"fleet_health-{version}-py3-none-any.whl"
        release = await book.add(version, upload, name, who.name)
    except FleetError as exc:
        await _refused(cp, who.name, "release.add", version, exc)
        raise
    finally:
        upload.unlink(missing_ok=True)
    detail = f"sha256 {release.sha256}, {size} bytes, {release.filename}"
    if existed:
        detail = f"the same file was stored already ({detail})"
    await cp.fleet.audit(who.name, "release.add", version, "ok", detail)
    return ReleaseInfo.of(release)


@router.get(RELEASES_PATH, response_model=list[ReleaseInfo], responses=errors())
async def list_releases(cp: CP, who: Viewer) -> list[ReleaseInfo]:
    """Every stored release, newest first."""
    return [ReleaseInfo.of(r) for r in cp.releases.listed()]


@router.get(RELEASES_PATH + "/{version}", response_model=ReleaseInfo, responses=errors(404))
async def show_release(version: ReleaseVersion, cp: CP, who: Viewer) -> ReleaseInfo:
    return ReleaseInfo.of(cp.releases.get(version))


@router.delete(
    RELEASES_PATH + "/{version}", response_model=ReleaseInfo, responses=errors(403, 404, 409)
)
async def remove_release(version: ReleaseVersion, cp: CP, who: Admin) -> ReleaseInfo:
    """Forget a release and delete its file; refused (409) while a rollout targets it.
    Download tokens for it stop working; agents already upgraded keep running it."""
    try:
        release = await cp.releases.remove(version)
    except FleetError as exc:
        await _refused(cp, who.name, "release.remove", version, exc)
        raise
    await cp.fleet.audit(who.name, "release.remove", version, "ok", f"sha256 {release.sha256}")
    return ReleaseInfo.of(release)


def _downloader(request: Request, cp: ControlPlane, version: str) -> str:
    """Who may download ``version``: the agent a download token of it was minted
    for, or an operator (or admin) by API token.

    Raises:
        Unauthenticated: a bad, expired or other release's download token, or a
            bad API token (counted per address like every failed authentication).
        TooManyRequests: the address failed too often.
        Forbidden: a viewer's token.
    """
    scheme, _, value = (request.headers.get("authorization") or "").partition(" ")
    value = value.strip()
    if scheme.lower() != "bearer" or not value.startswith(DOWNLOAD_PREFIX):
        hint = "this route also takes the download token (fdl_...) of an upgrade command"
        return authorize(request, "operator", hint).name
    agent_id = cp.releases.check_token(value, version)
    if agent_id is not None:
        return agent_id
    message = (
        f"the download token is unknown, expired, or not for release {version}: "
        "send the upgrade again (POST /v1/agents/{id}/upgrade) for a new one"
    )
    address = request.client.host if request.client else "?"
    wait = cp.auth_failed(address, "http.auth", message)
    if wait is not None:
        raise TooManyRequests(
            f"too many failed authentications from {address}: wait {wait:.0f} s", wait
        )
    raise Unauthenticated(message)


@router.get(
    RELEASES_PATH + "/{version}/download",
    response_class=FileStream,
    responses={**ranged_responses("The release's wheel"), **errors(403, 404, 416)},
)
async def download_release(
    version: ReleaseVersion,
    request: Request,
    cp: CP,
    _: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    range_header: Annotated[
        str | None,
        Header(
            alias="Range",
            max_length=100,
            description="bytes=N- (resume from byte N), bytes=N-M or bytes=-S; one range",
        ),
    ] = None,
    if_range: Annotated[
        str | None,
        Header(
            alias="If-Range",
            max_length=100,
            description="The ETag the download started with: a Range is honoured "
            "only while the file is still that one",
        ),
    ] = None,
) -> Response:
    """The wheel, whole or from byte N (``Range``), streamed from its file.

    Takes the download token an upgrade command carries (for this version only,
    until it expires), or an operator's or admin's API token.
    """
    _downloader(request, cp, version)
    release = cp.releases.get(version)
    await cp.releases.ensure_file(release)  # a replica that did not receive the upload
    try:
        return file_response(
            cp.releases.path(release),
            release.size,
            f'"{release.sha256}"',
            range_header,
            if_range,
            {"Content-Disposition": attachment(release.filename)},
        )
    except OSError as exc:
        log.error("release %s: its file cannot be read: %s", version, exc)
        raise NotFound(
            f"the file of release {version} is missing or unreadable in the data directory "
            f"({exc.strerror}): remove the release and add it again"
        ) from None
