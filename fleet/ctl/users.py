"""``fleet users list|create|revoke|rotate``: operators and their API tokens."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..cliparse import FleetParser, name_of
from .client import ApiClient, path
from .common import Subparsers, confirm, verb
from .output import Column, ago, emit, print_table
from .profile import replace_profile_token

__all__ = ["register"]

ROLES = ("viewer", "operator", "admin")

COLUMNS: list[Column] = [
    ("NAME", lambda u: u["name"]),
    ("ROLE", lambda u: u["role"]),
    ("CREATED", lambda u: ago(u.get("created_at"))),
    ("LAST USED", lambda u: ago(u.get("last_used_at"))),
    ("CREATED BY", lambda u: u.get("created_by")),
]


def _show_token(out: dict[str, Any], what: str) -> None:
    print(
        f"{what} {out['name']} ({out['role']}). API token, shown once:\n\n  {out['token']}\n\n"
        "Give it to its owner through a secret channel; they log in with\n"
        "  fleet login --server URL --ca-file CA.pem --token-file FILE_HOLDING_IT"
    )


def _list(args: argparse.Namespace, api: ApiClient) -> int:
    users: list[dict[str, Any]] = api.call("GET", "/v1/users")
    emit(users, args.output, lambda: print_table(users, COLUMNS, "no users"))
    return 0


def _create(args: argparse.Namespace, api: ApiClient) -> int:
    out = api.call("POST", "/v1/users", {"name": args.name, "role": args.role})
    emit(out, args.output, lambda: _show_token(out, "User"))
    return 0


def _revoke(args: argparse.Namespace, api: ApiClient) -> int:
    confirm(args, f"revoke user {args.name}: its token is refused at once")
    out = api.call("DELETE", path("/v1/users/{}", args.name))
    emit(out, args.output, lambda: print(f"revoked user {args.name}; its token is refused"))
    return 0


def _rotate(args: argparse.Namespace, api: ApiClient) -> int:
    me = api.call("GET", "/v1/whoami")["name"]
    out = api.call("POST", path("/v1/users/{}/rotate", args.name))
    saved = None
    if me == args.name:  # our own token: keep the profile working
        saved = replace_profile_token(os.environ, api.target.token, out["token"])

    def human() -> None:
        _show_token(out, "New token for user")
        if saved is not None:
            print(f"\nYour profile now uses it ({saved}).")
        elif me == args.name:
            print("\nThis was your own token: update the file or variable it came from.")

    emit(out, args.output, human)
    return 0


def _name_arg(parser: FleetParser) -> FleetParser:
    parser.add_argument("name", metavar="NAME", type=name_of("user"), help="the operator's name")
    return parser


def register(sub: Subparsers) -> None:
    """Add ``fleet users`` (alias ``user``) and its verbs."""
    noun = sub.add_parser(
        "users",
        aliases=["user"],
        help="operators and their API tokens",
        description="Operators (people and scripts) and their API tokens. Roles: "
        "viewer < operator < admin.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    verb(
        verbs,
        "list",
        _list,
        "list operators: role, created, last used (never tokens)",
        aliases=("ls",),
    )
    create = _name_arg(verb(verbs, "create", _create, "create an operator; prints its token once"))
    create.add_argument("--role", choices=ROLES, default="viewer", help="what the token may do")
    _name_arg(
        verb(verbs, "revoke", _revoke, "revoke an operator's token at once", destructive=True)
    )
    _name_arg(
        verb(
            verbs,
            "rotate",
            _rotate,
            "give an operator a new token (printed once); the old one is refused",
        )
    )
