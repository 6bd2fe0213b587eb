"""A command without its extra stops with the line to type, exit code 2, no traceback."""

from __future__ import annotations

import pytest

from fleet.extras import ALL_MODULES, SERVER_MODULES, TUI_MODULES, require_extra


def test_a_missing_module_stops_with_the_install_line(capsys):
    with pytest.raises(SystemExit) as stopped:
        require_extra("server", ("json", "no_such_module_fleet"), command="fleet server")
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "fleet server: needs no_such_module_fleet," in err
    assert "json" not in err
    assert "pip install 'fleet-health[server]'" in err


def test_nothing_happens_when_the_extra_is_installed(capsys):
    # This venv has every extra (the Makefile installs `.[all,test]`).
    require_extra("all", ALL_MODULES, command="fleet demo")
    assert capsys.readouterr() == ("", "")


def test_all_is_server_and_tui():
    assert set(ALL_MODULES) == set(SERVER_MODULES) | set(TUI_MODULES)
