"""``fleet remediation list|show|approve|reject|revert|policy``: the inbox and the policies.

A pool's policy (admin) says which conditions, held for how many checks, lead to
which action, and whether the action runs by itself (within the budgets) or
waits here for an operator.  The policy is JSON (docs/api.md, "Remediation"),
given with ``--file``.
"""

from __future__ import annotations

import argparse
from typing import Any

from ..cliparse import FleetParser, name_of
from .client import ApiClient, path
from .common import Subparsers, read_json, verb
from .errors import UsageError
from .output import Column, ago, emit, print_fields, print_table, when

__all__ = ["STATES", "register", "remediation_line"]

STATES = ("pending_approval", "running", "done", "failed", "rejected", "expired")


def _why(r: dict[str, Any]) -> str:
    """Why it waits (pending), else what came of it."""
    if r["state"] == "pending_approval":
        return str(r.get("why_approval") or "")
    return str(r.get("detail") or "")


COLUMNS: list[Column] = [
    ("ID", lambda r: r["id"]),
    ("STATE", lambda r: r["state"]),
    ("POOL", lambda r: r["pool"]),
    ("AGENT", lambda r: r["agent_name"]),
    ("ACTION", lambda r: r["action"]),
    ("CONDITION", lambda r: r["condition"]),
    ("BY", lambda r: r.get("decided_by")),
    ("CREATED", lambda r: ago(r.get("created_at"))),
    ("WHY / OUTCOME", _why),
]


def remediation_line(r: dict[str, Any]) -> str:
    """One remediation on one line, for ``fleet agents show``."""
    how = "automatic" if r.get("automatic") else (r.get("decided_by") or "approval")
    line = (
        f"{r['id']}  {r['state']}  {r['action']} ({how}): {r['condition']}, {ago(r['created_at'])}"
    )
    why = _why(r)
    return f"{line}: {why}" if why else line


def _list(args: argparse.Namespace, api: ApiClient) -> int:
    params = {k: getattr(args, k) for k in ("state", "agent", "pool") if getattr(args, k)}
    found: list[dict[str, Any]] = api.call("GET", "/v1/remediations", params=params)
    emit(found, args.output, lambda: print_table(found, COLUMNS, "no remediations"))
    return 0


def _show(args: argparse.Namespace, api: ApiClient) -> int:
    r: dict[str, Any] = api.call("GET", path("/v1/remediations/{}", args.id))
    emit(
        r,
        args.output,
        lambda: print_fields(
            [
                ("id", r["id"]),
                ("state", r["state"]),
                ("pool", r["pool"]),
                ("agent", f"{r['agent_name']} ({r['agent_id']})"),
                ("action", r["action"]),
                ("condition", r["condition"]),
                ("automatic", r.get("automatic")),
                ("waits because", r.get("why_approval")),
                ("created", when(r.get("created_at"))),
                (
                    "expires",
                    when(r.get("expires_at")) if r["state"] == "pending_approval" else None,
                ),
                ("decided by", r.get("decided_by")),
                ("decided", when(r.get("decided_at"))),
                ("finished", when(r.get("finished_at"))),
                ("outcome", r.get("detail")),
            ]
        ),
    )
    return 0


def _decide(args: argparse.Namespace, api: ApiClient) -> int:
    r = api.call(
        "POST", path("/v1/remediations/{}/" + args.decision, args.id), {"note": args.note or ""}
    )
    said = "approved" if args.decision == "approve" else "rejected"
    emit(
        r,
        args.output,
        lambda: print(
            f"{said} {r['id']} ({r['action']} of {r['agent_name']}): {r['state']}"
            + (f", {r['detail']}" if r.get("detail") else "")
        ),
    )
    return 0


def _revert(args: argparse.Namespace, api: ApiClient) -> int:
    r = api.call("POST", path("/v1/remediations/{}/revert", args.id))
    emit(r, args.output, lambda: print(f"reverted {r['id']}: {r['detail']}"))
    return 0


