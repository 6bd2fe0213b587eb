"""What every admin command shares: the connection options, ``--output``, ``--yes``.

Each noun module registers its verbs with :func:`verb`, which adds these options,
and each verb is a function ``(args, api) -> int`` run by :func:`run`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeAlias

from ..cliparse import FleetParser
from .client import ApiClient
from .errors import CtlError, UsageError
from .profile import Target, resolve

__all__ = ["Verb", "confirm", "connection_options", "read_json", "target_of", "verb"]

Verb = Callable[[argparse.Namespace, ApiClient], int]
Subparsers: TypeAlias = "argparse._SubParsersAction[FleetParser]"
"""What ``add_subparsers`` returns (generic only in typeshed, hence the string)."""


def connection_options() -> FleetParser:
    """A parent parser with the options that say which control plane to talk to."""
    parent = FleetParser(add_help=False)
    group = parent.add_argument_group("control plane (flags > environment > profile > data dir)")
    group.add_argument(
        "--server",
        metavar="URL",
        help="control plane URL, https://HOST:PORT (default: FLEET_SERVER, the profile "
        "written by 'fleet login', else DATA_DIR/endpoint)",
    )
    group.add_argument(
        "--ca-file",
        type=Path,
        metavar="PEM",
        help="the control plane's CA certificate (default: FLEET_CA_FILE, the profile, "
        "DATA_DIR/ca.pem, else the system trust store)",
    )
    group.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="file holding your API token, never the token in argv (default: "
        "FLEET_TOKEN_FILE, FLEET_TOKEN, the profile, else DATA_DIR/admin.token)",
    )
    group.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="on the server host: the control plane's data directory, read last "
        "(default: FLEET_DATA_DIR, else ./fleet-data)",
    )
    group.add_argument(
        "-o",
        "--output",
        choices=["table", "json"],
        default="table",
        help="'json' prints exactly the API's answer, for scripts",
    )
    return parent


def verb(
    sub: Subparsers,
    name: str,
    func: Verb,
    help: str,
    *,
    destructive: bool = False,
    aliases: tuple[str, ...] = (),
    description: str | None = None,
) -> FleetParser:
    """Add ``name`` to ``sub``, running ``func``; destructive verbs get ``--yes``."""
    parser: FleetParser = sub.add_parser(
        name,
        help=help,
        description=description or help[:1].upper() + help[1:] + ".",
        parents=[connection_options()],
        aliases=list(aliases),
    )
    if destructive:
        parser.add_argument(
            "-y",
            "--yes",
            action="store_true",
            help="do not ask; needed when stdin is not a terminal",
        )
    parser.set_defaults(run=lambda args: run(func, args), prog=parser.prog)
    return parser


def target_of(args: argparse.Namespace) -> Target:
    """The control plane the connection options select."""
    return resolve(
        server=args.server,
        ca_file=args.ca_file,
        token_file=args.token_file,
        data_dir=args.data_dir,
        env=os.environ,
    )


def run(func: Verb, args: argparse.Namespace) -> int:
    """Resolve the control plane, call ``func`` with a client, return its exit code."""
    with ApiClient(target_of(args)) as api:
        try:
            return func(args, api)
        except (KeyError, TypeError, AttributeError) as exc:
            # The answer lacks what this CLI reads: a server of another version.
            raise CtlError(
                f"the control plane answered in a shape this CLI does not know "
                f"({type(exc).__name__}: {exc}); compare 'fleet --version' with the "
                "server's (GET /healthz) and upgrade the older one"
            ) from None


def confirm(args: argparse.Namespace, question: str) -> None:
    """Ask ``question`` on a terminal unless ``--yes``; refuse without a terminal.

    Raises:
        UsageError: no terminal and no ``--yes``.
        CtlError: the answer was not yes.
    """
    if getattr(args, "yes", False):
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"nothing was done: there is no terminal to confirm on; pass --yes to {question}"
        )
    # The question goes to stderr: stdout may be a pipe (-o json | jq).
    print(f"{question[:1].upper()}{question[1:]}? [y/N] ", end="", file=sys.stderr, flush=True)
    answer = sys.stdin.readline()
    if answer.strip().lower() not in ("y", "yes"):
        raise CtlError("cancelled; nothing was changed")


def read_json(name: str) -> Any:
    """The JSON in file ``name`` (``-``: stdin), or a :class:`UsageError` that says why not."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text()
        return json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{name} is not JSON: {exc}") from None
