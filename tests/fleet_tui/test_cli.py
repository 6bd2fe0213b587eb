"""`fleet tui` command line: token sources, keymap files, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fleet_tui import cli
from fleet_tui.errors import ConfigError


def test_missing_token_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv("FLEET_TOKEN", raising=False)
    assert cli.main(["--server", "https://127.0.0.1:1"]) == 2
    assert "no token: pass --token-file PATH or set FLEET_TOKEN" in capsys.readouterr().err


def test_missing_server_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.delenv("FLEET_SERVER", raising=False)
    monkeypatch.setenv("FLEET_TOKEN", "flta_x")
    assert cli.main([]) == 2
    assert "no server" in capsys.readouterr().err


def test_unreadable_token_file(tmp_path, capsys):
    assert cli.main(["--server", "https://h:1", "--token-file", str(tmp_path / "nope")]) == 2
    assert "cannot read the token file" in capsys.readouterr().err


def test_ca_file_and_pin_are_exclusive(tmp_path):
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--ca-file", "a", "--ca-pin", "sha256:00"])


def test_keymap_file(tmp_path):
    path = tmp_path / "keys.toml"
    path.write_text('[keymap]\n"fleet.revoke" = "X"\n"fleet.probe" = "P"\n')
    assert cli.load_keymap(path) == {"fleet.revoke": "X", "fleet.probe": "P"}
    path.write_text("fleet = 3\n")
    with pytest.raises(ConfigError):
        cli.load_keymap(path)


def test_the_dashboard_imports_no_server_code():
    code = (
        "import sys, fleet_tui.app, fleet_tui.cli; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('controlplane', 'agent', 'fastapi', 'uvicorn', 'aiosqlite')]; "
        "print(bad); raise SystemExit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
