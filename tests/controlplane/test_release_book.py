"""The release book in-process: download tokens scoped to one version and expiring,
the hook that keeps a release a rollout needs, shared files, leftover uploads; and
the Range rules of downloads."""

from __future__ import annotations

import base64
import hashlib
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from controlplane.api.ranges import ByteRange, parse_range
from controlplane.errors import Conflict, NotFound, RangeNotSatisfiable
from controlplane.release_key import ReleaseKey
from controlplane.releases import ReleaseBook
from controlplane.store.sqlite import SQLiteStore
from tests.helpers.releases import release_wheel, verify_release


@pytest.fixture
async def book(tmp_path: Path) -> AsyncIterator[ReleaseBook]:
    store = SQLiteStore(tmp_path / "fleet.db")
    await store.open()
    (tmp_path / "pki").mkdir()
    releases = ReleaseBook(
        store, tmp_path / "releases", ReleaseKey.load_or_create(tmp_path / "pki")
    )
    await releases.load()
    try:
        yield releases
    finally:
        await store.close()


async def _add(book: ReleaseBook, tmp_path: Path, version: str):
    wheel = release_wheel(tmp_path, version)
    upload = book.new_upload()
    upload.write_bytes(wheel.read_bytes())
    return await book.add(version, upload, wheel.name, "admin")


async def test_a_download_token_opens_one_version_for_one_agent_until_it_expires(
    book, tmp_path, monkeypatch
):
    await _add(book, tmp_path, "0.2.0")
    await _add(book, tmp_path, "0.3.0")
    token = book.mint_token("ag_1", "0.2.0", ttl_s=60)
    assert token.startswith("fdl_") and len(token) > 40
    assert book.check_token(token, "0.2.0") == "ag_1"
    assert book.check_token(token, "0.3.0") is None
    assert book.check_token("fdl_" + "A" * 43, "0.2.0") is None
    assert book.check_token(token[:-1], "0.2.0") is None
    expired = book.mint_token("ag_1", "0.2.0", ttl_s=0)
    assert book.check_token(expired, "0.2.0") is None
    # A minute later (the book's clock moved on), the first token is refused too.
    later = time.time() + 61
    monkeypatch.setattr("controlplane.releases.time", SimpleNamespace(time=lambda: later))
    assert book.check_token(token, "0.2.0") is None
    monkeypatch.undo()
    assert book.check_token(token, "0.2.0") == "ag_1"
    # Nothing is held: another book with the same release key (another replica, on a
    # copy of the data directory) takes it; one with another key does not.
    twin = ReleaseBook(book.store, book.directory, book.key)
    twin.releases = dict(book.releases)
    assert twin.check_token(token, "0.2.0") == "ag_1"
    stranger = ReleaseBook(book.store, book.directory, ReleaseKey.load_or_create(tmp_path))
    stranger.releases = dict(book.releases)
    assert stranger.check_token(token, "0.2.0") is None
    # A token whose claims were changed (another agent) is refused.
    body, mac = token.removeprefix("fdl_").split(".")
    claims = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
    other = base64.urlsafe_b64encode(claims.replace(b"ag_1", b"ag_2")).decode().rstrip("=")
    assert book.check_token(f"fdl_{body}.{mac}", "0.2.0") == "ag_1"
    assert book.check_token(f"fdl_{other}.{mac}", "0.2.0") is None
    # Removing the release ends its tokens.
    await book.remove("0.2.0")
    assert book.check_token(token, "0.2.0") is None


async def test_a_release_a_rollout_needs_is_kept_with_the_reason(book, tmp_path):
    release = await _add(book, tmp_path, "0.2.0")
    book.in_use = lambda v: (
        "rollout ro_1 of pool db targets it; abort it first" if v == "0.2.0" else None
    )
    with pytest.raises(Conflict, match=r"release 0\.2\.0 is in use: rollout ro_1 of pool db"):
        await book.remove("0.2.0")
    assert book.path(release).exists() and book.get("0.2.0") == release
    book.in_use = lambda v: None
    await book.remove("0.2.0")
    assert not book.path(release).exists()
    with pytest.raises(NotFound):
        book.get("0.2.0")


async def test_a_file_two_releases_share_stays_until_the_last_goes(book, tmp_path):
    release = await _add(book, tmp_path, "0.2.0")
    # Not reachable through add (a wheel names its own version), but the rule holds.
    book.releases["0.2.0-copy"] = replace(release, version="0.2.0-copy")
    await book.remove("0.2.0")
    assert book.path(release).exists()
    book.releases.pop("0.2.0-copy")
    book.releases["0.2.0"] = release
    await book.remove("0.2.0")
    assert not book.path(release).exists()


async def test_signatures_verify_and_leftover_uploads_go_at_load(book, tmp_path):
    release = await _add(book, tmp_path, "0.2.0")
    data = book.path(release).read_bytes()
    assert release.sha256 == hashlib.sha256(data).hexdigest() and release.size == len(data)
    verify_release(book.key.public, "0.2.0", release.sha256, release.size, release.signature)
    pub = (tmp_path / "pki" / "release.pub").read_text().strip()
    assert pub == book.key.public
    left = book.new_upload()
    assert left.name.startswith(".upload-") and os.stat(left).st_mode & 0o077 == 0
    again = ReleaseBook(book.store, book.directory, book.key)
    await again.load()
    assert not left.exists()
    assert again.get("0.2.0") == release


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("bytes=0-", ByteRange(0, 99)),
        ("bytes=40-", ByteRange(40, 99)),
        ("bytes=10-19", ByteRange(10, 19)),
        ("bytes=90-500", ByteRange(90, 99)),
        ("bytes=99-99", ByteRange(99, 99)),
        ("bytes=-5", ByteRange(95, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        (" bytes=3-4 ", ByteRange(3, 4)),
        ("bytes=9-3", None),
        ("bytes=-", None),
        ("bytes=0-1,4-5", None),
        ("bytes=x-", None),
        ("items=0-5", None),
        ("", None),
    ],
)
def test_ranges_one_is_served_others_are_ignored(header, expected):
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=1000-"])
def test_ranges_past_the_end_are_unsatisfiable_with_the_size(header):
    with pytest.raises(RangeNotSatisfiable) as raised:
        parse_range(header, 100)
    assert raised.value.headers == {"Content-Range": "bytes */100"}
