"""A file served whole or in one byte range, streamed in chunks: resumable downloads.

An agent that lost its connection halfway through a release asks for the rest
with ``Range: bytes=N-`` (RFC 9110, section 14) and gets ``206 Partial Content``;
``If-Range`` with the ETag it started with makes sure both halves are of one file.
Only one range is served: a header asking several, or one that does not parse, is
ignored and the whole file sent (200), as the RFC allows. The file is read in
:data:`CHUNK` pieces off the event loop, so a download never holds more than one
piece in memory.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from fastapi.responses import StreamingResponse

from ..errors import RangeNotSatisfiable

__all__ = [
    "CHUNK",
    "ByteRange",
    "FileStream",
    "file_response",
    "parse_range",
    "ranged_responses",
]

CHUNK = 256 << 10
"""Bytes read and sent at a time."""

_RANGE = re.compile(r"bytes=(\d*)-(\d*)")


class FileStream(StreamingResponse):
    """A file's bytes (``response_class`` of a download route, for its OpenAPI media type)."""

    media_type = "application/octet-stream"


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``start`` to ``end`` of a file, both included."""

    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range ``header`` asks of a file of ``size`` bytes, or None for all of it.

    Understood: ``bytes=N-`` (from N to the end), ``bytes=N-M`` (M past the end is
    the end) and ``bytes=-S`` (the last S bytes).

    Raises:
        RangeNotSatisfiable: the range starts at or past the end (or asks for the
            last 0 bytes).
    """
    if header is None:
        return None
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # a suffix: the last S bytes
        suffix = int(last)
        if suffix == 0:
            raise _unsatisfiable(header, size)
        return ByteRange(max(0, size - suffix), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # not a valid range: ignored
    if start >= size:
        raise _unsatisfiable(header, size)
    return ByteRange(start, min(int(last), size - 1) if last else size - 1)


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"Range {header[:60]!r} lies past the end of the file ({size} bytes): "
        "start over from byte 0",
        size,
    )


async def _pieces(handle: BinaryIO, start: int, length: int) -> AsyncIterator[bytes]:
    try:
        await asyncio.to_thread(handle.seek, start)
        left = length
        while left > 0:
            piece = await asyncio.to_thread(handle.read, min(CHUNK, left))
            if not piece:
                return  # shorter than it was: the client sees a short body
            left -= len(piece)
            yield piece
    finally:
        handle.close()


def file_response(
    path: Path,
    size: int,
    etag: str,
    range_header: str | None,
    if_range: str | None,
    headers: Mapping[str, str],
) -> FileStream:
    """``path`` (``size`` bytes, version ``etag``) whole, or the part ``range_header``
    asks for when ``if_range`` is absent or ``etag``.

    The file is opened now, so that one removed meanwhile is still served whole.

    Raises:
        RangeNotSatisfiable: as :func:`parse_range`.
        OSError: the file cannot be opened.
    """
    wanted = None
    if if_range is None or if_range.strip() == etag:
        wanted = parse_range(range_header, size)
    part = wanted or ByteRange(0, size - 1)
    handle = path.open("rb")
    out = {
        **headers,
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Content-Length": str(part.length),
    }
    if wanted is not None:
        out["Content-Range"] = f"bytes {part.start}-{part.end}/{size}"
    return FileStream(
        _pieces(handle, part.start, part.length),
        status_code=206 if wanted is not None else 200,
        headers=out,
    )


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string"}}


def ranged_responses(what: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route answering with :func:`file_response`: 200 and 206."""
    content = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    common = {
        "ETag": _header("The file's SHA-256 in quotes: give it as If-Range when resuming"),
        "Accept-Ranges": _header("bytes"),
        "Content-Length": _header("Bytes in this answer"),
        "Content-Disposition": _header("attachment, with the file's name"),
    }
    return {
        200: {"description": f"{what}, whole", "content": content, "headers": common},
        206: {
            "description": f"The part of {what} that Range asked for",
            "content": content,
            "headers": {
                **common,
                "Content-Range": _header("bytes START-END/SIZE: which part this is"),
            },
        },
    }
