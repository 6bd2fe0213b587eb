"""``fleet``: one argparse tree, --version, help and defaults on every option, usage errors."""

from __future__ import annotations

import argparse

import pytest

from fleet import __version__
from fleet.cli import build_parser
from tests.fleet.run import fleet
from tests.helpers.imports import packages_after


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    """Every parser in the tree, with the words that reach it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen = set()
            for name, child in action.choices.items():
                if id(child) not in seen:  # aliases share a parser
                    seen.add(id(child))
                    yield from _leaves(child, (*path, name))


def test_version(env):
    out = fleet("--version", env=env)
    assert out.returncode == 0 and out.stdout.strip() == f"fleet {__version__}"
    out = fleet("agent", "--version", env=env)
    assert out.stdout.strip() == f"fleet agent {__version__}"


def test_help_lists_every_command_and_the_exit_codes(env):
    out = fleet("--help", env=env)
    assert out.returncode == 0
    for command in (
        "server",
        "agent",
        "tui",
        "demo",
        "login",
        "agents",
        "users",
        "tokens",
        "pools",
        "connections",
        "alerts",
        "audit",
    ):
        assert f"\n    {command}" in out.stdout, command
    assert "4  conflict (409)" in out.stdout and "5  unauthenticated" in out.stdout


def test_every_option_has_help_and_says_its_default():
    missing = []
    for path, parser in _leaves(build_parser()):
        formatter = parser._get_formatter()
        for action in parser._actions:
            if isinstance(
                action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)
            ):
                continue
            where = " ".join(("fleet", *path, *action.option_strings)) or action.dest
            if not action.help:
                missing.append(f"{where}: no help")
                continue
            text = formatter._get_help_string(action) % vars(action) if action.help else ""
            takes_value = action.option_strings and action.nargs != 0
            if takes_value and "default" not in text and "required" not in text:
                missing.append(f"{where}: no default shown")
    assert missing == []


def test_server_data_dir_has_help_and_its_default(env):
    out = fleet("server", "--help", env=env)
    text = " ".join(out.stdout.split())
    assert "--data-dir DIR where the CA, the database and the endpoint live" in text
    assert "(default: $FLEET_DATA_DIR, else ./fleet-data)" in text


@pytest.mark.parametrize(
    "args",
    [
        ["tokens", "create", "--pool", "db", "--ttl", "30"],
        ["connections", "probe", "pg", "--timeout", "30"],
        ["audit", "--since", "30"],
        ["server", "--heartbeat-interval", "30"],
        ["agent", "run", "--state-dir", "x", "--command-timeout", "30"],
        ["tui", "--tick", "30"],
    ],
)
def test_a_bare_number_is_not_a_duration(env, args):
    out = fleet(*args, env=env)
    assert out.returncode == 2
    assert "'30' has no unit: write 30s, 30m, 30h or 30d" in out.stderr


def test_names_are_checked_before_anything_is_sent(env):
    out = fleet("users", "create", "bad name", env=env)
    assert out.returncode == 2
    assert "user name 'bad name' is not allowed" in out.stderr


def test_unknown_commands_and_verbs_suggest_the_right_one(env):
    out = fleet("frobnicate", env=env)
    assert out.returncode == 2 and "unknown command 'frobnicate'" in out.stderr
    out = fleet("agents", "lst", env=env)
    assert out.returncode == 2
    assert "unknown verb 'lst': did you mean 'list'?" in out.stderr


def test_nothing_configured_says_how_to_log_in(env):
    out = fleet("agents", "list", env=env)
    assert out.returncode == 2
    assert "no control plane configured. Log in once with" in out.stderr
    assert "fleet login --server https://HOST:PORT" in out.stderr
    assert "Traceback" not in out.stderr


def test_destructive_verbs_refuse_without_a_terminal_or_yes(env):
    # Refused before anything is sent: the server named does not even exist.
    env = {**env, "FLEET_SERVER": "https://127.0.0.1:9", "FLEET_TOKEN": "flta_x"}
    for args in (
        ["tokens", "revoke", "abc"],
        ["users", "revoke", "bob"],
        ["connections", "rm", "pg"],
    ):
        out = fleet(*args, env=env)
        assert out.returncode == 2, out.stderr
        assert "nothing was done" in out.stderr and "pass --yes to " in out.stderr


def test_building_the_tree_for_the_agent_loads_no_server_dashboard_or_http_library():
    loaded = packages_after(
        "from fleet.cli import build_parser\n"
        "build_parser().parse_args(['agent', 'run', '--state-dir', '/nowhere'])"
    )
    heavy = {
        "fastapi",
        "uvicorn",
        "starlette",
        "textual",
        "pydantic",
        "httpx",
        "aiosqlite",
        "cryptography",
        "websockets",
    }
    assert sorted(loaded & heavy) == []


def test_every_admin_command_is_checked_for_its_extra():
    from fleet.cli import ADMIN_COMMANDS

    [commands] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    roles = {"server", "agent", "tui", "demo"}
    assert set(commands.choices) - roles == ADMIN_COMMANDS
