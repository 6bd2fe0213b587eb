"""``fleet alerts list|ack|unack`` and ``fleet audit``: what happened, and who did it."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..cliparse import duration
from .client import ApiClient
from .common import Subparsers, verb
from .output import Column, ago, emit, print_table, stamp
from .silences import add_alert_verbs, held

__all__ = ["register"]

ALERT_COLUMNS: list[Column] = [
    ("SEVERITY", lambda a: a["severity"]),
    ("KIND", lambda a: a["kind"]),
    ("TARGET", lambda a: a["target"]),
    ("RAISED", lambda a: ago(a.get("raised_at"))),
    ("CLEARED", lambda a: ago(a.get("cleared_at"))),
    ("FLAPS", lambda a: str(a.get("flaps", 0))),
    ("MESSAGE", lambda a: a["message"]),
    ("HELD", held),
]

AUDIT_COLUMNS: list[Column] = [
    ("TIME", lambda e: stamp(e.get("at"))),
    ("ACTOR", lambda e: e.get("actor")),
    ("ACTION", lambda e: e.get("action")),
    ("TARGET", lambda e: e.get("target")),
    ("RESULT", lambda e: e.get("result")),
    ("DETAIL", lambda e: e.get("detail")),
]


def _alerts(args: argparse.Namespace, api: ApiClient) -> int:
    alerts: list[dict[str, Any]] = api.call(
        "GET", "/v1/alerts", params={"all": 1} if args.all else None
    )
    alerts.sort(key=lambda a: (a["severity"] != "critical", -a["raised_at"]))
    columns = ALERT_COLUMNS if args.all else [c for c in ALERT_COLUMNS if c[0] != "CLEARED"]
    emit(alerts, args.output, lambda: print_table(alerts, columns, "no open alerts"))
    return 0


def _audit(args: argparse.Namespace, api: ApiClient) -> int:
    params: dict[str, str | int | float] = {"limit": args.limit}
    if args.since is not None:
        params["since"] = time.time() - args.since
    if args.actor is not None:
        params["actor"] = args.actor
    entries: list[dict[str, Any]] = api.call("GET", "/v1/audit", params=params)
    emit(entries, args.output, lambda: print_table(entries, AUDIT_COLUMNS, "no audit entries"))
    return 0


def register(sub: Subparsers) -> None:
    """Add ``fleet alerts`` and ``fleet audit``."""
    noun = sub.add_parser(
        "alerts",
        help="open alerts (and cleared ones with --all)",
        description="Alerts raised by the control plane.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verb(verbs, "list", _alerts, "list open alerts, critical first", aliases=("ls",))
    listing.add_argument("--all", action="store_true", help="cleared alerts too")
    add_alert_verbs(verbs)

    audit = verb(
        sub, "audit", _audit, "the audit log, newest first: who did what, to what, and the result"
    )
    audit.add_argument(
        "--since",
        type=duration,
        metavar="DURATION",
        help="only entries newer than this, e.g. 1h or 7d (default: all)",
    )
    audit.add_argument(
        "--actor",
        metavar="NAME",
        help="only this actor's entries: an operator, an agent id, token:ID, system "
        "(default: everyone's)",
    )
    audit.add_argument("--limit", type=int, default=100, help="at most this many entries")
