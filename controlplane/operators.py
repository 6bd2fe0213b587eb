"""Operators and their API tokens: authenticate, create, list, revoke, rotate.

Tokens are kept hashed, in memory by hash, so a request costs one dictionary
lookup.  When a token was last used is noted in memory on every request and
written behind in one batch (:meth:`Operators.flush`), never a write per
request.  A revoked or rotated token is refused at once, and the event streams
it opened are told to close (:class:`StreamSession`).

A revoked operator stays in the store, marked, so that the list can show it
with ``?all=true`` and its name can be given to a new operator later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from fleet.files import write_private

from .errors import BadRequest, Conflict, Forbidden, NotFound, Unauthenticated
from .secrets import API_PREFIX, hash_token, looks_like, new_token
from .store.base import OperatorRecord, Store

__all__ = ["ROLES", "Operators", "Principal", "Role", "StreamSession"]

log = logging.getLogger("controlplane.operators")

Role = Literal["viewer", "operator", "admin"]
ROLES: dict[str, int] = {"viewer": 0, "operator": 1, "admin": 2}

Audit = Callable[[str, str, str, str, str], Awaitable[None]]
"""``audit(actor, action, target, result, detail)``."""


@dataclass(frozen=True)
class Principal:
    """Who is calling, and with which role."""

    name: str
    role: str

    def require(self, role: Role) -> None:
        """Raise :class:`Forbidden` unless this principal has ``role`` or a higher one."""
        if ROLES[self.role] < ROLES[role]:
            raise Forbidden(
                f"{self.name} has role {self.role}; this action needs {role}. "
                "Ask an admin for a token with that role."
            )


@dataclass(eq=False)  # one per stream, hashed by identity
class StreamSession:
    """An open event stream of one operator; :attr:`reason` set means: close it now."""

    name: str
    wake: asyncio.Event
    """The stream writer's wake-up event, set when the session must close."""
    reason: str | None = None


