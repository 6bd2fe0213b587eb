"""``fleet login``, ``fleet logout`` and ``fleet whoami``: the profile."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from fleet.files import write_private
from fleet.pins import check_pin_text

from .client import ApiClient
from .common import Subparsers, connection_options
from .errors import CtlError, UsageError
from .profile import Target, config_dir, resolve, save_profile
from .trust import fetch_pinned_ca

__all__ = ["register"]


def _target(args: argparse.Namespace) -> Target:
    env = dict(os.environ)
    try:
        return resolve(
            server=args.server,
            ca_file=args.ca_file,
            token_file=args.token_file,
            data_dir=args.data_dir,
            env=env,
            use_profile=False,
        )
    except UsageError:
        # With a server but no token, on a terminal: ask rather than have it in argv.
        given = args.token_file is not None
        if given or not (sys.stdin.isatty() and (args.server or env.get("FLEET_SERVER"))):
            raise
    token = getpass.getpass("API token (flta_...): ").strip()
    if not token:
        raise UsageError("no token given; nothing was written")
    env["FLEET_TOKEN"] = token
    return resolve(
        server=args.server,
        ca_file=args.ca_file,
        token_file=None,
        data_dir=args.data_dir,
        env=env,
        use_profile=False,
    )


def _pin_of(args: argparse.Namespace) -> str | None:
    if args.ca_pin is None:
        return None
    if args.ca_file is not None:
        raise UsageError("give --ca-file or --ca-pin, not both; nothing was written")
    try:
        return check_pin_text(args.ca_pin)
    except ValueError as exc:
        raise UsageError(f"{exc}; nothing was written") from None


def _whoami_pinned(target: Target, pin: str) -> tuple[dict[str, Any], bytes]:
    """Trust the CA served at /v1/ca if it has ``pin``, then ask who the token is with it."""
    ca_pem = fetch_pinned_ca(target.server, pin).encode("ascii")  # no token sent yet
    with tempfile.TemporaryDirectory(prefix="fleet-login-") as tmp:
        ca_file = Path(tmp) / "ca.pem"
        write_private(ca_file, ca_pem)
        pinned = replace(target, ca_file=ca_file, origin={**target.origin, "ca": "--ca-pin"})
        with ApiClient(pinned) as api:
            who: dict[str, Any] = api.call("GET", "/v1/whoami")
    return who, ca_pem


def _login(args: argparse.Namespace) -> int:
    pin = _pin_of(args)
    target = _target(args)
    if pin is not None:
        return _saved(args, target, *_whoami_pinned(target, pin))
    with ApiClient(target) as api:
        who: dict[str, Any] = api.call("GET", "/v1/whoami")
    ca_pem = None
    if target.ca_file is not None:
        try:
            ca_pem = target.ca_file.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read the CA file {target.ca_file}: {exc.strerror}") from None
    return _saved(args, target, who, ca_pem)


def _saved(
    args: argparse.Namespace, target: Target, who: dict[str, Any], ca_pem: bytes | None
) -> int:
    path = save_profile(
        config_dir(os.environ), target.server, target.token, ca_pem, who["name"], who["role"]
    )
    if args.output == "json":
        print(json.dumps(who, indent=2))
    else:
        print(f"logged in to {target.server} as {who['name']} ({who['role']}); profile {path}")
    return 0


def _logout(args: argparse.Namespace) -> int:
    directory = config_dir(os.environ)
    removed = []
    for name in ("config.toml", "token", "ca.pem"):
        path = directory / name
        if path.exists():
            try:
                path.unlink()
            except OSError as exc:
                raise CtlError(f"cannot remove {path}: {exc.strerror}") from None
            removed.append(str(path))
    print(f"removed {', '.join(removed)}" if removed else f"no profile in {directory}")
    return 0


def _whoami(args: argparse.Namespace) -> int:
    target = resolve(
        server=args.server,
        ca_file=args.ca_file,
        token_file=args.token_file,
        data_dir=args.data_dir,
        env=os.environ,
    )
    with ApiClient(target) as api:
        who: dict[str, Any] = api.call("GET", "/v1/whoami")
    if args.output == "json":
        print(json.dumps(who, indent=2))
    else:
        origin = target.origin
        print(
            f"{who['name']} ({who['role']}) at {target.server}\n"
            f"server from {origin.get('server')}, token from {origin.get('token')}, "
            f"CA from {origin.get('ca', 'the system trust store')}"
        )
    return 0


def register(sub: Subparsers) -> None:
    """Add ``fleet login``, ``fleet logout`` and ``fleet whoami``."""
    login = sub.add_parser(
        "login",
        parents=[connection_options()],
        help="check a server, CA and token, then remember them in the profile",
        description="Check the control plane, its CA and your token (asked for on a "
        "terminal if no --token-file, FLEET_TOKEN_FILE or FLEET_TOKEN gives it), then write "
        "$XDG_CONFIG_HOME/fleet/config.toml (~/.config/fleet/config.toml), with the token "
        "and a copy of the CA beside it; all 0600. Later commands need no flags. "
        "--ca-pin instead of --ca-file fetches the CA from GET /v1/ca, checks it against the "
        "pin before the token is sent, then verifies the server with it.",
    )
    login.add_argument(
        "--ca-pin",
        metavar="sha256:HEX",
        help="trust the control plane's CA by its pin, as 'fleet agent enroll' does "
        "(printed by 'fleet server', DATA_DIR/ca.pin); instead of --ca-file (default: none)",
    )
    login.set_defaults(run=_login, prog=login.prog)
    logout = sub.add_parser(
        "logout",
        help="remove the profile and the token it holds",
        description="Remove the profile written by 'fleet login'.",
    )
    logout.set_defaults(run=_logout, prog=logout.prog)
    whoami = sub.add_parser(
        "whoami",
        parents=[connection_options()],
        help="who the token is, and where the settings came from",
        description="Ask the control plane who the token is.",
    )
    whoami.set_defaults(run=_whoami, prog=whoami.prog)
