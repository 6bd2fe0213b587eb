"""Downloading a release from the control plane: HTTPS, capped, resumable.

The file is fetched from the API endpoint the agent enrolled with, through the
same proxy settings as its channel (:class:`agent.https.Target`), with the
TLS trust of its channel, and a bearer token minted for this agent and version.
It grows in ``STATE/downloads/SHA256.part``; a cut connection is resumed with
``Range: bytes=N-`` (by the next attempt, or the next upgrade command of the same
release), and never grows past the size the release key signed.

:func:`fetch_once` is one blocking attempt (run it in a thread); the caller
retries.
"""

from __future__ import annotations

import http.client
import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from agent.https import Connection, ProxyError, Target

__all__ = ["DownloadRefused", "Incomplete", "Request", "fetch_once"]

_CHUNK = 64 * 1024
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_TIMEOUT_S = 30.0


class DownloadRefused(Exception):
    """The server refused the download, or sent what cannot be the release: no retry."""


class Incomplete(Exception):
    """The attempt ended before the whole file arrived: retry (it resumes)."""


@dataclass(frozen=True)
class Request:
    """One release to fetch.

    Attributes:
        server: the control plane's API URL (``https://HOST:PORT``).
        path: the download path on it.
        token: the bearer token for it.
        size: the signed size: the file is never larger.
        part: where the bytes go (``STATE/downloads/SHA256.part``).
        context: the TLS context of the channel.
        proxy: the channel's proxy setting (None: ``HTTPS_PROXY``/``NO_PROXY``).
    """

    server: str
    path: str
    token: str
    size: int
    part: Path
    context: ssl.SSLContext
    proxy: str | None = None


def _have(part: Path, size: int) -> int:
    try:
        have = part.stat().st_size
    except FileNotFoundError:
        return 0
    if have > size:  # not this release's bytes: start again
        part.unlink()
        return 0
    return have


def fetch_once(req: Request) -> tuple[int, int]:
    """One attempt: (the byte it resumed from, the bytes the file now holds).

    Raises:
        DownloadRefused: a 4xx/5xx answer, or more bytes than the signed size.
        Incomplete: the connection ended early (the part is kept for a resume).
    """
    req.part.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    have = _have(req.part, req.size)
    if have == req.size:
        return have, have
    headers = {"Authorization": f"Bearer {req.token}", "Accept": "application/octet-stream"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        target = Target.of(req.server + req.path, req.proxy)
    except ProxyError as exc:
        raise DownloadRefused(str(exc)) from None
    try:
        with Connection(target, req.context, _TIMEOUT_S) as conn:
            answer = conn.stream(req.path, headers)
            start = _start_of(answer, have, req.part)
            _receive(answer, req.part, start, req.size)
    except (OSError, http.client.HTTPException) as exc:
        got = _have(req.part, req.size)
        raise Incomplete(
            f"{exc.__class__.__name__}: {exc} after {got} of {req.size} bytes"
        ) from None
    got = _have(req.part, req.size)
    if got != req.size:
        raise Incomplete(f"the connection ended after {got} of {req.size} bytes")
    return have, got


def _start_of(answer: http.client.HTTPResponse, have: int, part: Path) -> int:
    """Where the answer's bytes go in the part file."""
    if answer.status == 206:
        match = _CONTENT_RANGE.match(answer.getheader("Content-Range", ""))
        if match is None or int(match.group(1)) != have:
            raise DownloadRefused(
                f"the server answered the range from byte {have} with "
                f"{answer.getheader('Content-Range')!r}"
            )
        return have
    if answer.status == 200:
        return 0
    if answer.status == 416:
        part.unlink(missing_ok=True)  # our part is not a prefix of the file: start again
        raise Incomplete(f"the server refused the range from byte {have}; starting again")
    body = answer.read(2000).decode("utf-8", errors="replace").strip()
    raise DownloadRefused(f"download refused ({answer.status} {answer.reason}): {body[:300]}")


def _receive(answer: http.client.HTTPResponse, part: Path, start: int, size: int) -> None:
    length = answer.getheader("Content-Length")
    if length is not None and length.isdigit() and start + int(length) > size:
        raise DownloadRefused(
            f"the server offers {start + int(length)} bytes, over the signed size {size}"
        )
    with part.open("r+b" if start else "wb") as out:
        out.seek(start)
        out.truncate()
        written = start
        while chunk := answer.read(_CHUNK):
            written += len(chunk)
            if written > size:
                out.close()
                part.unlink(missing_ok=True)
                raise DownloadRefused(f"the server sent more than the signed size {size}")
            out.write(chunk)
