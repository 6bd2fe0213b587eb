"""``fleet agents list|show|revoke|decommission`` (and, from :mod:`.agent_actions`,
``upgrade|rollback|restart|renew``)."""

from __future__ import annotations

import argparse
from typing import Any

from ..cliparse import FleetParser, name_of
from ..disconnects import disconnect_line
from ..protocol import Disconnect, Presence, ProtocolError, convert
from .agent_actions import add_verbs, upgrade_text
from .client import ApiClient, path
from .common import Subparsers, confirm, verb
from .errors import NotFoundError, UsageError
from .output import Column, ago, emit, print_fields, print_table, seconds, when
from .remediation import remediation_line

__all__ = ["register"]

STATES = tuple(p.value for p in Presence)

SHOWN_DISCONNECTS = 5
"""``fleet agents show`` prints this many of the newest disconnect records (``-o json``: all)."""

SHOWN_REMEDIATIONS = 5
"""... and this many of its newest remediations."""


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:+.0f}ms"


COLUMNS: list[Column] = [
    ("NAME", lambda a: a["name"]),
    ("ID", lambda a: a["id"]),
    ("POOL", lambda a: a["pool"]),
    ("STATE", lambda a: a["state"]),
    ("VERSION", lambda a: a.get("version")),
    ("HEARTBEAT", lambda a: ago(a.get("last_heartbeat_at"))),
    ("SKEW", lambda a: _ms(a.get("skew_ms"))),
    ("REASONS", lambda a: "; ".join(a.get("reasons") or [])),
]


def find_agent(api: ApiClient, ref: str) -> dict[str, Any]:
    """The agent whose id or name is ``ref``.

    Raises:
        NotFoundError: none has it.
        UsageError: several agents have that name; the message lists their ids.
    """
    try:
        found: dict[str, Any] = api.call("GET", path("/v1/agents/{}", ref))["agent"]
    except NotFoundError:
        raise NotFoundError(f"no agent with id or name {ref!r}; see 'fleet agents list'") from None
    if found["id"] == ref:
        return found
    # The server matched a name: make sure it is the only agent with it.
    agents: list[dict[str, Any]] = api.call("GET", "/v1/agents")
    named = [a for a in agents if a["name"] == ref]
    if not named:
        raise NotFoundError(f"no agent with id or name {ref!r}; see 'fleet agents list'")
    if len(named) > 1:
        ids = ", ".join(f"{a['id']} ({a['pool']}, {a['state']})" for a in named)
        raise UsageError(f"{len(named)} agents are named {ref!r}: {ids}; give the id instead")
    return named[0]


def _list(args: argparse.Namespace, api: ApiClient) -> int:
    agents: list[dict[str, Any]] = api.call("GET", "/v1/agents")
    agents = [
        a
        for a in agents
        if (args.pool is None or a["pool"] == args.pool)
        and (args.state is None or a["state"] == args.state)
    ]
    agents.sort(key=lambda a: (a["pool"], a["name"], a["id"]))
    emit(agents, args.output, lambda: print_table(agents, COLUMNS, "no agents"))
    return 0


def _show(args: argparse.Namespace, api: ApiClient) -> int:
    agent_id = find_agent(api, args.agent)["id"]
    detail: dict[str, Any] = api.call("GET", path("/v1/agents/{}", agent_id))

    def human() -> None:
        a = detail["agent"]
        mem = a.get("mem_rss_bytes")
        print_fields(
            [
                ("name", a["name"]),
                ("id", a["id"]),
                ("pool", a["pool"]),
                ("labels", a.get("labels")),
                ("state", a["state"]),
                ("reasons", "; ".join(a.get("reasons") or [])),
                ("version", a.get("version")),
                ("pinned version", a.get("pinned_version")),
                ("upgrade", _upgrade_line(a.get("upgrade"))),
                ("remote address", a.get("remote_addr")),
                ("enrolled", when(a.get("enrolled_at"))),
                ("connected", when(a.get("connected_at"))),
                ("last heartbeat", when(a.get("last_heartbeat_at"))),
                ("uptime", seconds(a.get("uptime_s"))),
                ("clock skew", _ms(a.get("skew_ms"))),
                ("rtt", "-" if a.get("rtt_ms") is None else f"{a['rtt_ms']:.0f}ms"),
                ("cpu", "-" if a.get("cpu_percent") is None else f"{a['cpu_percent']:.1f}%"),
                ("memory", "-" if mem is None else f"{mem / 2**20:.0f} MiB"),
                ("queue depth", a.get("queue_depth")),
                ("certificate expires", when(a.get("cert_not_after"))),
                ("config hash", a.get("config_hash")),
                ("pinned config hash", a.get("pinned_config_hash")),
                ("stopped", when(a.get("stopped_at"))),
                ("recent commands", len(detail.get("events") or [])),
            ]
        )
        _print_disconnects(detail)
        _print_remediations(detail)

    emit(detail, args.output, human)
    return 0


