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
from typing import TYPE_CHECKING, Any

from fleet.cliparse import FleetParser, duration
from fleet.units import format_duration

from .defaults import (
    DEFAULT_HEARTBEAT_INTERVAL_S,
    DEFAULT_HOST,
    DEFAULT_LOG_LEVEL,
    DEFAULT_PORT,
    LOG_LEVELS,
)

if TYPE_CHECKING:
    from .config import Settings

__all__ = ["DEFAULT_DATA_DIR", "add_server_arguments", "run_server", "server_main"]

FALLBACK_DATA_DIR = Path("./fleet-data")
DEFAULT_DATA_DIR = Path(os.environ.get("FLEET_DATA_DIR", str(FALLBACK_DATA_DIR)))


SERVER_EPILOG = """\
Settings come from the config file, then FLEET_SERVER_<NAME> environment variables,
then these flags (each overrides the one before). Every setting has a name, listed
by --print-config and in docs/server.md: the key in the file, the variable's suffix,
and NAME in --set NAME=VALUE.

exit codes: 0 stopped, or --print-config; 1 cannot start (address in use, database
newer than this fleet or a failed migration); 2 bad usage or configuration.
"""


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``fleet server`` to ``parser`` (which :func:`run_server` runs).

    Standard library only: building the parser loads neither pydantic nor the server.
    """
    parser.description = parser.description or "Run the control plane."
    parser.epilog = SERVER_EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--data-dir",
        type=Path,
        metavar="DIR",
        help="where the CA, the database and the endpoint live; also holds server.toml "
        "(default: $FLEET_DATA_DIR, else ./fleet-data)",
    )
    parser.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML settings file (default: DATA_DIR/server.toml when it exists)",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the effective settings and where each came from, then exit",
    )
    parser.add_argument(
        "--rotate-release-key",
        action="store_true",
        help="make a new release key, endorsed by the current one, then exit; restart "
        "the control plane (and copy the key files to every replica) to use it",
    )
    parser.add_argument("--host", help=f"address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument(
        "--port", type=int, help=f"API port; 0 picks a free one (default: {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--agent-port",
        type=int,
        metavar="PORT",
        help="the agents' channel port (default: the one recorded in the data dir, "
        "else --port + 1, else a free one)",
    )
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument(
        "--no-tls",
        dest="tls",
        action="store_const",
        const=False,
        help="plain HTTP, only behind a TLS-terminating proxy you control (default: TLS on)",
    )
    tls.add_argument(
        "--tls", dest="tls", action="store_const", const=True, help="TLS on (the default)"
    )
    parser.add_argument(
        "--san",
        action="append",
        metavar="NAME",
        help="a DNS name or IP address agents dial, for the server's certificate; "
        "repeatable; remembered in the data dir, so a later start without --san keeps "
        "them (default: the remembered names; --host, localhost, 127.0.0.1 and ::1 "
        "always)",
    )
    parser.add_argument(
        "--tls-cert",
        type=Path,
        metavar="FILE",
        help="serve this PEM certificate from your PKI instead of the CA's (default: none)",
    )
    parser.add_argument(
        "--tls-key", type=Path, metavar="FILE", help="the private key of --tls-cert (default: none)"
    )
    parser.add_argument(
        "--store",
        metavar="URL",
        help="keep the fleet's state in PostgreSQL, postgresql://USER@HOST:PORT/DATABASE, "
        "without a password (PGPASSWORD, ~/.pgpass or store_password_file) (default: "
        "SQLite, DATA_DIR/fleet.db)",
    )
    parser.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        metavar="LEVEL",
        help=f"one of {', '.join(LOG_LEVELS)} (default: {DEFAULT_LOG_LEVEL})",
    )
    parser.add_argument(
        "--heartbeat-interval",
        dest="heartbeat_interval_s",
        type=duration,
        metavar="DURATION",
        help="how often agents send a heartbeat, e.g. 5s "
        f"(default: {format_duration(DEFAULT_HEARTBEAT_INTERVAL_S)})",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set any setting, e.g. --set skew_warn_ms=500 or --set restart_grace_s=1m; "
        "repeatable; --print-config lists the names (default: none)",
    )


_FLAGS = {
    "host": "--host",
    "port": "--port",
    "agent_port": "--agent-port",
    "tls": "--tls",
    "san": "--san",
    "tls_cert": "--tls-cert",
    "tls_key": "--tls-key",
    "log_level": "--log-level",
    "store": "--store",
    "heartbeat_interval_s": "--heartbeat-interval",
}
"""Settings with a flag of their own, and that flag."""


def _flag_values(args: argparse.Namespace) -> dict[str, tuple[str, Any]]:
    """Setting name to (flag, raw value), for every setting given on the command line."""
    out: dict[str, tuple[str, Any]] = {}
    for item in args.set:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--set {item!r}: write NAME=VALUE, e.g. --set skew_warn_ms=500")
        out[name.strip()] = (f"--set {name.strip()}", value)
    for name, flag in _FLAGS.items():
        value = getattr(args, name)
        if value is not None:
            if name == "tls" and value is False:
                flag = "--no-tls"
            out[name] = (flag, value)
    return out


def _data_dir(args: argparse.Namespace) -> tuple[Path, str]:
    if args.data_dir is not None:
        return args.data_dir, "flag --data-dir"
    if os.environ.get("FLEET_DATA_DIR"):
        return Path(os.environ["FLEET_DATA_DIR"]), "env FLEET_DATA_DIR"
    return FALLBACK_DATA_DIR, "default"


def _upgrade_store(settings: Settings, data_dir: Path) -> tuple[str, list[str]]:
    """Open the database once before serving: migrations run (or refuse) here, and an
    unreachable PostgreSQL, or another control plane using the store, is named, with a
    clear message instead of a failed start-up deep in the web server.

    Returns:
        The database as named in messages, and the steps applied to a database that
        had a schema already (a new one's are not news).
    """
    import asyncio

    from .store import SQLITE_FILE, make_store
    from .store.dsn import redact

    where = redact(settings.store) or str(data_dir / SQLITE_FILE)
    if not settings.store and not (data_dir / SQLITE_FILE).exists():
        return where, []

    async def upgrade() -> list[str]:
        store = make_store(
            settings.store,
            data_dir,
            pool_size=1,
            password_file=settings.store_password_file,
        )
        await store.open()
        try:
            await store.claim()  # another control plane on it: said here, exit 1
        finally:
            await store.close()
        applied = store.applied
        if applied and applied[0].version == 1:
            return []
        return [f"version {s.version} ({s.description})" for s in applied]

    return where, asyncio.run(upgrade())


def run_server(args: argparse.Namespace) -> int:
    """Run ``fleet server`` with ``args`` from a parser given :func:`add_server_arguments`.

    Returns:
        The exit code (see ``SERVER_EPILOG``).
    """
    from .config_load import ServerConfigError, load_settings, render_settings
    from .errors import StoreError
    from .release_key import ReleaseKeyError

    data_dir, data_origin = _data_dir(args)
    config_file = args.config if args.config is not None else data_dir / "server.toml"
    try:
        flags = _flag_values(args)
        loaded = load_settings(config_file, flags, required=args.config is not None)
    except (ServerConfigError, ValueError) as exc:
        for line in str(exc).splitlines():
            print(f"fleet server: {line}", file=sys.stderr)
        return 2
    if args.print_config:
        read = loaded.config_file
        print(
            "# fleet server: effective settings; precedence: flag > env > file > default\n"
            f"# data dir:    {data_dir} ({data_origin})\n"
            f"# config file: {f'{read} (read)' if read else f'none ({config_file} is absent)'}"
        )
        print(render_settings(loaded))
        return 0
    if args.rotate_release_key:
        return _rotate_release_key(data_dir)
    s = loaded.settings
    from .server import serve

    try:
        where, steps = _upgrade_store(s, data_dir)
        for step in steps:
            print(f"fleet server: {where}: schema upgraded to {step}")
        serve(
            data_dir,
            s.host,
            s.port,
            s.tls,
            s,
            s.log_level,
            agent_port=s.agent_port,
            # None keeps the names remembered in the data dir.
            sans=s.san if loaded.origins["san"].kind != "default" else None,
            tls_cert=s.tls_cert,
            tls_key=s.tls_key,
        )
    except (StoreError, ReleaseKeyError) as exc:
        print(f"fleet server: cannot start: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"fleet server: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        pass
    return 0


def _rotate_release_key(data_dir: Path) -> int:
    """``fleet server --rotate-release-key``: a new release key endorsed by the old."""
    from .release_key import CHAIN_FILE, ReleaseKey

    pki = data_dir / "pki"
    if not (pki / "release.key").exists():
        print(
            f"fleet server: no release key in {pki}: start the control plane once to make "
            "one (rotating it makes sense only once agents keep it)",
            file=sys.stderr,
        )
        return 2
    try:
        old, new = ReleaseKey.rotate(pki)
    except (OSError, ValueError) as exc:
        print(f"fleet server: cannot rotate the release key: {exc}", file=sys.stderr)
        return 1
    print(
        f"fleet server: release key rotated\n"
        f"  was: {old.public}\n"
        f"  now: {new.public} (endorsed by the old one, in {pki / CHAIN_FILE})\n"
        "Restart the control plane: it signs the stored releases again with the new key,\n"
        "and agents follow the endorsement at their next connection. With replicas, copy\n"
        f"release.key, release.pub and {CHAIN_FILE} from {pki} to every replica's pki/ first."
    )
    return 0


def server_main(argv: list[str]) -> int:
    """``fleet server ARGS``: parse ``argv`` and run the control plane."""
    parser = FleetParser(prog="fleet server", description="Run the control plane.")
    add_server_arguments(parser)
    return run_server(parser.parse_args(argv))
