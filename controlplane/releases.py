"""Agent releases: stored content-addressed, signed, listed, downloaded by agents.

A release is a wheel of this project (:mod:`fleet.wheels`) kept as
``DATA/releases/SHA256.whl``, with a document per version in the store holding its
hash, size and the release key's signature over :func:`fleet.protocol.release_message`.
An agent downloads it with a bearer token minted for that agent and that version
(:meth:`ReleaseBook.mint_token`), short-lived, and held nowhere: it carries the agent,
the version and its expiry under a MAC derived from the release key, so whichever
replica an agent's download reaches (behind a load balancer) checks it alike.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from fleet.protocol import RELEASES_PATH, release_message
from fleet.wheels import WheelError, WheelInfo, inspect_wheel

from .errors import BadRequest, Conflict, NotFound
from .release_key import ReleaseKey
from .store.base import Store

__all__ = ["DOWNLOAD_PREFIX", "UPLOAD_PREFIX", "Release", "ReleaseBook"]

log = logging.getLogger("controlplane.releases")

KIND = "release"
"""The store's document kind for releases (keyed by version)."""

DOWNLOAD_PREFIX = "fdl_"
"""Download tokens start with this, so a log or a secret scanner knows them."""

UPLOAD_PREFIX = ".upload-"
"""Uploads in progress: ``DATA/releases/.upload-XXXX.part``, removed at start if left over."""


@dataclass(frozen=True)
class Release:
    """One stored release."""

    version: str
    sha256: str
    size: int
    signature: str
    """Base64 Ed25519 signature over :func:`release_message` of the three above."""
    filename: str
    """The name it was uploaded with (shown, never used as a path)."""
    added_at: float
    added_by: str

    @property
    def download_path(self) -> str:
        return f"{RELEASES_PATH}/{self.version}/download"


