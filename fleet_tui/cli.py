"""``fleet tui``: parse the command line and run the dashboard."""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path

from .errors import ConfigError

__all__ = ["build_parser", "load_keymap", "main"]

DEFAULT_KEYMAP = Path.home() / ".config" / "fleet" / "keymap.toml"
"""Read when it exists and ``--keymap`` is not given."""


def build_parser() -> argparse.ArgumentParser:
    """The ``fleet tui`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="fleet tui",
        description="Watch the fleet live and act on it: a terminal dashboard.",
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("FLEET_SERVER"),
        help="control plane URL, e.g. https://127.0.0.1:8443 (or FLEET_SERVER)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        help="file holding the API token (or set FLEET_TOKEN); never pass it in argv",
    )
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--ca-file", type=Path, help="the control plane's CA certificate (PEM)")
    trust.add_argument("--ca-pin", help="the CA's pin, sha256:…, checked against /v1/ca")
    parser.add_argument(
        "--wall", action="store_true", help="wall display: big counters, pages turn, input locked"
    )
    parser.add_argument(
        "--tick", type=float, default=1.0, help="seconds between redraws (default 1.0)"
    )
    parser.add_argument(
        "--theme", help="Textual theme, e.g. ansi-dark or ansi-light for 16-colour terminals"
    )
    parser.add_argument(
        "--keymap",
        type=Path,
        help=f"TOML file mapping binding ids to keys (default {DEFAULT_KEYMAP} if present)",
    )
    parser.add_argument("--logs-dir", type=Path, help="where fetched logs are saved")
    return parser


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


def _token(args: argparse.Namespace) -> str:
    if args.token_file is not None:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {args.token_file}: {exc}") from None
    else:
        token = os.environ.get("FLEET_TOKEN", "").strip()
    if not token:
        raise ConfigError("no token: pass --token-file PATH or set FLEET_TOKEN")
    return token


def main(argv: list[str]) -> int:
    """Run ``fleet tui`` with ``argv`` (without the program name); returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if not args.server:
            raise ConfigError("no server: pass --server URL or set FLEET_SERVER")
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
