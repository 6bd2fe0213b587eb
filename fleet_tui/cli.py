"""``fleet tui``: parse the command line and run the dashboard."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path

from fleet.cliparse import FleetParser, duration

from .errors import ConfigError
from .server_url import check_server_url

__all__ = ["add_tui_arguments", "apply_profile", "build_parser", "load_keymap", "main", "run_tui"]

DEFAULT_KEYMAP = Path.home() / ".config" / "fleet" / "keymap.toml"
"""Read when it exists and ``--keymap`` is not given."""


DESCRIPTION = "Watch the fleet live and act on it: a terminal dashboard."


def build_parser() -> argparse.ArgumentParser:
    """The ``fleet tui`` argument parser."""
    parser = FleetParser(prog="fleet tui", description=DESCRIPTION)
    add_tui_arguments(parser)
    return parser


def add_tui_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``fleet tui`` to ``parser``; run them with :func:`run_tui`."""
    parser.add_argument(
        "--server",
        help="control plane URL, e.g. https://127.0.0.1:8443 (default: FLEET_SERVER, "
        "else the profile written by 'fleet login')",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="file holding the API token, never the token in argv (default: FLEET_TOKEN, "
        "else the profile)",
    )
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument(
        "--ca-file",
        type=Path,
        help="the control plane's CA certificate, PEM (default: the profile's, else the "
        "system trust store)",
    )
    trust.add_argument(
        "--ca-pin", help="the CA's pin, sha256:…, checked against /v1/ca (default: none)"
    )
    parser.add_argument(
        "--wall", action="store_true", help="wall display: big counters, pages turn, input locked"
    )
    parser.add_argument(
        "--tick", type=duration, default="1s", metavar="DURATION", help="time between redraws"
    )
    parser.add_argument(
        "--theme",
        help="Textual theme, e.g. ansi-dark or ansi-light for 16-colour terminals "
        "(default: Textual's)",
    )
    parser.add_argument(
        "--keymap",
        type=Path,
        help=f"TOML file mapping binding ids to keys (default: {DEFAULT_KEYMAP} if present)",
    )
    parser.add_argument(
        "--logs-dir",
        type=Path,
        help="where fetched logs are saved (default: $XDG_STATE_HOME/fleet/logs)",
    )


def load_keymap(path: Path) -> dict[str, str]:
    """Read ``"fleet.revoke" = "X"`` lines (optionally under ``[keymap]``) from TOML."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read keymap {path}: {exc}") from None
    table = data.get("keymap", data)
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise ConfigError(f"keymap {path} must map binding ids to key strings")
    return dict(table)


def apply_profile(args: argparse.Namespace) -> None:
    """Fill what the flags did not give from the environment, then the profile.

    The profile is the one ``fleet login`` writes (server, token file, CA file).
    """
    args.server = args.server or os.environ.get("FLEET_SERVER")
    from fleet.ctl.errors import UsageError
    from fleet.ctl.profile import config_dir, load_profile

    try:
        profile = load_profile(config_dir(os.environ) / "config.toml")
    except UsageError as exc:
        raise ConfigError(str(exc)) from None
    if profile is None:
        return
    if not args.server:
        args.server = profile.server
    if args.token_file is None and not os.environ.get("FLEET_TOKEN", "").strip():
        args.token_file = profile.token_file
    if args.ca_file is None and args.ca_pin is None:
        args.ca_file = profile.ca_file


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {args.token_file}: {exc}") from None
    else:
        token = os.environ.get("FLEET_TOKEN", "").strip()
    if not token:
        raise ConfigError(
            "no token: pass --token-file PATH or set FLEET_TOKEN, or run 'fleet login'"
        )
    return token


def main(argv: list[str]) -> int:
    """Run ``fleet tui`` with ``argv`` (without the program name); returns the exit code."""
    return run_tui(build_parser().parse_args(argv))


def run_tui(args: argparse.Namespace) -> int:
    """Run the dashboard with the options of :func:`add_tui_arguments`."""
    try:
        apply_profile(args)
        if not args.server:
            raise ConfigError(
                "no server: pass --server URL or set FLEET_SERVER, or run 'fleet login'"
            )
        args.server = check_server_url(args.server)
        if args.tick <= 0:
            raise ConfigError("--tick must be above 0")
        token = _token(args)
        keymap_path = args.keymap or (DEFAULT_KEYMAP if DEFAULT_KEYMAP.exists() else None)
        keymap = load_keymap(keymap_path) if keymap_path else None
    except ConfigError as exc:
        print(f"fleet tui: {exc}", file=sys.stderr)
        return 2

    from textual.app import InvalidThemeError

    from .app import FleetApp
    from .keymap import check_keymap

    if keymap:
        try:
            check_keymap(keymap, keymap_path or "")
        except ConfigError as exc:
            print(f"fleet tui: {exc}", file=sys.stderr)
            return 2

    try:
        app = FleetApp(
            server_url=args.server,
            token=token,
            ca_file=args.ca_file,
            ca_pin=args.ca_pin,
            wall=args.wall,
            tick=args.tick,
            keymap=keymap,
            logs_dir=args.logs_dir,
            theme=args.theme,
        )
    except InvalidThemeError:
        print(f"fleet tui: no theme {args.theme!r}; try ansi-dark or textual-dark", file=sys.stderr)
        return 2
    result = app.run()
    return int(result or 0)
