"""``fleet agents upgrade|rollback|restart|renew``: act on one agent by hand.

Each is one request; the agent answers at once (an upgrade is *accepted*, its
steps follow: ``fleet agents show AGENT``). An agent that refuses (busy, too old)
is exit 4 with its reason.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..cliparse import FleetParser, duration, name_of
from ..units import check_label_value
from .client import ApiClient, path
from .common import Subparsers, verb
from .errors import UsageError
from .output import emit, stamp
from .releases import version_arg

__all__ = ["add_verbs", "upgrade_text"]

Finder = Callable[[ApiClient, str], dict[str, Any]]
"""``find_agent(api, ref)`` of :mod:`.agents`: the one agent an id or name names."""


def upgrade_text(upgrade: dict[str, Any] | None) -> str | None:
    """An agent's latest upgrade step in words: ``running 0.2.0 (from 0.1.0)``."""
    if not upgrade:
        return None
    text = f"{upgrade['step'].replace('_', ' ')} {upgrade['version']}"
    if upgrade.get("from_version"):
        text += f" (from {upgrade['from_version']})"
    if upgrade.get("detail"):
        text += f": {upgrade['detail']}"
    return text


def _reason(args: argparse.Namespace) -> dict[str, str]:
    try:
        return {"reason": check_label_value("reason", args.reason or "")}
    except ValueError as exc:
        raise UsageError(f"--reason: {exc}") from None


def _post(api: ApiClient, args: argparse.Namespace, action: str, body: dict[str, Any]) -> Any:
    # By id: a name two agents share is refused (with their ids) before anything is sent.
    agent = args.find(api, args.agent)
    args.agent = agent["name"]
    return api.call("POST", path("/v1/agents/{}/" + action, agent["id"]), body)


def _upgrade(args: argparse.Namespace, api: ApiClient) -> int:
    body: dict[str, Any] = {"version": args.version}
    if args.deadline is not None:
        body["deadline_s"] = args.deadline
    out = _post(api, args, "upgrade", body)
    detail = f": {out['detail']}" if out.get("detail") else ""
    emit(
        out,
        args.output,
        lambda: print(
            f"agent {args.agent} accepted the upgrade to {out['version']} "
            f"({out['driver']} driver){detail}; follow it with: fleet agents show {args.agent}"
        ),
    )
    return 0


def _rollback(args: argparse.Namespace, api: ApiClient) -> int:
    out = _post(api, args, "rollback", _reason(args))
    back_to = out.get("version") or "the version it was installed with"
    emit(
        out,
        args.output,
        lambda: print(f"agent {args.agent} is rolling back to {back_to} and restarting"),
    )
    return 0


def _restart(args: argparse.Namespace, api: ApiClient) -> int:
    out = _post(api, args, "restart", _reason(args))
    emit(
        out,
        args.output,
        lambda: print(f"agent {args.agent} is restarting; it reconnects within seconds"),
    )
    return 0


def _renew(args: argparse.Namespace, api: ApiClient) -> int:
    out = _post(api, args, "renew", _reason(args))
    emit(
        out,
        args.output,
        lambda: print(
            f"agent {args.agent} renewed its certificate: valid until {stamp(out['not_after'])}"
        ),
    )
    return 0


def _agent(parser: FleetParser, find: Finder) -> FleetParser:
    parser.add_argument(
        "agent", metavar="AGENT", type=name_of("agent"), help="the agent's id or name"
    )
    parser.set_defaults(find=find)
    return parser


def add_verbs(verbs: Subparsers, find: Finder) -> None:
    """Add ``upgrade``, ``rollback``, ``restart`` and ``renew`` to ``fleet agents``;
    ``find`` resolves the AGENT argument."""
    upgrade = verb(
        verbs,
        "upgrade",
        _upgrade,
        "upgrade an agent to a stored release (admin); it downloads, verifies and "
        "restarts into it, and rolls back by itself if the new version is unhealthy",
    )
    _agent(upgrade, find)
    upgrade.add_argument(
        "--version",
        required=True,
        type=version_arg,
        metavar="VERSION",
        help="a stored release ('fleet releases list')",
    )
    upgrade.add_argument(
        "--deadline",
        type=duration,
        metavar="DURATION",
        help="the new version must connect and send healthy heartbeats within this, or "
        "the agent switches back (default: the server's upgrade_deadline_s, 2m)",
    )
    for name, func, help in (
        (
            "rollback",
            _rollback,
            "switch an agent back to the version it ran before its last upgrade (admin)",
        ),
        ("restart", _restart, "restart an agent's process (operator)"),
        ("renew", _renew, "renew an agent's certificate now (operator)"),
    ):
        parser = _agent(verb(verbs, name, func, help), find)
        parser.add_argument(
            "--reason",
            metavar="TEXT",
            help="why, for the audit and the agent's log (default: who asked)",
        )
