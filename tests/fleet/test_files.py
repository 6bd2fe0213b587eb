"""``fleet.files``: the one atomic write, its modes, and what it leaves behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from fleet.files import write_private, write_public


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_modes_hold_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        write_public(tmp_path / "cert.pem", b"public")
    finally:
        os.umask(old)
    old = os.umask(0)
    try:
        write_private(tmp_path / "key.pem", b"secret")
    finally:
        os.umask(old)
    assert mode(tmp_path / "cert.pem") == 0o644
    assert mode(tmp_path / "key.pem") == 0o600
    assert (tmp_path / "key.pem").read_bytes() == b"secret"


def test_a_rewrite_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "endpoint"
    target.write_text("old\n")
    target.chmod(0o666)
    write_private(target, b"new\n")
    assert target.read_text() == "new\n" and mode(target) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["endpoint"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "token"
    write_private(target, b"old")
    (tmp_path / "sub").mkdir()
    with pytest.raises(IsADirectoryError):
        write_private(tmp_path / "sub", b"x")  # the rename onto a directory fails
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "token"]