class Operators:
    """The operators, their tokens and the event streams those tokens opened.

    Args:
        store: Where operators are kept.
        audit: Records every change and refusal.
        admin_token_file: The bootstrap admin token's file (``DATA_DIR/admin.token``).
    """

    def __init__(self, store: Store, audit: Audit, admin_token_file: Path) -> None:
        self.store = store
        self.audit = audit
        self.admin_token_file = admin_token_file
        self._by_name: dict[str, OperatorRecord] = {}
        self._by_hash: dict[str, OperatorRecord] = {}
        """Active operators only: a revoked token is simply not here."""
        self._used: dict[str, float] = {}
        """Last uses not yet written to the store."""
        self._sessions: dict[str, set[StreamSession]] = {}

    async def load(self) -> None:
        """Read the operators; create the first admin when there is none."""
        for op in await self.store.list_operators():
            self._index(op)
        if not self._by_name:
            await self._first_admin()

    def _index(self, op: OperatorRecord) -> None:
        old = self._by_name.get(op.name)
        if old is not None:
            self._by_hash.pop(old.token_hash, None)
        self._by_name[op.name] = op
        if op.revoked_at is None:
            self._by_hash[op.token_hash] = op

    async def _first_admin(self) -> None:
        # As Jenkins does with its initial password: written once, only the owner may read it.
        token = new_token(API_PREFIX)
        op = OperatorRecord("admin", "admin", hash_token(token), time.time(), "system")
        await self.store.add_operator(op)
        self._index(op)
        write_private(self.admin_token_file, (token + "\n").encode())
        await self.audit("system", "user.create", "admin", "ok", "first admin token")

    # ------------------------------------------------------------ requests

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of an ``Authorization: Bearer`` header; notes the token's use."""
        if not authorization:
            raise Unauthenticated(
                "no API token: send 'Authorization: Bearer <token>' "
                "(an admin creates one with 'fleet user create')"
            )
        scheme, _, value = authorization.partition(" ")
        value = value.strip()
        if scheme.lower() != "bearer" or not value:
            raise Unauthenticated("the Authorization header must be 'Bearer <token>'")
        if not looks_like(value, API_PREFIX):
            raise Unauthenticated(
                "that is not an API token (they start with 'flta_'); check the token file"
            )
        op = self._by_hash.get(hash_token(value))
        if op is None:
            raise Unauthenticated(
                "unknown API token: it may have been mistyped, rotated or revoked; "
                "ask an admin for a new one"
            )
        now = time.time()
        op.last_used_at = now
        self._used[op.name] = now
        return Principal(op.name, op.role)

    def open_session(self, name: str, wake: asyncio.Event) -> StreamSession:
        """Register an event stream opened by operator ``name``."""
        session = StreamSession(name, wake)
        self._sessions.setdefault(name, set()).add(session)
        return session

    def close_session(self, session: StreamSession) -> None:
        """Forget a stream that ended."""
        sessions = self._sessions.get(session.name)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._sessions[session.name]

    def _end_sessions(self, name: str, reason: str) -> int:
        sessions = self._sessions.pop(name, set())
        for session in sessions:
            session.reason = reason
            session.wake.set()
        return len(sessions)

    # ------------------------------------------------------------ changes

    def listing(self, include_revoked: bool = False) -> list[OperatorRecord]:
        """Operators by name; revoked ones only when asked for."""
        ops = sorted(self._by_name.values(), key=lambda o: o.name)
        return [o for o in ops if include_revoked or o.revoked_at is None]

    def get(self, name: str) -> OperatorRecord:
        """The active operator ``name``, or a 404 that says how to list them."""
        op = self._by_name.get(name)
        if op is None or op.revoked_at is not None:
            raise NotFound(f"no user {name!r}; list users with GET /v1/users (fleet users list)")
        return op

    async def create(self, actor: Principal, name: str, role: str) -> str:
        """A new operator; returns its token (never stored in clear)."""
        actor.require("admin")
        if role not in ROLES:
            raise BadRequest(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        old = self._by_name.get(name)
        if old is not None and old.revoked_at is None:
            await self.audit(actor.name, "user.create", name, "refused", "exists")
            raise Conflict(
                f"a user named {name!r} exists already; give it a new token with "
                f"POST /v1/users/{name}/rotate (fleet users rotate {name})"
            )
        token = new_token(API_PREFIX)
        op = OperatorRecord(name, role, hash_token(token), time.time(), actor.name)
        if old is None:
            await self.store.add_operator(op)
        else:
            await self.store.replace_operator(op)  # the name of a revoked operator, reused
        self._index(op)
        await self.audit(actor.name, "user.create", name, "ok", f"role {role}")
        return token

    async def revoke(self, actor: Principal, name: str) -> OperatorRecord:
        """Refuse the operator's token from now on and close its event streams."""
        actor.require("admin")
        op = self._by_name.get(name)
        if op is not None and op.revoked_at is not None:
            return op  # revoking twice changes nothing
        try:
            op = self.get(name)
        except NotFound:
            await self.audit(actor.name, "user.revoke", name, "refused", "no such user")
            raise
        if op.role == "admin" and self._admins() == 1:
            await self.audit(actor.name, "user.revoke", name, "refused", "last admin")
            raise Conflict(
                f"{name} is the last admin; create another admin first "
                "(POST /v1/users with role admin, or fleet users create NAME --role admin), "
                "then revoke this one"
            )
        revoked = replace(op, revoked_at=time.time())
        await self.store.replace_operator(revoked)
        self._index(revoked)
        self._used.pop(name, None)
        closed = self._end_sessions(
            name, f"the API token of {name} was revoked by {actor.name}; ask an admin for a new one"
        )
        self._drop_bootstrap_file(op.token_hash, None)
        await self.audit(
            actor.name, "user.revoke", name, "ok", f"role {op.role}, {closed} streams closed"
        )
        return revoked

    async def rotate(self, actor: Principal, name: str) -> tuple[OperatorRecord, str]:
        """A new token for ``name``; the old one is refused and its streams closed."""
        actor.require("admin")
        try:
            op = self.get(name)
        except NotFound:
            await self.audit(actor.name, "user.rotate", name, "refused", "no such user")
            raise
        token = new_token(API_PREFIX)
        rotated = replace(op, token_hash=hash_token(token), last_used_at=None)
        await self.store.replace_operator(rotated)
        self._index(rotated)
        self._used.pop(name, None)
        closed = self._end_sessions(
            name, f"the API token of {name} was rotated by {actor.name}; use the new token"
        )
        self._drop_bootstrap_file(op.token_hash, token)
        await self.audit(actor.name, "user.rotate", name, "ok", f"{closed} streams closed")
        return rotated, token

    def _admins(self) -> int:
        return sum(o.role == "admin" for o in self._by_hash.values())

    def _drop_bootstrap_file(self, old_hash: str, new_token_value: str | None) -> None:
        # DATA_DIR/admin.token feeds the --data-dir forms of the CLI on the server
        # host: when it held the token just replaced, it gets the new one (rotate)
        # or goes (revoke), rather than keep a token that no longer works.
        path = self.admin_token_file
        try:
            held = path.read_text().strip()
        except OSError:
            return
        if hash_token(held) != old_hash:
            return
        if new_token_value is None:
            path.unlink(missing_ok=True)
        else:
            write_private(path, (new_token_value + "\n").encode())

    # ------------------------------------------------------------ write-behind

    async def flush(self) -> int:
        """Write the last uses noted since the previous flush; returns rows written."""
        rows, self._used = list(self._used.items()), {}
        try:
            await self.store.save_operators_last_used(rows)
        except Exception:
            for name, at in rows:
                self._used.setdefault(name, at)
            raise
        return len(rows)

    async def run_flush(self, interval_s: float) -> None:
        """Flush every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.flush()
            except Exception as exc:
                log.error("writing operators' last use failed, will retry: %s", exc)
