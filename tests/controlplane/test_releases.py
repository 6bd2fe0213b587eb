"""Agent releases over REST on a real server: upload, list, show, remove, download
(whole, resumed with Range, by token), roles and the audit."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from tests.helpers.rawhttp import push_chunked, read_status, tls_socket
from tests.helpers.releases import release_wheel, verify_release
from tests.helpers.server import FAST, RunningServer


def _put(server: RunningServer, version: str, data: bytes, token: str | None = None, **params):
    with server.api(token) as api:
        return api.put(
            f"/v1/releases/{version}",
            content=data,
            params=params,
            headers={"Content-Type": "application/octet-stream"},
        )


def _audit(server: RunningServer, action: str) -> list[dict[str, str]]:
    with server.api() as api:
        rows = api.get("/v1/audit", params={"limit": 10_000}).json()
    return [r for r in rows if r["action"] == action]


def _leftovers(server: RunningServer) -> list[str]:
    return sorted(p.name for p in (server.data_dir / "releases").glob(".upload-*"))


def test_an_upload_is_stored_under_its_hash_signed_listed_and_shown(control_plane, tmp_path):
    wheel = release_wheel(tmp_path, "0.2.0")
    data = wheel.read_bytes()
    r = _put(control_plane, "0.2.0", data, filename=wheel.name)
    assert r.status_code == 200, r.text
    release = r.json()
    sha = hashlib.sha256(data).hexdigest()
    assert release == {
        "version": "0.2.0",
        "sha256": sha,
        "size": len(data),
        "signature": release["signature"],
        "filename": wheel.name,
        "added_at": release["added_at"],
        "added_by": "admin",
        "download_path": "/v1/releases/0.2.0/download",
    }
    # Signed by the release key whose public half is in pki/release.pub.
    public = (control_plane.data_dir / "pki" / "release.pub").read_text().strip()
    verify_release(public, "0.2.0", sha, len(data), release["signature"])
    kept = control_plane.data_dir / "releases" / f"{sha}.whl"
    assert kept.read_bytes() == data
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert stat.S_IMODE(kept.parent.stat().st_mode) == 0o700
    assert _leftovers(control_plane) == []
    with control_plane.api() as api:
        assert api.get("/v1/releases").json() == [release]
        assert api.get("/v1/releases/0.2.0").json() == release
        missing = api.get("/v1/releases/9.9.9")
    assert missing.status_code == 404
    assert "fleet releases add FILE --version 9.9.9" in missing.json()["detail"]
    (row,) = _audit(control_plane, "release.add")
    assert (row["actor"], row["target"], row["result"]) == ("admin", "0.2.0", "ok")
    assert sha in row["detail"] and wheel.name in row["detail"]
    # Kept across a restart.
    control_plane.restart()
    with control_plane.api() as api:
        assert api.get("/v1/releases").json() == [release]


def test_the_same_file_again_is_idempotent_and_another_file_is_409(control_plane, tmp_path):
    first = release_wheel(tmp_path, "0.2.0", pad_bytes=1000).read_bytes()
    stored = _put(control_plane, "0.2.0", first).json()
    again = _put(control_plane, "0.2.0", first)
    assert again.status_code == 200 and again.json() == stored
    other = release_wheel(tmp_path, "0.2.0", pad_bytes=1000).read_bytes()  # new random pad
    assert other != first
    r = _put(control_plane, "0.2.0", other)
    assert r.status_code == 409
    assert "stored already with other content" in r.json()["detail"]
    assert "fleet releases rm 0.2.0" in r.json()["detail"]
    with control_plane.api() as api:
        assert api.get("/v1/releases").json() == [stored]
    rows = _audit(control_plane, "release.add")
    assert [r["result"] for r in reversed(rows)] == ["ok", "ok", "refused"]
    assert "the same file was stored already" in rows[1]["detail"]
    assert "other content" in rows[0]["detail"]
    assert _leftovers(control_plane) == []


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda d: b"this is not a zip", "not a wheel (not a zip file"),
        (lambda d: release_wheel(d, "0.2.0", name="requests").read_bytes(), "not of fleet-health"),
        (
            lambda d: release_wheel(d, "0.2.0", metadata_version="0.3.0").read_bytes(),
            "it is version 0.3.0, not 0.2.0",
        ),
        (
            lambda d: release_wheel(d, "0.2.0", extra={"../evil.py": b"x"}).read_bytes(),
            "unsafe path '../evil.py'",
        ),
        (
            lambda d: release_wheel(d, "0.2.0", extra={"/etc/cron.d/x": b"x"}).read_bytes(),
            "unsafe path '/etc/cron.d/x'",
        ),
        (lambda d: release_wheel(d, "0.2.0", purelib=False).read_bytes(), "not pure Python"),
        (lambda d: b"", "not a wheel"),
    ],
    ids=[
        "not-a-zip",
        "other-distribution",
        "version-mismatch",
        "dotdot",
        "absolute",
        "platlib",
        "empty",
    ],
)
def test_bad_wheels_are_400_with_the_reason_and_nothing_is_kept(
    control_plane, tmp_path, make, says
):
    r = _put(control_plane, "0.2.0", make(tmp_path))
    assert r.status_code == 400, r.text
    assert says in r.json()["detail"]
    assert ".upload-" not in r.json()["detail"]  # named as uploaded, not as stored meanwhile
    with control_plane.api() as api:
        assert api.get("/v1/releases").json() == []
    assert list((control_plane.data_dir / "releases").iterdir()) == []
    (row,) = _audit(control_plane, "release.add")
    assert row["result"] == "refused" and says in row["detail"]


def test_a_bad_version_in_the_path_is_422_with_the_rule(control_plane):
    r = _put(control_plane, "0.2.0 beta", b"x")
    assert r.status_code == 422 and "letters, digits and . + _ -" in r.json()["detail"]


@pytest.fixture
def capped(tmp_path: Path):
    server = RunningServer(
        tmp_path / "capped", settings={**FAST, "release_max_bytes": str(1 << 20)}
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_an_upload_over_release_max_bytes_is_413_and_memory_stays_flat(capped, tmp_path):
    token = capped.admin_token
    head = (
        f"PUT /v1/releases/0.2.0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
        "Content-Type: application/octet-stream\r\n"
    )
    # Declared: refused from the headers, before a byte of the body is read.
    with tls_socket(capped) as sock:
        sock.sendall(f"{head}Content-Length: {200 << 20}\r\n\r\n".encode())
        assert read_status(sock) == 413
    # Streamed: cut off as soon as it passes the cap; the server's memory stays flat.
    pushed = push_chunked(capped, head, 200 << 20)
    assert pushed.status == 413, pushed
    assert pushed.answered_at < 16 << 20, f"answered only after {pushed.answered_at >> 20} MiB"
    assert pushed.rss_growth < 30 << 20, pushed
    # Through a client library the answer says the cap and what to do.
    big = release_wheel(tmp_path, "0.2.0", pad_bytes=2 << 20).read_bytes()
    r = _put(capped, "0.2.0", big)
    assert r.status_code == 413
    assert "over 1048576 bytes (1.0 MiB), the server's release_max_bytes" in r.json()["detail"]
    rows = _audit(capped, "release.add")
    assert len(rows) == 3 and {r["result"] for r in rows} == {"refused"}
    assert all("release_max_bytes" in r["detail"] and r["actor"] == "admin" for r in rows)
    assert _leftovers(capped) == []
    # A wheel under the cap goes in (the general max_body_bytes does not apply to it).
    fits = release_wheel(tmp_path, "0.2.0", pad_bytes=(1 << 20) - 4096).read_bytes()
    assert len(fits) > 1 << 19
    assert _put(capped, "0.2.0", fits).status_code == 200


def test_an_unauthenticated_upload_is_refused_before_its_body_is_read(capped):
    head = (
        "PUT /v1/releases/0.2.0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer flta_wrong\r\n"
        "Content-Type: application/octet-stream\r\n"
    )
    pushed = push_chunked(capped, head, 64 << 20)
    assert pushed.status == 401, pushed
    assert pushed.answered_at < 16 << 20
    assert pushed.rss_growth < 30 << 20, pushed
    assert _leftovers(capped) == []


def test_remove_deletes_the_file_and_is_audited(control_plane, tmp_path):
    data = release_wheel(tmp_path, "0.2.0").read_bytes()
    sha = _put(control_plane, "0.2.0", data).json()["sha256"]
    kept = control_plane.data_dir / "releases" / f"{sha}.whl"
    assert kept.exists()
    with control_plane.api() as api:
        r = api.delete("/v1/releases/0.2.0")
        assert r.status_code == 200 and r.json()["sha256"] == sha
        assert api.get("/v1/releases").json() == []
        again = api.delete("/v1/releases/0.2.0")
        assert again.status_code == 404
        assert api.get("/v1/releases/0.2.0/download").status_code == 404
    assert not kept.exists()
    rows = _audit(control_plane, "release.remove")
    assert [(r["result"], r["actor"]) for r in reversed(rows)] == [
        ("ok", "admin"),
        ("refused", "admin"),
    ]


def test_roles_viewers_read_operators_download_admins_change(control_plane, tmp_path):
    data = release_wheel(tmp_path, "0.2.0").read_bytes()
    assert _put(control_plane, "0.2.0", data).status_code == 200
    viewer = control_plane.user("vic", "viewer")
    operator = control_plane.user("olga", "operator")
    for token in (viewer, operator):
        assert _put(control_plane, "0.3.0", data, token).status_code == 403
        with control_plane.api(token) as api:
            assert api.get("/v1/releases").status_code == 200
            assert api.get("/v1/releases/0.2.0").status_code == 200
            assert api.delete("/v1/releases/0.2.0").status_code == 403
    with control_plane.api(viewer) as api:
        r = api.get("/v1/releases/0.2.0/download")
        assert r.status_code == 403 and "operator" in r.json()["detail"]
    with control_plane.api(operator) as api:
        assert api.get("/v1/releases/0.2.0/download").content == data
    with control_plane.api() as api:
        rows = api.get("/v1/audit", params={"limit": 1000}).json()
    refused = {(r["actor"], r["action"]) for r in rows if r["result"] == "forbidden"}
    assert {("vic", "http.put"), ("vic", "http.delete"), ("vic", "http.get")} <= refused
    assert {("olga", "http.put"), ("olga", "http.delete")} <= refused


def test_download_whole_resumed_with_range_and_etag(control_plane, tmp_path):
    data = release_wheel(tmp_path, "0.2.0", pad_bytes=3 << 20).read_bytes()
    size = len(data)
    sha = _put(control_plane, "0.2.0", data).json()["sha256"]
    etag = f'"{sha}"'
    url = "/v1/releases/0.2.0/download"
    with control_plane.api(control_plane.user("olga", "operator")) as api:
        whole = api.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["etag"] == etag
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-length"] == str(size)
        assert whole.headers["content-type"] == "application/octet-stream"
        assert whole.headers["content-disposition"].startswith("attachment; filename=")
        # Resume from byte N, as an agent does after a cut.
        rest = api.get(url, headers={"Range": "bytes=1000000-", "If-Range": etag})
        assert rest.status_code == 206
        assert rest.headers["content-range"] == f"bytes 1000000-{size - 1}/{size}"
        assert rest.headers["content-length"] == str(size - 1_000_000)
        assert rest.headers["etag"] == etag
        assert data[:1_000_000] + rest.content == data
        part = api.get(url, headers={"Range": "bytes=10-19"})
        assert part.status_code == 206 and part.content == data[10:20]
        assert part.headers["content-range"] == f"bytes 10-19/{size}"
        tail = api.get(url, headers={"Range": "bytes=-5"})
        assert tail.status_code == 206 and tail.content == data[-5:]
        # A range past the end: 416, with the size.
        past = api.get(url, headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{size}"
        assert "start over from byte 0" in past.json()["detail"]
        # Another file than the one the download started with: the whole file, 200.
        changed = api.get(url, headers={"Range": "bytes=10-", "If-Range": '"0000"'})
        assert changed.status_code == 200 and changed.content == data
        # Several ranges, or one that does not parse: ignored, the whole file.
        for header in ("bytes=0-1,5-6", "bytes=x-", "items=0-5", "bytes=9-3"):
            ignored = api.get(url, headers={"Range": header})
            assert ignored.status_code == 200 and ignored.content == data, header


def test_bad_download_tokens_get_401_and_are_counted(control_plane, tmp_path):
    data = release_wheel(tmp_path, "0.2.0").read_bytes()
    assert _put(control_plane, "0.2.0", data).status_code == 200
    url = "/v1/releases/0.2.0/download"
    with control_plane.api("fdl_" + "A" * 43) as api:
        r = api.get(url)
    assert r.status_code == 401
    assert "download token is unknown, expired, or not for release 0.2.0" in r.json()["detail"]
    with control_plane.api("flta_nope") as api:
        r = api.get(url)
    assert r.status_code == 401 and "download token (fdl_...)" in r.json()["detail"]
    with control_plane.api() as api:
        rows = api.get("/v1/audit", params={"limit": 1000}).json()
    (row,) = [r for r in rows if r["action"] == "http.auth"]
    assert row["target"] == "127.0.0.1" and "2 times" in row["detail"], row
