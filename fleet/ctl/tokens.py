"""``fleet tokens list|create|revoke``: enrollment tokens for agents."""

from __future__ import annotations

import argparse
import time
from typing import Any

from ..cliparse import duration, name_of
from ..units import check_label_value, check_name, format_duration
from .client import ApiClient, path
from .common import Subparsers, confirm, verb
from .errors import UsageError
from .output import Column, ago, emit, print_table

__all__ = ["register"]

COLUMNS: list[Column] = [
    ("ID", lambda t: t["id"]),
    ("POOL", lambda t: t["pool"]),
    ("STATE", lambda t: t.get("state")),
    ("USES LEFT", lambda t: f"{t.get('uses_left')}/{t.get('uses_total')}"),
    ("EXPIRES", lambda t: ago(t.get("expires_at"))),
    ("CREATED", lambda t: ago(t.get("created_at"))),
    ("CREATED BY", lambda t: t.get("created_by")),
    ("LABELS", lambda t: t.get("labels")),
]


def _labels(items: list[str]) -> dict[str, str]:
    labels = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--label {item!r} must look like key=value")
        try:
            labels[check_name("label", key)] = check_label_value(key, value)
        except ValueError as exc:
            raise UsageError(f"--label: {exc}") from None
    return labels


def _usable(token: dict[str, Any], now: float) -> bool:
    return (
        token.get("revoked_at") is None
        and (token.get("uses_left") or 0) > 0
        and (token.get("expires_at") or 0) > now
    )


def _list(args: argparse.Namespace, api: ApiClient) -> int:
    tokens: list[dict[str, Any]] = api.call("GET", "/v1/tokens")
    if not args.all:
        tokens = [t for t in tokens if _usable(t, time.time())]
    emit(tokens, args.output, lambda: print_table(tokens, COLUMNS, "no enrollment tokens"))
    return 0


def _create(args: argparse.Namespace, api: ApiClient) -> int:
    body = {"pool": args.pool, "ttl_s": args.ttl, "uses": args.uses, "labels": _labels(args.label)}
    out = api.call("POST", "/v1/tokens", body)

    def human() -> None:
        # A company certificate is verified with the company's CA: say so in the recipe.
        pki = out.get("server_tls") == "external"
        print(
            f"Enrollment token {out['id']} for pool {out['pool']} ({out['uses']} use(s), "
            f"expires in {format_duration(args.ttl)}). Shown once:\n\n  {out['token']}\n\n"
            f"Endpoint: {out['endpoint']}\nCA pin:   {out['ca_pin']}\n\n"
            "On the agent host, put the token in a file readable only by the agent, then:\n"
            f"  fleet agent enroll --server {out['endpoint']} --ca-pin {out['ca_pin']} "
            + ("--ca-file COMPANY_CA.pem " if pki else "")
            + "--token-file TOKEN_FILE --state-dir /var/lib/fleet-agent"
            + (
                "\n(the server presents a certificate from your PKI: COMPANY_CA.pem is the CA "
                "that issued it, or leave --ca-file out to use the system trust store)"
                if pki
                else ""
            )
        )

    emit(out, "json" if args.json else args.output, human)
    return 0


def _revoke(args: argparse.Namespace, api: ApiClient) -> int:
    confirm(args, f"revoke enrollment token {args.id}")
    out = api.call("DELETE", path("/v1/tokens/{}", args.id))
    emit(out, args.output, lambda: print(f"revoked enrollment token {args.id}"))
    return 0


def register(sub: Subparsers) -> None:
    """Add ``fleet tokens`` (alias ``token``) and its verbs."""
    noun = sub.add_parser(
        "tokens",
        aliases=["token"],
        help="enrollment tokens for agents",
        description="Enrollment tokens: an agent trades one for its certificate.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verb(
        verbs, "list", _list, "list enrollment tokens (metadata, never values)", aliases=("ls",)
    )
    listing.add_argument(
        "--all", action="store_true", help="also used-up, expired and revoked tokens"
    )
    create = verb(verbs, "create", _create, "create an enrollment token; prints it once")
    create.add_argument(
        "--pool", required=True, type=name_of("pool"), help="the pool the agent joins"
    )
    create.add_argument(
        "--ttl",
        type=duration,
        default="30m",
        metavar="DURATION",
        help="how long the token stays valid: 30m, 24h, 7d",
    )
    create.add_argument("--uses", type=int, default=1, help="how many agents may use it")
    create.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a label the agents get; repeatable (default: none)",
    )
    create.add_argument("--json", action="store_true", help="the same as --output json")
    revoke = verb(
        verbs, "revoke", _revoke, "revoke an enrollment token before it is used", destructive=True
    )
    revoke.add_argument("id", metavar="ID", help="the token's id, from 'fleet tokens list'")