class ReleaseBook:
    """The releases this control plane holds, and who may download which.

    Args:
        store: where each release's document is kept.
        directory: where the files are (``DATA/releases``, 0700).
        key: the release key that signs them.
    """

    def __init__(self, store: Store, directory: Path, key: ReleaseKey) -> None:
        self.store = store
        self.directory = directory
        self.key = key
        self.releases: dict[str, Release] = {}
        self._token_key = key.token_key()
        self._lock = asyncio.Lock()
        """Held from the check that a version is free to the document's write."""
        self.in_use: Callable[[str], str | None] = lambda version: None
        """Why ``version`` may not be removed now (a rollout targets it), else None;
        the rollouts module sets it."""

    async def load(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.directory.chmod(0o700)
        for left in self.directory.glob(f"{UPLOAD_PREFIX}*"):
            left.unlink(missing_ok=True)  # an upload cut by a crash or a kill
        await self.load_documents()

    async def load_documents(self) -> None:
        """Read the releases' records (again: another replica added one); one signed by
        an earlier release key (before a rotation) is signed again with this one."""
        for version, body in await self.store.list_documents(KIND):
            release = Release(**body)
            signature = self.key.sign(release_message(version, release.sha256, release.size))
            if release.signature != signature:  # Ed25519 signs deterministically
                release = replace(release, signature=signature)
                await self.store.put_document(KIND, version, asdict(release), time.time())
                log.info("release %s signed again with the current release key", version)
            self.releases[version] = release

    def new_upload(self) -> Path:
        """An empty file (0600) in :attr:`directory` to receive an upload; the caller
        gives it to :meth:`add`, or removes it."""
        handle, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=".part", dir=self.directory)
        os.close(handle)
        return Path(name)

    def get(self, version: str) -> Release:
        """The release of ``version``.

        Raises:
            NotFound: none is stored (says how to add one).
        """
        release = self.releases.get(version)
        if release is None:
            raise NotFound(
                f"no release {version!r} is stored; add it with "
                f"`fleet releases add FILE --version {version}`"
            )
        return release

    def listed(self) -> list[Release]:
        """Every release, newest first."""
        return sorted(self.releases.values(), key=lambda r: r.added_at, reverse=True)

    def path(self, release: Release) -> Path:
        return self.directory / f"{release.sha256}.whl"

    async def add(self, version: str, upload: Path, filename: str, added_by: str) -> Release:
        """Check the uploaded wheel at ``upload`` (a temporary file in :attr:`directory`),
        keep it under its hash and sign it.

        Raises:
            BadRequest: not a release wheel, or a wheel of another version.
            Conflict: ``version`` is stored already, with other content.
        """
        try:
            info, sha256, size = await asyncio.to_thread(_examine, upload)
        except WheelError as exc:
            # Said of the name it was uploaded with, not of the temporary file.
            raise BadRequest(str(exc).replace(upload.name, filename)) from None
        if info.version != version:
            raise BadRequest(
                f"the wheel says it is version {info.version}, not {version}: give "
                f"--version {info.version}, or build the wheel again"
            )
        async with self._lock:
            existing = self.releases.get(version)
            if existing is not None:
                if existing.sha256 == sha256:
                    return existing
                raise Conflict(
                    f"release {version} is stored already with other content "
                    f"(sha256 {existing.sha256[:12]}…); remove it first "
                    f"(`fleet releases rm {version}`), or give the new one another version"
                )
            release = Release(
                version=version,
                sha256=sha256,
                size=size,
                signature=self.key.sign(release_message(version, sha256, size)),
                filename=filename,
                added_at=time.time(),
                added_by=added_by,
            )
            await asyncio.to_thread(_keep, upload, self.path(release))
            if getattr(self.store, "shared", False):
                # Replicas that did not receive the upload serve it from here.
                body = await asyncio.to_thread(self.path(release).read_bytes)
                await self.store.put_release_file(release.sha256, body)
            await self.store.put_document(KIND, version, asdict(release), release.added_at)
            self.releases[version] = release
            return release

    async def remove(self, version: str) -> Release:
        """Forget ``version``; its file goes unless another version has the same content.

        Raises:
            NotFound: no such release.
            Conflict: :attr:`in_use` says it is needed (a rollout targets it).
        """
        async with self._lock:
            release = self.get(version)
            why = self.in_use(version)
            if why is not None:
                raise Conflict(f"release {version} is in use: {why}")
            await self.store.delete_document(KIND, version)
            del self.releases[version]
            if all(r.sha256 != release.sha256 for r in self.releases.values()):
                self.path(release).unlink(missing_ok=True)
                if getattr(self.store, "shared", False):
                    await self.store.delete_release_file(release.sha256)
        return release

    # ------------------------------------------------------------- downloads

    async def ensure_file(self, release: Release) -> bool:
        """Make sure the release's file is here: a replica that did not receive the
        upload writes it from the store once. False when it is nowhere."""
        path = self.path(release)
        if path.exists() or not getattr(self.store, "shared", False):
            return path.exists()
        body = await self.store.get_release_file(release.sha256)
        if body is None or hashlib.sha256(body).hexdigest() != release.sha256:
            return False
        await asyncio.to_thread(_install, body, self.directory, path)
        return True

    def mint_token(self, agent_id: str, version: str, ttl_s: float) -> str:
        """A bearer token that lets ``agent_id`` download ``version`` for ``ttl_s``."""
        # Milliseconds, rounded down: a token is never good for longer than asked.
        claims = f"{agent_id}\n{version}\n{int((time.time() + ttl_s) * 1000)}".encode()
        mac = hmac.new(self._token_key, claims, hashlib.sha256).digest()
        return DOWNLOAD_PREFIX + _b64(claims) + "." + _b64(mac)

    def check_token(self, token: str, version: str) -> str | None:
        """The agent a valid download token of ``version`` was minted for, else None."""
        body, dot, mac = token.removeprefix(DOWNLOAD_PREFIX).partition(".")
        try:
            claims, given = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        wanted = hmac.new(self._token_key, claims, hashlib.sha256).digest()
        if not dot or not hmac.compare_digest(given, wanted):
            return None
        agent_id, _, rest = claims.decode().partition("\n")
        for_version, _, expires = rest.partition("\n")
        if for_version != version or version not in self.releases:
            return None  # another release's, or a release removed since
        try:
            return agent_id if int(expires) / 1000 > time.time() else None
        except ValueError:
            return None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError(str(exc)) from None


def _examine(upload: Path) -> tuple[WheelInfo, str, int]:
    info = inspect_wheel(upload)
    digest = hashlib.sha256()
    with upload.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return info, digest.hexdigest(), upload.stat().st_size


def _install(body: bytes, directory: Path, path: Path) -> None:
    """Write ``body`` to ``path`` whole or not at all (a file beside it, renamed)."""
    handle, name = tempfile.mkstemp(prefix=UPLOAD_PREFIX, suffix=".part", dir=directory)
    os.close(handle)
    part = Path(name)
    try:
        part.write_bytes(body)
        _keep(part, path)
    finally:
        part.unlink(missing_ok=True)


def _keep(upload: Path, path: Path) -> None:
    upload.chmod(0o600)
    os.replace(upload, path)
