"""The admin CLI against a running control plane, and its errors."""

from __future__ import annotations

import subprocess
import sys


def fleet(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "fleet", *args], capture_output=True, text=True, env=env
    )


def test_user_create_prints_the_token_once_and_it_works(control_plane):
    out = fleet(
        "user", "create", "wall", "--role", "viewer", "--data-dir", str(control_plane.data_dir)
    )
    assert out.returncode == 0, out.stderr
    token = next(w for w in out.stdout.split() if w.startswith("flta_"))
    with control_plane.api(token) as api:
        assert api.get("/v1/whoami").json() == {"name": "wall", "role": "viewer"}


def test_admin_commands_explain_refusals(control_plane, tmp_path):
    viewer = control_plane.user("v", "viewer")
    token_file = tmp_path / "t"
    token_file.write_text(viewer)
    out = fleet(
        "token",
        "create",
        "--pool",
        "db",
        "--data-dir",
        str(control_plane.data_dir),
        "--token-file",
        str(token_file),
    )
    assert out.returncode != 0 and "refused (403)" in out.stderr and "needs admin" in out.stderr
    out = fleet("token", "create", "--pool", "db", "--data-dir", str(tmp_path / "nowhere"))
    assert out.returncode != 0 and "cannot read the server's endpoint" in out.stderr


def test_help_and_unknown_command():
    out = fleet("--help")
    assert out.returncode == 0 and "server" in out.stdout and "demo" in out.stdout
    out = fleet("frobnicate")
    assert out.returncode == 2 and "unknown command" in out.stderr
