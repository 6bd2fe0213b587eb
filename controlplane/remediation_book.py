"""Remediation records: kept as documents, every change audited and published.

Each remediation (run by itself, or waiting in the approval inbox) is one
document of kind ``remediation``, written at each change of state, so the inbox,
the recent history and the budgets survive a restart.  A record moves through
an explicit state machine (:data:`NEXT`); each move is audited as
``remediation.VERB`` and published as :class:`~fleet.protocol.RemediationUpdate`.

The book keeps every pending and running record, and the newest
``remediation_history`` of the others (older ones are deleted once they are out
of the budgets' hour, so a restart still counts them).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgspec

from fleet.protocol import RemediationInfo, RemediationUpdate, to_builtins

from .fleet import Fleet
from .remediation_rules import BUDGET_WINDOW_S

__all__ = ["FINISHED", "KIND", "NEXT", "Remediation", "RemediationBook", "actor_of", "new_id"]

log = logging.getLogger("controlplane.remediation")

KIND = "remediation"
"""The documents' kind."""

NEXT: dict[str, frozenset[str]] = {
    "pending_approval": frozenset({"running", "rejected", "expired"}),
    "running": frozenset({"done", "failed"}),
    "done": frozenset(),
    "failed": frozenset(),
    "rejected": frozenset(),
    "expired": frozenset(),
}
"""The states a record may move to from each state; anything else is a bug."""

FINISHED = frozenset({"done", "failed", "rejected", "expired"})

_VERBS = {
    "pending_approval": "queue",
    "running": "run",
    "done": "finish",
    "failed": "fail",
    "rejected": "reject",
    "expired": "expire",
}
"""The audit action (``remediation.VERB``) of a move into each state."""


class RemediationStateError(RuntimeError):
    """A move the state machine does not allow (a bug, not a user's mistake)."""


@dataclass
class Remediation:
    """One remediation: what is shown (:attr:`info`) and what the engine needs besides."""

    info: RemediationInfo
    started_at: float | None = None
    """When its action was sent (a restart or rollback is done when the agent is back)."""
    moved: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    """``move_connections``: each connection's pools ``before`` and ``after`` the move."""
    reverted_by: str | None = None

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def state(self) -> str:
        return self.info.state

    @property
    def target(self) -> str:
        """What the audit names: the agent, or the pool whose connections move."""
        if self.info.action == "move_connections":
            return f"pool:{self.info.pool}"
        return self.info.agent_id

    def body(self) -> dict[str, Any]:
        return {
            "info": to_builtins(self.info),
            "started_at": self.started_at,
            "moved": self.moved,
            "reverted_by": self.reverted_by,
        }

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Remediation:
        """Raises ``msgspec.ValidationError`` (or ``KeyError``, ``TypeError``) when the
        document is not a record this version can read."""
        info = msgspec.convert(body["info"], RemediationInfo)
        moved = msgspec.convert(body.get("moved") or {}, dict[str, dict[str, list[str]]])
        started = body.get("started_at")
        reverted = body.get("reverted_by")
        return cls(
            info=info,
            started_at=float(started) if isinstance(started, int | float) else None,
            moved=moved,
            reverted_by=reverted if isinstance(reverted, str) else None,
        )


def actor_of(pool: str) -> str:
    """Who acts for a pool's policy, in the audit and ``decided_by``."""
    return f"remediation:{pool}"


def new_id() -> str:
    return "rem_" + uuid.uuid4().hex[:12]