def _upgrade_line(upgrade: dict[str, Any] | None) -> str | None:
    text = upgrade_text(upgrade)
    return None if text is None or upgrade is None else f"{text}, {ago(upgrade.get('at'))}"


def _print_disconnects(detail: dict[str, Any]) -> None:
    """The newest disconnect records, then what the control plane reads in them."""
    records = []
    for raw in detail.get("disconnects") or []:
        try:
            records.append(convert(raw, Disconnect))
        except ProtocolError:
            continue  # a record this CLI does not understand
    hints = [str(h.get("message", "")) for h in detail.get("disconnect_hints") or []]
    if not records and not hints:
        return
    shown = records[-SHOWN_DISCONNECTS:]
    print(f"\ndisconnects (newest {len(shown)} of {len(records)}; all with -o json):")
    for record in reversed(shown):
        print(f"  {disconnect_line(record)}")
    for hint in hints:
        print(f"hint: {hint}")


def _print_remediations(detail: dict[str, Any]) -> None:
    """The newest remediations of the agent: what ran, what waits, what was decided."""
    found = detail.get("remediations") or []
    if not found:
        return
    shown = found[:SHOWN_REMEDIATIONS]
    print(f"\nremediations (newest {len(shown)} of {len(found)}; all with -o json):")
    for item in shown:
        print(f"  {remediation_line(item)}")


def _revoke(args: argparse.Namespace, api: ApiClient) -> int:
    agent = find_agent(api, args.agent)
    confirm(args, f"revoke agent {agent['name']} ({agent['id']}, pool {agent['pool']})")
    out = api.call("POST", path("/v1/agents/{}/revoke", agent["id"]))
    emit(out, args.output, lambda: print(f"revoked agent {agent['name']} ({agent['id']})"))
    return 0


def _decommission(args: argparse.Namespace, api: ApiClient) -> int:
    agent = find_agent(api, args.agent)
    confirm(
        args,
        f"decommission agent {agent['name']} ({agent['id']}, pool {agent['pool']}): "
        "revoke it and remove it from the fleet",
    )
    out = api.call("DELETE", path("/v1/agents/{}", agent["id"]))

    def human() -> None:
        action = out.get("action", "decommissioned") if isinstance(out, dict) else "removed"
        print(f"{action} agent {agent['name']} ({agent['id']}); the audit log keeps its history")

    emit(out, args.output, human)
    return 0


def _agent_arg(parser: FleetParser) -> None:
    parser.add_argument(
        "agent", metavar="AGENT", type=name_of("agent"), help="the agent's id or name"
    )


def register(sub: Subparsers) -> None:
    """Add ``fleet agents`` and its verbs to the root parser's subcommands."""
    noun = sub.add_parser(
        "agents",
        help="list, inspect, revoke, decommission, upgrade and restart agents",
        description="Agents enrolled with the control plane.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verb(verbs, "list", _list, "list agents, by pool and name", aliases=("ls",))
    listing.add_argument(
        "--pool", type=name_of("pool"), help="only this pool's agents (default: every pool)"
    )
    listing.add_argument("--state", choices=STATES, help="only agents in this state (default: any)")
    _agent_arg(verb(verbs, "show", _show, "one agent's state, certificate and versions"))
    _agent_arg(
        verb(
            verbs,
            "revoke",
            _revoke,
            "revoke an agent: its channel closes, it may not return",
            destructive=True,
        )
    )
    _agent_arg(
        verb(
            verbs,
            "decommission",
            _decommission,
            "revoke an agent and remove it from the fleet view, alerts and pool counts "
            "(a pending agent that never connected is forgotten)",
            destructive=True,
        )
    )
    add_verbs(verbs, find_agent)
