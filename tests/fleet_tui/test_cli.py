"""`fleet tui` command line: token sources, keymap files, clear errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fleet.ctl.profile import save_profile
from fleet_tui import cli
from fleet_tui.errors import ConfigError


@pytest.fixture(autouse=True)
def no_profile(tmp_path, monkeypatch):
    """No profile of the machine's user leaks into these tests."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("FLEET_SERVER", raising=False)


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


def test_the_profile_written_by_fleet_login_fills_what_flags_do_not_give(tmp_path, monkeypatch):
    monkeypatch.delenv("FLEET_TOKEN", raising=False)
    directory = tmp_path / "config" / "fleet"
    save_profile(directory, "https://127.0.0.1:7", "flta_p", b"PEM", "alice", "operator")
    args = cli.build_parser().parse_args([])
    cli.apply_profile(args)
    assert args.server == "https://127.0.0.1:7"
    assert args.token_file == directory / "token" and cli._token(args) == "flta_p"
    assert args.ca_file == directory / "ca.pem"
    # Flags and the environment win over it.
    monkeypatch.setenv("FLEET_TOKEN", "flta_env")
    args = cli.build_parser().parse_args(["--server", "https://127.0.0.2:8", "--ca-pin", "x"])
    cli.apply_profile(args)
    assert args.server == "https://127.0.0.2:8" and cli._token(args) == "flta_env"
    assert args.ca_file is None


@pytest.mark.parametrize(
    ("server", "says"),
    [
        ("127.0.0.1:8443", "it has no scheme: write https://127.0.0.1:8443"),
        ("ftp://127.0.0.1:8443", "the scheme must be https:// (or http://), not ftp://"),
        ("https://127.0.0.1:99999", "Port out of range"),
        ("https://:8443", "it names no host"),
    ],
)
def test_a_server_url_that_cannot_work_is_refused_with_the_fix(monkeypatch, capsys, server, says):
    monkeypatch.setenv("FLEET_TOKEN", "flta_x")
    assert cli.main(["--server", server]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"fleet tui: --server {server!r} is not a control plane URL: ")
    assert says in err and "Traceback" not in err


def test_a_keymap_naming_an_unknown_binding_id_is_refused_at_start(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FLEET_TOKEN", "flta_x")
    path = tmp_path / "keys.toml"
    path.write_text('[keymap]\n"fleet.revok" = "X"\n"fleet.probe" = "P"\n"nothing" = "n"\n')
    assert cli.main(["--server", "https://127.0.0.1:1", "--keymap", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"fleet tui: keymap {path}: no binding has the id 'fleet.revok' " in err
    assert "(did you mean 'fleet.revoke'?)" in err and "'nothing'" in err
    assert "'fleet.probe'" not in err.split("; the ids are")[0]  # a known id is not named
    assert "fleet.sort_queue" in err  # the list of ids to choose from


def test_binding_ids_are_found_on_the_classes_that_declare_them():
    import fleet_tui.app  # noqa: F401 - declares the bindings
    from fleet_tui.keymap import binding_ids

    ids = binding_ids()
    assert {"fleet.probe", "fleet.revoke", "fleet.detail", "fleet.keys", "fleet.sort_cpu"} <= ids
