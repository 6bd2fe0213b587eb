"""``fleet connections list|add|update|rm|probe``: data sources agents should reach."""

from __future__ import annotations

import argparse
from typing import Any

from ..cliparse import FleetParser, duration, name_of
from ..schedule_text import parse_schedule
from .client import ApiClient, path
from .common import Subparsers, confirm, verb
from .errors import UsageError
from .output import Column, emit, print_fields, print_table

__all__ = ["register"]

COLUMNS: list[Column] = [
    ("NAME", lambda c: c["name"]),
    ("ADDRESS", lambda c: f"{c.get('host')}:{c.get('port')}"),
    ("POOLS", lambda c: c.get("pools")),
    ("ROUTABLE", lambda c: c.get("routable")),
    ("VIA", lambda c: f"{c.get('via_pool')}/{c.get('via_agent')}" if c.get("via_agent") else None),
    ("NEXT RUN", lambda c: _next_run(c)),
]


def _next_run(conn: dict[str, Any]) -> str | None:
    text = conn.get("next_run")
    if text is None:
        return None
    return f"{text} AT RISK" if conn.get("at_risk") else str(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (1-65535)")
    return int(text)


def schedule_arg(text: str) -> dict[str, Any]:
    """``[NAME=]CRON[@ZONE]`` for argparse (:func:`fleet.schedule_text.parse_schedule`)."""
    try:
        return parse_schedule(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _list(args: argparse.Namespace, api: ApiClient) -> int:
    items: list[dict[str, Any]] = api.call("GET", "/v1/connections")
    items.sort(key=lambda c: c["name"])
    emit(items, args.output, lambda: print_table(items, COLUMNS, "no connections"))
    return 0


def _add(args: argparse.Namespace, api: ApiClient) -> int:
    body = {
        "name": args.name,
        "host": args.host,
        "port": args.port,
        "pools": args.pool,
        "schedules": args.schedule or [],
    }
    out = api.call("POST", "/v1/connections", body)  # a duplicate: 409 says to update
    emit(out, args.output, lambda: print_table([out], COLUMNS, ""))
    return 0


def _update(args: argparse.Namespace, api: ApiClient) -> int:
    body: dict[str, Any] = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("pools", args.pool))
        if v is not None
    }
    if args.schedule is not None and args.no_schedules:
        raise UsageError("give --schedule or --no-schedules, not both")
    if args.schedule is not None:
        body["schedules"] = args.schedule
    elif args.no_schedules:
        body["schedules"] = []
    if not body:
        raise UsageError(
            "nothing to change: give --host, --port, --pool, --schedule or --no-schedules"
        )
    out = api.call("PATCH", path("/v1/connections/{}", args.name), body)
    emit(out, args.output, lambda: print_table([out], COLUMNS, ""))
    return 0


def _rm(args: argparse.Namespace, api: ApiClient) -> int:
    confirm(args, f"delete connection {args.name}")
    out = api.call("DELETE", path("/v1/connections/{}", args.name))
    emit(out, args.output, lambda: print(f"deleted connection {args.name}"))
    return 0


def _probe(args: argparse.Namespace, api: ApiClient) -> int:
    body = {"tls": args.tls, "timeout_s": args.timeout}
    out: dict[str, Any] = api.call("POST", path("/v1/connections/{}/probe", args.name), body)

    def human() -> None:
        result = out.get("result") or {}
        timings = [
            f"{label} {result[key]:.0f}ms"
            for label, key in (("dns", "dns_ms"), ("connect", "connect_ms"), ("tls", "tls_ms"))
            if result.get(key) is not None
        ]
        print_fields(
            [
                ("connection", args.name),
                ("via", f"{out.get('pool')}/{out.get('agent_id')}"),
                ("result", "ok" if result.get("ok") else f"FAIL ({result.get('failure')})"),
                ("error", result.get("error")),
                ("resolved", result.get("resolved")),
                ("timings", ", ".join(timings)),
                ("peer certificate", result.get("peer_cert_subject")),
            ]
        )

    emit(out, args.output, human)
    ok = bool((out.get("result") or {}).get("ok"))
    return 0 if ok else 1


def _name_arg(parser: FleetParser) -> FleetParser:
    parser.add_argument(
        "name", metavar="NAME", type=name_of("connection"), help="the connection's name"
    )
    return parser


def register(sub: Subparsers) -> None:
    """Add ``fleet connections`` and its verbs."""
    noun = sub.add_parser(
        "connections",
        help="data sources that agents of given pools should reach",
        description="Connections: a host and port, and the pools whose agents should "
        "reach it. A connection is routable while some healthy agent of its pools is up.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    verb(
        verbs,
        "list",
        _list,
        "list connections, whether they are routable and their next scheduled run",
        aliases=("ls",),
    )
    add = _name_arg(verb(verbs, "add", _add, "register a connection"))
    add.add_argument("--host", required=True, help="the source's host name or address")
    add.add_argument("--port", required=True, type=_port, help="the source's port")
    add.add_argument(
        "--pool",
        required=True,
        action="append",
        type=name_of("pool"),
        help="a pool whose agents should reach it; repeatable",
    )
    add.add_argument(
        "--schedule",
        action="append",
        type=schedule_arg,
        metavar="[NAME=]CRON[@ZONE]",
        help="when a job that uses it runs, e.g. '0 14 * * *@Europe/Berlin' (zone default "
        "UTC); the server warns ahead of each run that has no healthy agent; repeatable",
    )
    update = _name_arg(
        verb(
            verbs,
            "update",
            _update,
            "change a connection's host, port, pools or schedules (what is not given stays)",
            aliases=("edit",),
        )
    )
    update.add_argument("--host", help="the new host (default: unchanged)")
    update.add_argument("--port", type=_port, help="the new port (default: unchanged)")
    update.add_argument(
        "--pool",
        action="append",
        type=name_of("pool"),
        help="the new pools, replacing the old ones; repeatable (default: unchanged)",
    )
    update.add_argument(
        "--schedule",
        action="append",
        type=schedule_arg,
        metavar="[NAME=]CRON[@ZONE]",
        help="the new schedules, replacing the old ones; repeatable (default: unchanged)",
    )
    update.add_argument(
        "--no-schedules", action="store_true", help="remove every schedule of the connection"
    )
    _name_arg(verb(verbs, "rm", _rm, "delete a connection", destructive=True, aliases=("delete",)))
    probe = _name_arg(
        verb(
            verbs,
            "probe",
            _probe,
            "probe a connection from a healthy agent of its pools; exit 1 when the probe fails",
        )
    )
    probe.add_argument("--tls", action="store_true", help="also do a TLS handshake")
    probe.add_argument(
        "--timeout",
        type=duration,
        default="5s",
        metavar="DURATION",
        help="how long the agent waits for the source",
    )
