"""``fleet server``: the control plane's command line.

:func:`add_server_arguments` fills the ``fleet server`` parser of the root parser
(``fleet/cli.py``) and :func:`run_server` runs it; :func:`server_main` does both for
a plain argv.  The admin commands (``fleet tokens``, ``fleet users``, ...) are in
``fleet/ctl/``.  Only the standard library is imported here: building the parser
must not load the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from fleet.cliparse import FleetParser, duration

__all__ = ["DEFAULT_DATA_DIR", "add_server_arguments", "run_server", "server_main"]

DEFAULT_DATA_DIR = Path(os.environ.get("FLEET_DATA_DIR", "./fleet-data"))


def _san(text: str) -> str:
    from .server_cert import check_san

    try:
        return check_san(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``fleet server`` to ``parser``."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA_DIR,
        help="where the CA, the SQLite store, the endpoint and the first admin token are "
        "kept (FLEET_DATA_DIR)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument(
        "--port", type=int, default=8443, help="the API's port; 0 picks a free port"
    )
    parser.add_argument(
        "--no-tls",
        action="store_true",
        help="plain HTTP, only behind a TLS-terminating proxy you control",
    )
    parser.add_argument(
        "--agent-port",
        type=int,
        default=None,
        help="the agents' channel port (default: the one recorded in the data dir, "
        "else --port + 1, else a free one)",
    )
    parser.add_argument(
        "--san",
        action="append",
        type=_san,
        default=None,
        metavar="NAME",
        help="a DNS name or IP address agents dial, for the server's certificate "
        "(repeatable; remembered in the data dir; localhost, 127.0.0.1, ::1 and --host "
        "are always included)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="FILE",
        help="serve this PEM certificate chain (your PKI's) instead of the fleet CA's own",
    )
    parser.add_argument(
        "--tls-key", type=Path, default=None, metavar="FILE", help="the key of --tls-cert"
    )
    parser.add_argument(
        "--heartbeat-interval",
        type=duration,
        default=None,
        metavar="DURATION",
        help="how often agents send a heartbeat, e.g. 5s (default: the setting "
        "heartbeat_interval_s)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a setting of controlplane/config.py, e.g. --set skew_warn_ms=500; "
        "repeatable (default: none)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="server log level",
    )


def run_server(args: argparse.Namespace) -> int:
    """Run the control plane with the options of :func:`add_server_arguments`."""
    import dataclasses

    from .config import Settings
    from .server import serve

    overrides: dict[str, Any] = {}
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or name not in fields:
            print(
                f"fleet server: --set {item!r}: known settings are {', '.join(fields)}",
                file=sys.stderr,
            )
            return 2
        kind = type(getattr(Settings(), name))
        try:
            overrides[name] = kind(value)
        except ValueError:
            print(
                f"fleet server: --set {item!r}: {value!r} is not a {kind.__name__}", file=sys.stderr
            )
            return 2
    if args.heartbeat_interval:
        overrides["heartbeat_interval_s"] = args.heartbeat_interval
    settings = Settings(**overrides)
    try:
        serve(
            args.data_dir,
            args.host,
            args.port,
            not args.no_tls,
            settings,
            args.log_level,
            agent_port=args.agent_port,
            sans=args.san,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
        )
    except OSError as exc:
        print(f"fleet server: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def server_main(argv: list[str]) -> int:
    """``fleet server ARGV``: parse, then run."""
    parser = FleetParser(prog="fleet server", description="Run the control plane.")
    add_server_arguments(parser)
    return run_server(parser.parse_args(argv))
