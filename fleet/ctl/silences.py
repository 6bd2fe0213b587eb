"""``fleet alerts ack|unack``, ``fleet silences`` and ``fleet maintenance``.

Held alerts stay open and shown; only their notifications stop.  Durations are
written as everywhere in fleet (``--for 2h``), starts as ``--start +30m`` or an ISO
8601 time (:func:`fleet.units.parse_start`); the server refuses one longer than
its ``silence_max_s`` (7 days by default), or starting further ahead, and says so.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..cliparse import duration, name_of, start_time
from ..units import START_EXAMPLES, check_label_value
from .client import ApiClient, path
from .common import Subparsers, confirm, verb
from .errors import UsageError
from .output import Column, ago, emit, print_table, when

__all__ = ["add_alert_verbs", "held", "register"]

SILENCE_COLUMNS: list[Column] = [
    ("ID", lambda s: s["id"]),
    ("STATE", lambda s: s["state"]),
    ("MATCHERS", lambda s: _matchers(s)),
    ("STARTS", lambda s: ago(s["starts_at"])),
    ("ENDS", lambda s: ago(s["ends_at"])),
    ("BY", lambda s: s["created_by"]),
    ("REASON", lambda s: s["reason"]),
]

WINDOW_COLUMNS: list[Column] = [
    ("ID", lambda w: w["id"]),
    ("STATE", lambda w: w["state"]),
    ("SCOPE", lambda w: w["scope"]),
    ("TARGET", lambda w: w["target_name"]),
    ("STARTS", lambda w: ago(w["starts_at"])),
    ("ENDS", lambda w: ago(w["ends_at"])),
    ("BY", lambda w: w["created_by"]),
    ("REASON", lambda w: w["reason"]),
]

MATCHERS = ("agent", "pool", "connection", "kind")


def held(alert: dict[str, Any]) -> str:
    """``acked by alice: on it; silenced by bob until 14:00 UTC: patching`` (or ``-``)."""
    parts = []
    if alert.get("acked_by"):
        note = alert.get("ack_note")
        parts.append(f"acked by {alert['acked_by']}" + (f": {note}" if note else ""))
    if alert.get("suppressed"):
        parts.append(str(alert["suppressed"]))
    return "; ".join(parts) or "-"


def _matchers(s: dict[str, Any]) -> str:
    return " ".join(f"{k}={s[k]}" for k in MATCHERS if s.get(k))


def _text(what: str, value: str) -> str:
    try:
        return check_label_value(what, value)
    except ValueError as exc:
        raise UsageError(f"--{what}: {exc}") from None


def _ack(args: argparse.Namespace, api: ApiClient) -> int:
    body = {"note": _text("note", args.note or "")}
    out = api.call("POST", path("/v1/alerts/{}/ack", args.id), body)
    emit(out, args.output, lambda: print(f"acknowledged alert {args.id}"))
    return 0


def _unack(args: argparse.Namespace, api: ApiClient) -> int:
    out = api.call("DELETE", path("/v1/alerts/{}/ack", args.id))
    emit(out, args.output, lambda: print(f"alert {args.id} is no longer acknowledged"))
    return 0


def add_alert_verbs(verbs: Subparsers) -> None:
    """Add ``ack`` and ``unack`` to ``fleet alerts``."""
    ack = verb(
        verbs, "ack", _ack, "acknowledge an open alert: repeat notifications stop, it stays shown"
    )
    ack.add_argument("id", metavar="ID", help="the alert's id, from 'fleet alerts list -o json'")
    ack.add_argument("--note", help="what you are doing about it (default: none)")
    unack = verb(verbs, "unack", _unack, "take an acknowledgement back: the alert notifies again")
    unack.add_argument("id", metavar="ID", help="the alert's id")


def _span(args: argparse.Namespace) -> dict[str, Any]:
    body = {"duration_s": args.duration, "reason": _text("reason", args.reason or "")}
    if args.start is not None:
        body["starts_at"] = args.start
    return body


def _from_until(out: dict[str, Any]) -> str:
    """``until 2026-12-01 18:30:05Z (in 2h)``, with ``from ...`` first when it starts later."""
    until = f"until {when(out['ends_at'])}"
    return f"from {when(out['starts_at'])} {until}" if out.get("state") == "pending" else until


def _silences(args: argparse.Namespace, api: ApiClient) -> int:
    found: list[dict[str, Any]] = api.call(
        "GET", "/v1/silences", params={"all": 1} if args.all else None
    )
    emit(found, args.output, lambda: print_table(found, SILENCE_COLUMNS, "no silences"))
    return 0


def _silence(args: argparse.Namespace, api: ApiClient) -> int:
    matchers = {k: getattr(args, k) for k in MATCHERS if getattr(args, k) is not None}
    if not matchers:
        raise UsageError(
            "say what to silence: --agent, --pool, --connection and/or --kind "
            "(every one given must match)"
        )
    out = api.call("POST", "/v1/silences", {**matchers, **_span(args)})
    emit(out, args.output, lambda: print(f"silence {out['id']} {_from_until(out)}"))
    return 0


def _unsilence(args: argparse.Namespace, api: ApiClient) -> int:
    confirm(args, f"end silence {args.id} now")
    out = api.call("DELETE", path("/v1/silences/{}", args.id))
    emit(out, args.output, lambda: print(f"ended silence {args.id}"))
    return 0


def _windows(args: argparse.Namespace, api: ApiClient) -> int:
    found: list[dict[str, Any]] = api.call(
        "GET", "/v1/maintenance", params={"all": 1} if args.all else None
    )
    emit(found, args.output, lambda: print_table(found, WINDOW_COLUMNS, "no maintenance windows"))
    return 0


def _window(args: argparse.Namespace, api: ApiClient) -> int:
    target = {"agent": args.agent} if args.agent is not None else {"pool": args.pool}
    out = api.call("POST", "/v1/maintenance", {**target, **_span(args)})
    emit(
        out,
        args.output,
        lambda: print(
            f"maintenance {out['id']}: {out['scope']} {out['target_name']} {_from_until(out)}"
        ),
    )
    return 0


def _unwindow(args: argparse.Namespace, api: ApiClient) -> int:
    confirm(args, f"end maintenance window {args.id} now")
    out = api.call("DELETE", path("/v1/maintenance/{}", args.id))
    emit(out, args.output, lambda: print(f"ended maintenance window {args.id}"))
    return 0


def _when(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--start",
        type=start_time,
        metavar="TIME",
        help=f"when it starts: {START_EXAMPLES} (default: now)",
    )
    parser.add_argument(
        "--for",
        dest="duration",
        type=duration,
        default=default,
        metavar="DURATION",
        help="how long, from the start: 30m, 2h, 1d",
    )
    parser.add_argument("--reason", help="why, for the audit and the dashboard (default: none)")


def register(sub: Subparsers) -> None:
    """Add ``fleet silences`` and ``fleet maintenance``."""
    noun = sub.add_parser(
        "silences",
        aliases=["silence"],
        help="hold back the notifications of matching alerts for a while",
        description="Silences: alerts matching every matcher stay shown, and are not notified.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verb(verbs, "list", _silences, "list active and pending silences", aliases=("ls",))
    listing.add_argument("--all", action="store_true", help="ended and deleted ones too")
    add = verb(verbs, "add", _silence, "silence the alerts that match every matcher given")
    add.add_argument(
        "--agent", type=name_of("agent"), help="an agent's name or id (default: any agent)"
    )
    add.add_argument(
        "--pool", type=name_of("pool"), help="a pool: its agents' and its own alerts (default: any)"
    )
    add.add_argument(
        "--connection", type=name_of("connection"), help="a connection's alerts (default: any)"
    )
    add.add_argument(
        "--kind", help="an alert kind: offline, stale, pool_below_min, ... (default: any)"
    )
    _when(add, "2h")
    rm = verb(verbs, "rm", _unsilence, "end a silence now", destructive=True, aliases=("delete",))
    rm.add_argument("id", metavar="ID", help="the silence's id (sil_...), from 'fleet silences'")

    noun = sub.add_parser(
        "maintenance",
        help="maintenance windows of agents and pools",
        description="Maintenance windows: an agent's or a pool's alerts (and the pool's "
        "minimum) are held back while it is worked on.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verb(verbs, "list", _windows, "list active and planned windows", aliases=("ls",))
    listing.add_argument("--all", action="store_true", help="ended and deleted ones too")
    add = verb(verbs, "add", _window, "put an agent or a pool in maintenance, from now or --start")
    which = add.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--agent", type=name_of("agent"), help="an agent's name or id (this or --pool required)"
    )
    which.add_argument("--pool", type=name_of("pool"), help="a pool (this or --agent required)")
    _when(add, "1h")
    rm = verb(verbs, "rm", _unwindow, "end a window now", destructive=True, aliases=("delete",))
    rm.add_argument("id", metavar="ID", help="the window's id (mnt_...)")
