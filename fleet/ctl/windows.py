"""``fleet pools windows POOL``: show or replace a pool's maintenance and freeze windows.

A window is written in one argument, its fields separated by spaces:

    --maintenance "nightly mon-fri 02:00 2h Europe/Berlin"
    --freeze "month-end daily 00:00 24h"
    --freeze "black-friday 2026-11-27T00:00 2026-11-30T00:00 Europe/Berlin"
    --maintenance "patch 2026-12-01T22:00 2026-12-02T02:00"

Days are ``mon,wed,fri``, a range ``mon-fri``, ``daily``, ``weekdays`` or
``weekends``; a window whose second field is an ISO time opens once (from,
until).  The zone is optional (``--timezone``, else UTC).  The flags replace
every window of the pool.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..cliparse import FleetParser, name_of
from ..units import format_duration, parse_duration
from .client import ApiClient, path
from .common import Subparsers, confirm, verb
from .errors import UsageError
from .output import Column, emit, print_fields, print_table, when

__all__ = ["add_windows_verb", "parse_spec"]

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_NAMED = {"daily": DAYS, "weekdays": DAYS[:5], "weekends": DAYS[5:]}


def _days(text: str) -> list[str]:
    if text in _NAMED:
        return list(_NAMED[text])
    out: list[str] = []
    for part in text.split(","):
        first, sep, last = part.partition("-")
        if first not in DAYS or (sep and last not in DAYS):
            raise ValueError(
                f"{text!r} is not a set of days: write mon,wed,fri or mon-fri, daily, "
                "weekdays or weekends"
            )
        lo, hi = DAYS.index(first), DAYS.index(last) if sep else DAYS.index(first)
        span = range(lo, hi + 1) if lo <= hi else [*range(lo, 7), *range(0, hi + 1)]
        out += [DAYS[i] for i in span if DAYS[i] not in out]
    return out


def parse_spec(text: str, timezone: str, kind: str) -> dict[str, Any]:
    """One window from its one-argument form, as the API takes it.

    Raises:
        ValueError: what is wrong and how to write it.
    """
    fields = text.split()
    example = (
        "'nightly mon-fri 02:00 2h Europe/Berlin' or 'patch 2026-12-01T22:00 2026-12-02T02:00'"
        if kind == "maintenance"
        else "'month-end daily 00:00 24h' or 'black-friday 2026-11-27T00:00 2026-11-30T00:00'"
    )
    if len(fields) not in (3, 4, 5):
        raise ValueError(
            f"--{kind} {text!r}: write NAME DAYS HH:MM DURATION [ZONE], e.g. {example}"
        )
    name = fields[0]
    if len(fields) in (3, 4) and "T" in fields[1]:
        zone = fields[3] if len(fields) == 4 else timezone
        return {"name": name, "from": fields[1], "until": fields[2], "timezone": zone}
    if len(fields) < 4:
        raise ValueError(
            f"--{kind} {text!r}: write NAME DAYS HH:MM DURATION [ZONE], e.g. {example}"
        )
    zone = fields[4] if len(fields) == 5 else timezone
    return {
        "name": name,
        "weekdays": _days(fields[1].lower()),
        "start": fields[2],
        "duration_s": parse_duration(fields[3]),
        "timezone": zone,
    }


def _when(window: dict[str, Any]) -> str:
    if "from" in window:
        return f"{window['from']} until {window['until']}"
    days = ",".join(window["weekdays"])
    return f"{days} {window['start']} for {format_duration(window['duration_s'])}"


COLUMNS: list[Column] = [
    ("NAME", lambda w: w["name"]),
    ("KIND", lambda w: w["kind"]),
    ("WHEN", _when),
    ("ZONE", lambda w: w.get("timezone")),
]


def _show(info: dict[str, Any]) -> None:
    rows = [{**w, "kind": "maintenance"} for w in info["maintenance"]]
    rows += [{**w, "kind": "freeze"} for w in info["freezes"]]
    print_table(rows, COLUMNS, f"pool {info['pool']} has no windows: changes may happen any time")
    print()
    state = "frozen" if info["frozen"] else "not frozen"
    fields: list[tuple[str, object]] = [("now", state)]
    if info["frozen"]:
        fields.append(("frozen by", f"{info['frozen_by']} until {when(info['frozen_until'])}"))
    if info["in_maintenance"] is not None:
        fields.append(("in maintenance", info["in_maintenance"]))
        if info["maintenance_until"]:
            fields.append(("closes", when(info["maintenance_until"])))
        if info["next_maintenance_at"]:
            fields.append(("next opens", when(info["next_maintenance_at"])))
    fields.append(("rollouts", f"wait: {info['hold']}" if info["hold"] else "may proceed"))
    print_fields(fields)


def _read_json(name: str) -> Any:
    try:
        return json.loads(sys.stdin.read() if name == "-" else Path(name).read_text())
    except OSError as exc:
        raise UsageError(f"cannot read {name}: {exc.strerror}") from None
    except ValueError as exc:
        raise UsageError(f"{name} is not JSON: {exc}") from None


def _windows(args: argparse.Namespace, api: ApiClient) -> int:
    url = path("/v1/pools/{}/windows", args.pool)
    given = bool(args.maintenance or args.freeze)
    if sum((given, args.file is not None, args.clear)) > 1:
        raise UsageError("give windows as flags, or --file, or --clear: only one of them")
    if args.clear:
        confirm(args, f"remove every window of pool {args.pool}")
        body: Any = {"maintenance": [], "freezes": []}
    elif args.file is not None:
        body = _read_json(args.file)
    elif given:
        try:
            body = {
                "maintenance": [
                    parse_spec(s, args.timezone, "maintenance") for s in args.maintenance or []
                ],
                "freezes": [parse_spec(s, args.timezone, "freeze") for s in args.freeze or []],
            }
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    else:
        shown: dict[str, Any] = api.call("GET", url)
        emit(shown, args.output, lambda: _show(shown))
        return 0
    out: dict[str, Any] = api.call("PUT", url, body)
    emit(out, args.output, lambda: _show(out))
    return 0


def add_windows_verb(verbs: Subparsers) -> None:
    """Add ``windows`` to ``fleet pools``."""
    parser: FleetParser = verb(
        verbs,
        "windows",
        _windows,
        "show a pool's maintenance and freeze windows, or replace them",
        destructive=True,
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    parser.add_argument("pool", metavar="POOL", type=name_of("pool"), help="the pool's name")
    parser.add_argument(
        "--maintenance",
        action="append",
        metavar="SPEC",
        help="a maintenance window, 'NAME DAYS HH:MM DURATION [ZONE]' or 'NAME FROM UNTIL "
        "[ZONE]': rollouts, and the upgrades the pool's pin brings, proceed only inside one; "
        "repeatable (default: none)",
    )
    parser.add_argument(
        "--freeze",
        action="append",
        metavar="SPEC",
        help="a freeze, 'NAME DAYS HH:MM DURATION [ZONE]' or 'NAME FROM UNTIL [ZONE]' (ISO "
        "times): pins and rollouts cannot change during it; repeatable (default: none)",
    )
    parser.add_argument(
        "--timezone",
        default="UTC",
        metavar="ZONE",
        help="the IANA time zone of windows that name none",
    )
    parser.add_argument(
        "--file",
        metavar="JSON",
        help="the windows as a JSON file ('-' for stdin), as in docs/api.md (default: the flags)",
    )
    parser.add_argument(
        "--clear", action="store_true", help="remove every window of the pool (asks first)"
    )
