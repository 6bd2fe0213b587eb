"""The server refuses keys others may read, saying the chmod; the store is 0600."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest

from tests.agent.certs import ca_and_leaf
from tests.helpers.server import REPO


def _mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def _server(*args: str) -> subprocess.CompletedProcess[str]:
    """``fleet server ARGS`` that is expected to refuse to start."""
    return subprocess.run(
        [sys.executable, "-m", "fleet", "server", "--port", "0", "--host", "127.0.0.1", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_store_files_are_owner_only(control_plane):
    db = control_plane.data_dir / "fleet.db"
    with control_plane.api() as api:  # a write, so that the WAL exists
        assert api.post("/v1/users", json={"name": "eve", "role": "viewer"}).status_code == 201
    assert _mode(db) == 0o600
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        assert side.exists() and _mode(side) == 0o600, suffix


def test_a_store_left_world_readable_is_made_owner_only(control_plane):
    db = control_plane.data_dir / "fleet.db"
    control_plane.stop()
    db.chmod(0o644)
    control_plane.start()
    assert _mode(db) == 0o600


def test_the_release_key_is_owner_only_with_its_public_half_beside_it(control_plane):
    pki = control_plane.data_dir / "pki"
    assert _mode(pki / "release.key") == 0o600
    assert b"PRIVATE KEY" in (pki / "release.key").read_bytes()
    assert _mode(pki / "release.pub") == 0o644
    public = (pki / "release.pub").read_text()
    assert public.startswith("ed25519:") and public.endswith("\n")
    control_plane.restart()  # the same key after a restart
    assert (pki / "release.pub").read_text() == public


@pytest.mark.parametrize(
    ("key", "mode"), [("ca.key", 0o644), ("server.key", 0o640), ("release.key", 0o640)]
)
def test_a_readable_pki_key_stops_the_server_with_the_chmod(control_plane, key, mode):
    control_plane.stop()
    path = control_plane.data_dir / "pki" / key
    path.chmod(mode)
    done = _server("--data-dir", str(control_plane.data_dir))
    assert done.returncode == 1, done.stderr
    assert f"run `chmod 600 {path}`" in done.stderr and f"mode {mode:04o}" in done.stderr
    assert "Traceback" not in done.stderr
    path.chmod(0o600)
    control_plane.start()  # and it starts once fixed


def test_a_readable_tls_key_stops_the_server(tmp_path):
    _, leaf = ca_and_leaf("Example Corp CA")
    cert, key = leaf.write(tmp_path, "leaf")
    key.chmod(0o604)
    done = _server(
        "--data-dir", str(tmp_path / "d"), "--tls-cert", str(cert), "--tls-key", str(key)
    )
    assert done.returncode == 1, done.stderr
    assert f"run `chmod 600 {key}`" in done.stderr and "Traceback" not in done.stderr