def _rule_text(rule: dict[str, Any]) -> str:
    extra = rule.get("depth", rule.get("connection"))
    return f"{rule['condition']}" + (f" {extra}" if extra is not None else "")


RULE_COLUMNS: list[Column] = [
    ("CONDITION", _rule_text),
    ("CHECKS", lambda r: r["checks"]),
    ("ACTION", lambda r: r["action"]),
    ("AUTOMATIC", lambda r: r["automatic"]),
]


def _print_policy(info: dict[str, Any]) -> None:
    policy = info["policy"]
    print_fields(
        [
            ("pool", info["pool"]),
            ("set by", info["set_by"]),
            ("set", when(info["set_at"])),
            ("check every", f"{policy['check_interval_s']:g} s"),
            (
                "budgets",
                f"{policy['per_agent_per_hour']} per agent, {policy['per_pool_per_hour']} per pool "
                "per hour (of each action)",
            ),
        ]
    )
    print()
    print_table(policy["rules"], RULE_COLUMNS, "no rules")


def _policy(args: argparse.Namespace, api: ApiClient) -> int:
    if args.file is not None and args.clear:
        raise UsageError("give --file or --clear, not both")
    where = path("/v1/pools/{}/remediation", args.pool)
    if args.clear:
        out = api.call("DELETE", where)
        emit(out, args.output, lambda: print(f"remediation is off in pool {args.pool}"))
        return 0
    if args.file is not None:
        out = api.call("PUT", where, read_json(args.file))
    else:
        out = api.call("GET", where)
    emit(out, args.output, lambda: _print_policy(out))
    return 0


def _id_arg(parser: FleetParser) -> FleetParser:
    parser.add_argument("id", metavar="ID", help="the remediation's id (rem_...), from 'list'")
    return parser


def register(sub: Subparsers) -> None:
    """Add ``fleet remediation``."""
    noun = sub.add_parser(
        "remediation",
        aliases=["remediations"],
        help="auto-remediation: the approval inbox and each pool's policy",
        description="Auto-remediation: actions a pool's policy runs by itself, within its "
        "budgets, or leaves here for an operator to approve or reject.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verb(
        verbs,
        "list",
        _list,
        "pending and running remediations, then the recent others, newest first",
        aliases=("ls",),
    )
    listing.add_argument("--state", choices=STATES, help="only this state (default: any)")
    listing.add_argument(
        "--agent", type=name_of("agent"), help="only this agent's, by name or id (default: any)"
    )
    listing.add_argument("--pool", type=name_of("pool"), help="only this pool's (default: any)")
    _id_arg(verb(verbs, "show", _show, "one remediation: why it waits, who decided, the outcome"))
    for decision, does in (
        ("approve", "run a pending remediation now, as you (operator)"),
        ("reject", "say no to a pending remediation: it is kept as rejected (operator)"),
    ):
        parser = _id_arg(verb(verbs, decision, _decide, does))
        parser.add_argument("--note", help="why, kept with it and in the audit (default: none)")
        parser.set_defaults(decision=decision)
    _id_arg(
        verb(
            verbs,
            "revert",
            _revert,
            "put back the connections a move_connections moved (admin)",
        )
    )
    policy = verb(
        verbs,
        "policy",
        _policy,
        "show a pool's remediation policy, set it from a JSON file, or --clear it (admin)",
        description="Without --file, show the policy. With --file, replace it with the JSON "
        "in the file (docs/api.md, Remediation). With --clear, turn remediation off in the "
        "pool (pending remediations stay until decided or expired).",
    )
    policy.add_argument("pool", metavar="POOL", type=name_of("pool"), help="the pool's name")
    policy.add_argument(
        "--file", metavar="JSON", help="the policy as a JSON file ('-' for stdin) (default: show)"
    )
    policy.add_argument(
        "--clear", action="store_true", help="remove the policy: remediation is off in the pool"
    )
