"""``fleet pools list|show|policy|pin|unpin|windows``: pools, their probe policy, pins and
windows."""

from __future__ import annotations

import argparse
from typing import Any

from ..cliparse import FleetParser, name_of
from .client import ApiClient, path
from .common import Subparsers, verb
from .common import read_json as _read_json
from .errors import UsageError
from .output import Column, emit, print_fields, print_table
from .windows import add_windows_verb

__all__ = ["register"]


def _pinned(pool: dict[str, Any]) -> object:
    pin = pool.get("pin")
    return pin.get("version") if isinstance(pin, dict) else pool.get("pinned_version")


def _policy_text(policy: dict[str, Any] | None) -> str:
    if not policy:
        return "none (probes denied)"
    parts = [
        f"{key.removeprefix('allow_')}={','.join(str(v) for v in policy[key])}"
        for key in ("allow_hosts", "allow_cidrs", "allow_ports")
        if policy.get(key)
    ]
    if policy.get("min_healthy"):
        parts.append(f"min_healthy={policy['min_healthy']}")
    return " ".join(parts) or "empty (probes denied)"


COLUMNS: list[Column] = [
    ("NAME", lambda p: p["name"]),
    ("AGENTS", lambda p: p.get("agents")),
    ("HEALTHY", lambda p: p.get("healthy")),
    ("PINNED", _pinned),
    ("POLICY", lambda p: _policy_text(p.get("policy"))),
]


def _list(args: argparse.Namespace, api: ApiClient) -> int:
    pools: list[dict[str, Any]] = api.call("GET", "/v1/pools")
    emit(pools, args.output, lambda: print_table(pools, COLUMNS, "no pools"))
    return 0


def _show(args: argparse.Namespace, api: ApiClient) -> int:
    pool: dict[str, Any] = api.call("GET", path("/v1/pools/{}", args.pool))

    def human() -> None:
        pin = pool.get("pin") or {}
        print_fields(
            [
                ("name", pool["name"]),
                ("agents", pool.get("agents")),
                ("healthy", pool.get("healthy")),
                ("pinned version", pin.get("version")),
                ("pinned config", "yes" if pin.get("config") is not None else None),
                ("policy", _policy_text(pool.get("policy"))),
            ]
        )

    emit(pool, args.output, human)
    return 0


def _port(text: str) -> int | str:
    lo, sep, hi = text.partition("-")
    if not (lo.isdigit() and (not sep or hi.isdigit())):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port or a range such as 8000-8100")
    return text if sep else int(text)


def _policy(args: argparse.Namespace, api: ApiClient) -> int:
    flags = [args.allow_host, args.allow_cidr, args.allow_port, args.min_healthy]
    given = any(f is not None for f in flags)
    if sum((given, args.file is not None, args.clear)) > 1:
        raise UsageError("give the policy as flags, or --file, or --clear: only one of them")
    if args.clear:
        out = api.call("DELETE", path("/v1/pools/{}/policy", args.pool))
        emit(
            out,
            args.output,
            lambda: print(f"cleared the policy of pool {args.pool}: probes from it are denied"),
        )
        return 0
    if not given and args.file is None:
        policy = api.call("GET", path("/v1/pools/{}", args.pool)).get("policy")
        emit(
            policy,
            args.output,
            lambda: print_fields(
                [("pool", args.pool), ("policy", _policy_text(policy))]
                + [(k, v) for k, v in (policy or {}).items()]
            ),
        )
        return 0
    body = (
        _read_json(args.file)
        if args.file is not None
        else {
            "allow_hosts": args.allow_host or [],
            "allow_cidrs": args.allow_cidr or [],
            "allow_ports": args.allow_port or [],
            "min_healthy": args.min_healthy or 0,
        }
    )
    out = api.call("PUT", path("/v1/pools/{}/policy", args.pool), body)
    emit(out, args.output, lambda: print(f"policy of pool {args.pool}: {_policy_text(out)}"))
    return 0


def _pin(args: argparse.Namespace, api: ApiClient) -> int:
    if args.version is None and args.config_file is None:
        raise UsageError("give --version, --config-file, or both")
    body: dict[str, Any] = {}
    if args.version is not None:
        body["version"] = args.version
    if args.config_file is not None:
        body["config"] = _read_json(args.config_file)
    out = api.call("PUT", path("/v1/pools/{}/pin", args.pool), body)
    emit(
        out,
        args.output,
        lambda: print(
            f"pinned pool {args.pool}: version {out.get('version')}, config "
            + ("pinned" if out.get("config") is not None else "not pinned")
        ),
    )
    return 0


def _unpin(args: argparse.Namespace, api: ApiClient) -> int:
    params = {"part": args.part} if args.part else None
    out = api.call("DELETE", path("/v1/pools/{}/pin", args.pool), params=params)
    what = f"the {args.part} pin" if args.part else "the pin"
    emit(out, args.output, lambda: print(f"removed {what} of pool {args.pool}"))
    return 0


def _pool_arg(parser: FleetParser) -> FleetParser:
    parser.add_argument("pool", metavar="POOL", type=name_of("pool"), help="the pool's name")
    return parser


def register(sub: Subparsers) -> None:
    """Add ``fleet pools`` and its verbs."""
    noun = sub.add_parser(
        "pools",
        help="pools: counts, probe policy, version pins",
        description="Pools group agents; each has a probe policy (deny by default) and "
        "may pin a version and a config.",
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    verb(verbs, "list", _list, "list pools with counts, pin and policy", aliases=("ls",))
    _pool_arg(verb(verbs, "show", _show, "one pool: counts, pin and policy"))
    policy = _pool_arg(
        verb(
            verbs,
            "policy",
            _policy,
            "show a pool's probe policy, or replace it (flags or --file), or --clear it",
            description="Without flags, show the policy. With flags, replace the whole policy "
            "with the one they give (what is not given is empty). A pool without a policy "
            "allows no probe.",
        )
    )
    policy.add_argument(
        "--allow-host",
        action="append",
        metavar="GLOB",
        help="host name glob the pool may probe, e.g. '*.db.internal'; repeatable (default: none)",
    )
    policy.add_argument(
        "--allow-cidr",
        action="append",
        metavar="CIDR",
        help="network the pool may probe, e.g. 10.0.0.0/8; repeatable (default: none)",
    )
    policy.add_argument(
        "--allow-port",
        action="append",
        metavar="PORT[-PORT]",
        type=_port,
        help="port or range the pool may probe; repeatable (default: none)",
    )
    policy.add_argument(
        "--min-healthy",
        type=int,
        metavar="N",
        help="alert when fewer healthy agents remain (default: 0, no alert)",
    )
    policy.add_argument(
        "--file",
        metavar="JSON",
        help="the policy as a JSON file ('-' for stdin), as in docs/api.md (default: the flags)",
    )
    policy.add_argument(
        "--clear", action="store_true", help="remove the policy: the pool may probe nothing"
    )
    pin = _pool_arg(verb(verbs, "pin", _pin, "pin the version (and config) a pool should run"))
    pin.add_argument(
        "--version",
        help="the version the pool's agents should run (default: keep the pinned version)",
    )
    pin.add_argument(
        "--config-file",
        metavar="JSON",
        help="the config the pool's agents should have, a JSON file "
        "(default: keep the pinned config)",
    )
    unpin = _pool_arg(verb(verbs, "unpin", _unpin, "remove a pool's pin, or one part of it"))
    unpin.add_argument(
        "--part",
        choices=["version", "config"],
        help="remove only the version pin or only the config pin (default: both)",
    )
    add_windows_verb(verbs)
