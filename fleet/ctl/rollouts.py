"""``fleet rollouts start|status|list|pause|resume|abort``: roll a release out to a pool.

A rollout upgrades the pool's canaries, watches them for the soak time, then
upgrades the rest wave by wave, watching each for the pause; if the upgraded
agents do worse than the rest of the pool, it halts and rolls them back.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ..cliparse import duration, name_of
from ..units import format_duration
from .client import ApiClient, path
from .common import Subparsers, confirm, verb
from .errors import NotFoundError
from .output import Column, ago, emit, print_fields, print_table, when

__all__ = ["register", "share"]

_PERCENT = re.compile(r"^\d+(\.\d+)?%$")


def share(text: str) -> int | str:
    """An argparse ``type``: a count (``3``) or a percentage of the pool (``25%``)."""
    value = text.strip()
    if _PERCENT.match(value):
        return value
    if value.isdigit():
        return int(value)
    raise argparse.ArgumentTypeError(f"{text!r} is neither a count (3) nor a percentage (25%)")


def _progress(r: dict[str, Any]) -> str:
    waves = r.get("waves") or []
    done = sum(w["state"] == "done" for w in waves)
    agents = r.get("agents") or []
    upgraded = sum(a["step"] == "upgraded" for a in agents)
    return f"{upgraded}/{len(agents)} agents, {done}/{len(waves)} waves"


COLUMNS: list[Column] = [
    ("ID", lambda r: r["id"]),
    ("POOL", lambda r: r["pool"]),
    ("VERSION", lambda r: r["version"]),
    ("STATE", lambda r: r["state"]),
    ("PROGRESS", _progress),
    ("STARTED", lambda r: ago(r["created_at"])),
    ("BY", lambda r: r["created_by"]),
    ("DETAIL", lambda r: r["detail"]),
]


def _wave_name(index: int) -> str:
    return "canaries" if index == 0 else f"wave {index}"


WAVE_COLUMNS: list[Column] = [
    ("WAVE", lambda w: _wave_name(w["index"])),
    ("SIZE", lambda w: w["size"]),
    ("UPGRADED", lambda w: w["upgraded"]),
    ("FAILED", lambda w: w["failed"]),
    ("STATE", lambda w: w["state"]),
]

AGENT_COLUMNS: list[Column] = [
    ("AGENT", lambda a: a["name"]),
    ("WAVE", lambda a: _wave_name(a["wave"])),
    ("STEP", lambda a: a["step"]),
    ("FROM", lambda a: a.get("from_version")),
    ("DETAIL", lambda a: a["detail"]),
]


def _show(r: dict[str, Any], all_agents: bool) -> None:
    fields: list[tuple[str, object]] = [
        ("rollout", r["id"]),
        ("pool", r["pool"]),
        ("version", r["version"]),
        ("state", r["state"]),
        ("detail", r["detail"]),
    ]
    if r.get("phase_ends_at"):
        fields.append(("until", when(r["phase_ends_at"])))
    fields += [
        (
            "plan",
            f"{r['canaries']} canaries soaked {format_duration(r['soak_s'])}, then "
            f"waves of {r['wave_size']} watched {format_duration(r['pause_s'])} each",
        ),
        ("started", f"{when(r['created_at'])} by {r['created_by']}"),
    ]
    if r.get("finished_at"):
        fields.append(("finished", when(r["finished_at"])))
    print_fields(fields)
    print()
    print_table(r["waves"], WAVE_COLUMNS, "no agents to upgrade")
    shown = [a for a in r["agents"] if all_agents or a["step"] not in ("upgraded", "pending")]
    if shown:
        print()
        print_table(shown, AGENT_COLUMNS, "")


def _find(api: ApiClient, ref: str) -> dict[str, Any]:
    """The rollout with id ``ref``, or the newest of the pool ``ref``."""
    if ref.startswith("ro_"):
        try:
            found: dict[str, Any] = api.call("GET", path("/v1/rollouts/{}", ref))
        except NotFoundError:
            pass  # a pool may be named so too
        else:
            return found
    newest: list[dict[str, Any]] = api.call("GET", "/v1/rollouts", params={"pool": ref})
    if not newest:
        raise NotFoundError(f"no rollout has an id or a pool {ref!r}; see 'fleet rollouts list'")
    return newest[0]


def _start(args: argparse.Namespace, api: ApiClient) -> int:
    body: dict[str, Any] = {"pool": args.pool, "version": args.version}
    for key, value in (
        ("canaries", args.canaries),
        ("soak_s", args.soak),
        ("wave", args.wave),
        ("pause_s", args.pause),
    ):
        if value is not None:
            body[key] = value
    out: dict[str, Any] = api.call("POST", "/v1/rollouts", body)

    def human() -> None:
        print(f"started rollout {out['id']}: {out['version']} to pool {out['pool']}")
        print(f"follow it with: fleet rollouts status {out['id']}")
        print()
        _show(out, all_agents=False)

    emit(out, args.output, human)
    return 0


def _status(args: argparse.Namespace, api: ApiClient) -> int:
    found = _find(api, args.ref)
    emit(found, args.output, lambda: _show(found, args.all))
    return 0


def _list(args: argparse.Namespace, api: ApiClient) -> int:
    params = {"pool": args.pool} if args.pool else None
    found: list[dict[str, Any]] = api.call("GET", "/v1/rollouts", params=params)
    emit(found, args.output, lambda: print_table(found, COLUMNS, "no rollouts"))
    return 0


def _act(action: str, past: str) -> Any:
    def run(args: argparse.Namespace, api: ApiClient) -> int:
        rollout_id = _find(api, args.ref)["id"]
        if action == "abort":
            confirm(args, f"abort rollout {rollout_id} and roll back the agents it upgraded")
        out: dict[str, Any] = api.call("POST", path(f"/v1/rollouts/{{}}/{action}", rollout_id))
        emit(out, args.output, lambda: print(f"{past} rollout {out['id']}: {out['detail']}"))
        return 0

    return run


def _ref(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "ref", metavar="ID|POOL", help="a rollout's id (ro_...), or a pool: its newest rollout"
    )


def register(sub: Subparsers) -> None:
    """Add ``fleet rollouts`` and its verbs."""
    noun = sub.add_parser(
        "rollouts",
        aliases=["rollout"],
        help="roll a release out to a pool: canaries, waves, the health gate",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")
    start = verb(
        verbs,
        "start",
        _start,
        "start rolling a stored release out to a pool (admin)",
        description="Start rolling a stored release (fleet releases add) out to a pool. "
        "It waits, saying until when, outside the pool's maintenance windows and during "
        "a freeze; when done, the pool's version pin is the new version.",
    )
    start.add_argument("pool", metavar="POOL", type=name_of("pool"), help="the pool")
    start.add_argument("--version", required=True, help="the release's version")
    start.add_argument(
        "--canaries",
        type=share,
        metavar="N|P%",
        help="agents upgraded first and watched for the soak: a count or a share of the "
        "pool (default: 1)",
    )
    start.add_argument(
        "--soak",
        type=duration,
        metavar="DURATION",
        help="how long to watch the canaries (default: 10m)",
    )
    start.add_argument(
        "--wave",
        type=share,
        metavar="N|P%",
        help="agents per wave after the canaries: a count or a share of the pool (default: 25%%)",
    )
    start.add_argument(
        "--pause",
        type=duration,
        metavar="DURATION",
        help="how long to watch each wave (default: 5m)",
    )
    status = verb(verbs, "status", _status, "a rollout's state and each wave's progress")
    _ref(status)
    status.add_argument(
        "--all", action="store_true", help="list every agent, not only those not upgraded"
    )
    listing = verb(verbs, "list", _list, "every rollout, newest first", aliases=("ls",))
    listing.add_argument("--pool", type=name_of("pool"), help="only this pool's (default: all)")
    _ref(verb(verbs, "pause", _act("pause", "paused"), "hold a rollout where it is (operator)"))
    _ref(
        verb(
            verbs,
            "resume",
            _act("resume", "resumed"),
            "go on with a paused rollout (operator; refused during a freeze)",
        )
    )
    _ref(
        verb(
            verbs,
            "abort",
            _act("abort", "aborted"),
            "stop a rollout and roll back the agents it upgraded (operator)",
            destructive=True,
        )
    )