class RemediationBook:
    """The records, in memory and in the store.

    Args:
        fleet: the store, the audit and the event bus.
        history: how many finished records to keep (besides the last hour's).
    """

    def __init__(self, fleet: Fleet, history: int) -> None:
        self.fleet = fleet
        self.history = history
        self.records: dict[str, Remediation] = {}

    async def load(self) -> list[Remediation]:
        """Read the stored records; returns them (a document this version cannot read
        is logged and left alone)."""
        for key, body in await self.fleet.store.list_documents(KIND):
            try:
                rec = Remediation.from_body(body)
            except (msgspec.ValidationError, KeyError, TypeError) as exc:
                log.warning("remediation record %s cannot be read, skipped: %s", key, exc)
                continue
            self.records[rec.id] = rec
        return list(self.records.values())

    # ------------------------------------------------------------- queries

    def get(self, rec_id: str) -> Remediation | None:
        return self.records.get(rec_id)

    def infos(self) -> list[RemediationInfo]:
        """Pending and running ones, then the newest finished ones: newest first."""
        return [r.info for r in self.newest(self.records.values())]

    def newest(self, records: Iterable[Remediation]) -> list[Remediation]:
        return sorted(records, key=lambda r: r.info.created_at, reverse=True)

    def of_agent(self, agent_id: str, limit: int = 20) -> list[RemediationInfo]:
        """An agent's newest remediations (those its pool's connections moved included)."""
        mine = [r for r in self.records.values() if r.info.agent_id == agent_id]
        return [r.info for r in self.newest(mine)[:limit]]

    def waiting(self, agent_id: str, pool: str, action: str) -> Remediation | None:
        """A pending or running record of ``action`` on this agent (for
        ``move_connections``, on this pool): a second one would only repeat it."""
        for rec in self.records.values():
            if rec.state not in ("pending_approval", "running") or rec.info.action != action:
                continue
            if (
                rec.info.pool == pool
                if action == "move_connections"
                else rec.info.agent_id == agent_id
            ):
                return rec
        return None

    def in_state(self, state: str) -> list[Remediation]:
        return [r for r in self.records.values() if r.state == state]

    # ------------------------------------------------------------- changes

    async def add(self, info: RemediationInfo, actor: str, **extra: Any) -> Remediation:
        """Store, audit and publish a new record (queued, running, or failed at once)."""
        rec = Remediation(info=info, **extra)
        await self.fleet.store.put_document(KIND, rec.id, rec.body(), info.created_at)
        self.records[rec.id] = rec
        await self._tell(rec, actor, _VERBS[info.state])
        await self.prune(info.created_at)
        return rec

    async def move(
        self,
        rec: Remediation,
        state: str,
        actor: str,
        at: float,
        verb: str | None = None,
        **fields: Any,
    ) -> Remediation:
        """Move ``rec`` to ``state`` (with ``fields`` of its info changed); stored,
        audited as ``remediation.VERB`` (the state's verb unless given) and published."""
        if state not in NEXT[rec.state]:
            raise RemediationStateError(f"remediation {rec.id}: {rec.state} -> {state}")
        if state in FINISHED:
            fields.setdefault("finished_at", at)
        rec.info = msgspec.structs.replace(rec.info, state=state, **fields)
        await self.save(rec, at)
        await self._tell(rec, actor, verb or _VERBS[state])
        return rec

    async def note(self, rec: Remediation, actor: str, verb: str, at: float, detail: str) -> None:
        """Change only ``rec``'s detail (a revert), stored, audited and published."""
        rec.info = msgspec.structs.replace(rec.info, detail=detail)
        await self.save(rec, at)
        await self._tell(rec, actor, verb)

    async def touch(self, rec: Remediation, at: float, detail: str) -> None:
        """Change only ``rec``'s detail on the way (an action sent), stored and published;
        not audited (the command itself is)."""
        rec.info = msgspec.structs.replace(rec.info, detail=detail)
        await self.save(rec, at)
        self.fleet.bus.publish(partial(_update, rec.info))

    async def save(self, rec: Remediation, at: float) -> None:
        await self.fleet.store.put_document(KIND, rec.id, rec.body(), at)

    async def prune(self, now: float) -> int:
        """Delete finished records past the newest ``history`` that the budgets no
        longer count; returns how many."""
        finished = self.newest(r for r in self.records.values() if r.state in FINISHED)
        old = [r for r in finished[self.history :] if r.info.created_at < now - BUDGET_WINDOW_S]
        for rec in old:
            await self.fleet.store.delete_document(KIND, rec.id)
            del self.records[rec.id]
        return len(old)

    async def _tell(self, rec: Remediation, actor: str, verb: str) -> None:
        info = rec.info
        result = "failed" if info.state == "failed" else "ok"
        words = [f"{rec.id} {info.action}: {info.condition}"]
        if info.state == "pending_approval" and info.why_approval:
            words.append(f"waits: {info.why_approval}")
        if info.detail:
            words.append(info.detail)
        await self.fleet.audit(actor, f"remediation.{verb}", rec.target, result, "; ".join(words))
        self.fleet.bus.publish(partial(_update, info))


def _update(info: RemediationInfo, seq: int) -> RemediationUpdate:
    return RemediationUpdate(seq=seq, remediation=info)
