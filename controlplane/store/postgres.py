"""PostgreSQL store (asyncpg): the same records and rules as the SQLite store, on a
database that several control planes can share.

The SQL is the SQLite store's with ``$1`` placeholders: portable statements
(``INSERT ... ON CONFLICT ... DO UPDATE``, no ``RETURNING`` where SQLite's store has
none), the same ordering, filters and transactions.  The schema is
:mod:`controlplane.store.postgres_schema`, applied through the same
:func:`~controlplane.store.migrations.migrate`, under an advisory lock so that two
control planes starting at once do not both migrate.  docs/decisions.md ("PostgreSQL
store") says why asyncpg, with figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple, fields
from pathlib import Path
from typing import Any, TypeVar, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from fleet.files import check_private

from ..errors import Conflict, StoreError
from .base import (
    AckRecord,
    AgentRecord,
    AlertRecord,
    AuditRecord,
    ConnectionRecord,
    MaintenanceRecord,
    OperatorRecord,
    PinRecord,
    PoolRecord,
    ScheduleRecord,
    SilenceRecord,
    TokenRecord,
)
from .dsn import redact
from .migrations import Migration, migrate
from .postgres_schema import MIGRATIONS

__all__ = ["LEAD_LOCK", "OUTBOX_CHANNEL", "SCHEMA_LOCK", "PostgresStore"]

SCHEMA_LOCK = 0x666C_6565_7473_6368
"""The advisory lock held while the schema is migrated (``fleetsch`` in ASCII)."""

LEAD_LOCK = 0x666C_6565_746F_776E
"""The advisory lock the leading replica holds while it runs (``fleetown`` in ASCII):
whoever holds it runs the fleet-wide timers (:mod:`controlplane.replicas`)."""

OUTBOX_LOCK = 0x666C_6565_746F_7862
"""The advisory lock each outbox insert holds to its commit (``fleetoxb``): sequence
numbers are then committed in order, so a reader never passes one still in flight."""

OUTBOX_CHANNEL = "fleet_outbox"
"""What an outbox insert NOTIFYs, with its sequence number: a wake-up, never the data."""

"""How long a start waits for the lock: a predecessor killed a moment ago may still
have its session open until PostgreSQL notices."""

CONNECT_TIMEOUT_S = 10.0
"""How long opening one connection may take before the server is called unreachable."""

APPLICATION_NAME = "fleet-controlplane"
"""How the control plane's sessions appear in ``pg_stat_activity``."""

_SILENCE_COLUMNS = ", ".join(f.name for f in fields(SilenceRecord))
_WINDOW_COLUMNS = ", ".join(f.name for f in fields(MaintenanceRecord))
_ENROLL_COLUMNS = ", ".join(f.name for f in fields(TokenRecord))

_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    # A connection the server closed while the client was using it (asyncpg 0.32).
    asyncpg.InternalClientError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
"""Errors that mean the server did not answer, or went away."""

_FAILURES = (*_UNREACHABLE, asyncpg.PostgresError)


def _dumps(value: Any) -> str:
    """JSON for a ``jsonb`` column.

    ``jsonb`` cannot hold NUL (``\\u0000``) nor NaN and infinities, which an agent's
    status may well carry: NUL becomes U+FFFD and a non-finite number null, rather
    than one agent's status failing every flush of the whole fleet.  Checked after
    encoding, so the common case costs one search of the text.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        if "\\u0000" not in text:
            return text
    except ValueError:
        pass
    return json.dumps(
        _jsonb_safe(value), separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def _jsonb_safe(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {_jsonb_safe(k): _jsonb_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonb_safe(v) for v in value]
    return value


def _clean(args: Iterable[Any]) -> tuple[Any, ...]:
    """Statement arguments, NUL in text replaced as :func:`_dumps` does."""
    return tuple(
        a.replace("\x00", "\ufffd") if isinstance(a, str) and "\x00" in a else a for a in args
    )


_AGENT_COLUMNS = "id, name, pool, labels, enrolled_at, cert_serial, cert_not_after, revoked, status"


def _agent(r: asyncpg.Record) -> AgentRecord:
    return AgentRecord(
        id=r[0],
        name=r[1],
        pool=r[2],
        labels=r[3],
        enrolled_at=r[4],
        cert_serial=r[5],
        cert_not_after=r[6],
        revoked=bool(r[7]),
        status=r[8],
    )


_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])


def _announces(
    what: str, key: Callable[[tuple[Any, ...], dict[str, Any]], str | None] | None = None
) -> Callable[[_Method], _Method]:
    """After the change succeeds, await :attr:`PostgresStore.changes` (what, key): the
    other replicas read it again (:mod:`controlplane.replicas`). Awaited, so that a
    change acknowledged is one the others will hear of, even if this replica dies
    the next moment. ``key`` makes the note's key from the call's arguments; None
    from it: nothing to tell."""

    def wrap(method: _Method) -> _Method:
        @functools.wraps(method)
        async def announcing(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
            result = await method(self, *args, **kwargs)
            said = key(args, kwargs) if key is not None else ""
            if self.changes is not None and said is not None:
                await self.changes(what, said)
            return result

        return cast(_Method, announcing)

    return wrap


def _placeholders(sql: str) -> str:
    """SQLite's ``?`` placeholders as PostgreSQL's ``$1, $2, ...`` (outside quotes), so a
    migration step written as a function runs on both backends."""
    out, n, quote = [], 0, ""
    for ch in sql:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            n += 1
            out.append(f"${n}")
            continue
        out.append(ch)
    return "".join(out)


async def _init_connection(conn: asyncpg.Connection) -> None:
    # Python values in, Python values out: the store's JSON columns are jsonb.
    await conn.set_type_codec(
        "jsonb", encoder=_dumps, decoder=json.loads, schema="pg_catalog", format="text"
    )


class _PostgresSchema:
    """:class:`~controlplane.store.migrations.SchemaRunner` on a ``schema_version`` table."""

    def __init__(self, conn: asyncpg.Connection, where: str) -> None:
        self.conn = conn
        self.where = where

    async def read_version(self) -> int:
        if not await self.has_table("schema_version"):
            return 0
        version = await self.conn.fetchval("SELECT version FROM schema_version WHERE id = 1")
        return int(version or 0)

    async def has_table(self, name: str) -> bool:
        found = await self.conn.fetchval(
            "SELECT 1 FROM information_schema.tables"
            " WHERE table_schema = current_schema() AND table_name = $1",
            name,
        )
        return found is not None

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.conn.execute(_placeholders(sql), *params)

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.conn.fetch(_placeholders(sql), *params)]

    async def apply(self, step: Migration | None, version: int) -> None:
        # PostgreSQL's DDL is transactional: a failed step leaves neither its tables
        # nor its version number behind.
        async with self.conn.transaction():
            if step is not None:
                for sql in step.statements:
                    await self.conn.execute(sql)
                if step.run is not None:
                    await step.run(self)
            await self.conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version"
                " (id BIGINT PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)"
            )
            await self.conn.execute(
                "INSERT INTO schema_version (id, version) VALUES (1, $1)"
                " ON CONFLICT (id) DO UPDATE SET version = excluded.version",
                version,
            )


class PostgresStore:
    """The :class:`~controlplane.store.base.Store` on a PostgreSQL database.

    Args:
        dsn: ``postgresql://USER@HOST:PORT/DATABASE``; the password comes from
            ``password_file``, else ``PGPASSWORD`` or ``~/.pgpass`` (as libpq's).
        pool_size: connections at most in the pool.
        password_file: a file (mode 0600) holding the password.
        migrations: the schema steps; tests give their own.
    """

    shared = True
    """Several control planes may run on it at once, as replicas (:mod:`controlplane.replicas`)."""

    def __init__(
        self,
        dsn: str,
        *,
        pool_size: int = 10,
        password_file: Path | None = None,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        self.dsn = dsn
        self.where = redact(dsn)
        """The database as shown in messages and the banner: no password."""
        self.pool_size = pool_size
        self.password_file = password_file
        self.migrations = tuple(migrations)
        self.applied: list[Migration] = []
        """The schema steps the last :meth:`open` applied."""
        self._pool: asyncpg.Pool | None = None
        self.changes: Callable[[str, str], Awaitable[None]] | None = None
        """Awaited with (what, key) after each change other replicas must read again (an
        agent, the pins, a kind of document...), before the change is acknowledged:
        :mod:`controlplane.replicas` sets it."""

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("store is not open")
        return self._pool

    def _password(self) -> str | None:
        if self.password_file is None:
            return None
        try:
            check_private(self.password_file)
            return self.password_file.read_text().strip() or None
        except (OSError, PermissionError) as exc:
            raise StoreError(
                f"cannot read store_password_file {self.password_file}: {exc}; it must be "
                "a file of the user running the server, mode 0600"
            ) from None

    def _unreachable(self, exc: BaseException) -> StoreError:
        detail = str(exc) or type(exc).__name__
        if isinstance(exc, asyncpg.InvalidCatalogNameError):
            return StoreError(
                f"PostgreSQL at {self.where}: {detail}; create it "
                "(createdb -O USER DATABASE), or fix the database name in --store"
            )
        if isinstance(exc, asyncpg.TooManyConnectionsError):
            return StoreError(
                f"PostgreSQL at {self.where} has no connection left: {detail}; raise its "
                "max_connections, or lower store_pool_size on the control planes sharing it"
            )
        if isinstance(
            exc, asyncpg.InvalidAuthorizationSpecificationError | asyncpg.InvalidPasswordError
        ):
            return StoreError(
                f"PostgreSQL at {self.where} refused the login: {detail}; check the user in "
                "--store, its password (PGPASSWORD, ~/.pgpass or store_password_file) and "
                "pg_hba.conf on the database server"
            )
        return StoreError(
            f"cannot reach PostgreSQL at {self.where}: {detail}; check that the server "
            "runs and listens there (pg_lsclusters; listen_addresses and port in "
            "postgresql.conf), that pg_hba.conf lets this host in, and the network between"
        )

    async def _connect(self) -> asyncpg.Connection:
        """One connection outside the pool, without a statement timeout (migrations)."""
        return await asyncpg.connect(
            self.dsn,
            password=self._password(),
            timeout=CONNECT_TIMEOUT_S,
            server_settings={"application_name": APPLICATION_NAME},
        )

    async def open(self) -> None:
        try:
            conn = await self._connect()
        except StoreError:
            raise
        except _FAILURES as exc:
            raise self._unreachable(exc) from None
        try:
            await self._migrate(conn)
        except _UNREACHABLE as exc:
            raise self._unreachable(exc) from None
        except asyncpg.PostgresError as exc:
            raise self._error(exc) from None
        finally:
            with contextlib.suppress(*_FAILURES):
                await conn.close(timeout=CONNECT_TIMEOUT_S)
        try:
            self._pool = await asyncpg.create_pool(
                self.dsn,
                password=self._password(),
                min_size=1,
                max_size=self.pool_size,
                init=_init_connection,
                timeout=CONNECT_TIMEOUT_S,
                server_settings={"application_name": APPLICATION_NAME},
            )
        except _FAILURES as exc:
            raise self._unreachable(exc) from None

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        # Two control planes starting at once on a fresh database: the second waits
        # here, then finds the schema current.  A session lock, held across the
        # steps' own transactions, and released with the session if this one dies.
        await conn.execute("SELECT pg_advisory_lock($1)", SCHEMA_LOCK)
        try:
            self.applied = await migrate(_PostgresSchema(conn, self.where), self.migrations)
        finally:
            with contextlib.suppress(*_FAILURES):
                await conn.execute("SELECT pg_advisory_unlock($1)", SCHEMA_LOCK)

    async def claim(self) -> None:
        """Nothing to claim: replicas share a PostgreSQL store (:mod:`controlplane.replicas`),
        and the fleet-wide timers' lease is :meth:`try_lead`'s lock instead."""

    async def session(self) -> asyncpg.Connection:
        """A connection of its own, outside the pool: a listener's, or the lead lock's."""
        try:
            return await self._connect()
        except StoreError:
            raise
        except _FAILURES as exc:
            raise self._unreachable(exc) from None

    async def try_lead(self, conn: asyncpg.Connection) -> bool:
        """Take :data:`LEAD_LOCK` on ``conn`` if nobody holds it; it ends with the session."""
        try:
            return bool(await conn.fetchval("SELECT pg_try_advisory_lock($1)", LEAD_LOCK))
        except _FAILURES as exc:
            raise self._error(exc) from None

    # replicas -----------------------------------------------------------

    async def get_agent(self, agent_id: str) -> AgentRecord | None:
        rows = await self._rows(f"SELECT {_AGENT_COLUMNS} FROM agents WHERE id = $1", agent_id)  # noqa: S608
        return _agent(rows[0]) if rows else None

    async def outbox_head(self) -> int:
        """The newest sequence number in the outbox (0: empty)."""
        rows = await self._rows("SELECT coalesce(max(seq), 0) FROM outbox")
        return int(rows[0][0])

    async def outbox_write(self, replica: str, body: str, at: float) -> int:
        """Append one batch; its NOTIFY goes out at commit. Returns its sequence number."""
        async with self._conn(transaction=True) as conn:
            await conn.execute("SELECT pg_advisory_xact_lock($1)", OUTBOX_LOCK)
            seq = await conn.fetchval(
                "INSERT INTO outbox (replica, body, at) VALUES ($1, $2, $3) RETURNING seq",
                replica,
                body,
                at,
            )
            await conn.execute("SELECT pg_notify($1, $2)", OUTBOX_CHANNEL, str(seq))
        return int(seq)

    async def outbox_read(self, after: int, limit: int) -> list[tuple[int, str, str]]:
        """Batches after ``after``, oldest first: (seq, replica, body)."""
        rows = await self._rows(
            "SELECT seq, replica, body FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2",
            after,
            limit,
        )
        return [(int(r[0]), r[1], r[2]) for r in rows]

    async def outbox_prune(self, before: float) -> None:
        await self._execute("DELETE FROM outbox WHERE at < $1", before)

    async def take_lease(self, agent_id: str, replica: str) -> int:
        """Make ``replica`` the holder of the agent's channel; returns the new epoch,
        higher than any before it, so that an older holder knows it is fenced."""
        rows = await self._rows(
            "INSERT INTO agent_leases (agent_id, replica, epoch) VALUES ($1, $2, 1)"
            " ON CONFLICT (agent_id) DO UPDATE SET replica = excluded.replica,"
            " epoch = agent_leases.epoch + 1 RETURNING epoch",
            agent_id,
            replica,
        )
        return int(rows[0][0])

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                # Graceful: waits for the connections in use to come back.
                async with asyncio.timeout(CONNECT_TIMEOUT_S):
                    await pool.close()
            except TimeoutError:
                pool.terminate()  # a query stuck on a server that went away
            except _FAILURES:
                pass

    def _error(self, exc: BaseException) -> StoreError:
        if isinstance(exc, asyncpg.DiskFullError):
            return StoreError(
                "the store could not write: the disk holding PostgreSQL's data directory "
                f"({self.where}) is full; free space there and retry (nothing was changed)"
            )
        if isinstance(exc, _UNREACHABLE):
            return StoreError(
                f"the store failed: PostgreSQL at {self.where} does not answer "
                f"({str(exc) or type(exc).__name__}); retry, and check the database server"
            )
        return StoreError(f"the store failed: {exc}; retry, and check PostgreSQL at {self.where}")

    @asynccontextmanager
    async def _conn(
        self, *, transaction: bool = False
    ) -> AsyncIterator[PoolConnectionProxy[asyncpg.Record]]:
        """A pooled connection (in one transaction if asked), errors as the store's."""
        try:
            async with self.pool.acquire() as conn:
                if transaction:
                    async with conn.transaction():
                        yield conn
                else:
                    yield conn
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise Conflict(f"already exists: {exc}") from None
        except _FAILURES as exc:
            raise self._error(exc) from None

    async def _execute(self, sql: str, *args: Any) -> str:
        async with self._conn() as conn:
            return await conn.execute(sql, *_clean(args))

    async def _rows(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        async with self._conn() as conn:
            return await conn.fetch(sql, *_clean(args))

    # agents -------------------------------------------------------------

    @_announces("agent", lambda a, _: a[0].id)
    async def add_agent(self, agent: AgentRecord) -> None:
        await self._execute(
            "INSERT INTO agents (id, name, pool, labels, enrolled_at, cert_serial,"
            " cert_not_after, revoked, status) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            agent.id,
            agent.name,
            agent.pool,
            agent.labels,
            agent.enrolled_at,
            agent.cert_serial,
            agent.cert_not_after,
            int(agent.revoked),
            agent.status,
        )

    async def list_agents(self) -> list[AgentRecord]:
        rows = await self._rows(f"SELECT {_AGENT_COLUMNS} FROM agents ORDER BY name")  # noqa: S608
        return [_agent(r) for r in rows]

    @_announces("agent", lambda a, _: a[0])
    async def set_agent_cert(self, agent_id: str, serial: str, not_after: float) -> None:
        await self._execute(
            "UPDATE agents SET cert_serial = $1, cert_not_after = $2 WHERE id = $3",
            serial,
            not_after,
            agent_id,
        )

    @_announces("revoked", lambda a, _: a[0])
    async def revoke_agent(self, agent_id: str, at: float) -> None:
        async with self._conn(transaction=True) as conn:
            await conn.execute(
                "UPDATE agents SET revoked = 1, revoked_at = $1 WHERE id = $2", at, agent_id
            )
            await conn.execute(
                "UPDATE certificates SET revoked_at = $1"
                " WHERE agent_id = $2 AND revoked_at IS NULL",
                at,
                agent_id,
            )

    async def save_agent_status(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        if not rows:
            return
        async with self._conn(transaction=True) as conn:
            # Written behind: a crash loses up to flush_interval_s of status anyway,
            # so this commit need not wait for the WAL flush (docs/server.md).
            await conn.execute("SET LOCAL synchronous_commit = off")
            await conn.executemany(
                "UPDATE agents SET status = $1 WHERE id = $2",
                [_clean((status, agent_id)) for agent_id, status in rows],
            )

    @_announces("deleted", lambda a, _: a[0])
    async def delete_agent(self, agent_id: str) -> None:
        async with self._conn(transaction=True) as conn:
            await conn.execute("DELETE FROM agents WHERE id = $1", agent_id)
            await conn.execute("DELETE FROM pins WHERE scope = 'agent' AND name = $1", agent_id)
            await conn.execute("DELETE FROM disconnects WHERE agent_id = $1", agent_id)

    @_announces("certificates", lambda a, kw: a[1] if kw.get("pending") else None)
    async def add_certificate(
        self, serial: str, agent_id: str, not_after: float, *, pending: bool = False
    ) -> None:
        await self._execute(
            "INSERT INTO certificates (serial, agent_id, not_after, pending)"
            " VALUES ($1, $2, $3, $4)",
            serial,
            agent_id,
            not_after,
            int(pending),
        )

    async def pending_serials(self) -> set[str]:
        rows = await self._rows(
            "SELECT serial FROM certificates WHERE pending = 1 AND revoked_at IS NULL"
        )
        return {r[0] for r in rows}

    @_announces("serials", lambda a, _: a[0])
    async def supersede_certificates(self, agent_id: str, keep: str, at: float) -> list[str]:
        # As SQLiteStore's: one transaction, the others refused (revoked_at), ``keep``
        # no longer pending and the agent's current certificate, or none of it.
        async with self._conn(transaction=True) as conn:
            rows = await conn.fetch(
                "SELECT serial FROM certificates"
                " WHERE agent_id = $1 AND serial != $2 AND revoked_at IS NULL",
                agent_id,
                keep,
            )
            await conn.execute(
                "UPDATE certificates SET revoked_at = $1"
                " WHERE agent_id = $2 AND serial != $3 AND revoked_at IS NULL",
                at,
                agent_id,
                keep,
            )
            await conn.execute("UPDATE certificates SET pending = 0 WHERE serial = $1", keep)
            await conn.execute(
                "UPDATE agents SET cert_serial = $1, cert_not_after ="
                " (SELECT not_after FROM certificates WHERE serial = $1) WHERE id = $2",
                keep,
                agent_id,
            )
        return [str(r[0]) for r in rows]

    async def revoked_serials(self, valid_at: float | None = None) -> set[str]:
        if valid_at is None:
            rows = await self._rows("SELECT serial FROM certificates WHERE revoked_at IS NOT NULL")
        else:
            rows = await self._rows(
                "SELECT serial FROM certificates WHERE revoked_at IS NOT NULL AND not_after > $1",
                valid_at,
            )
        return {r[0] for r in rows}

    # tokens -------------------------------------------------------------

    async def add_token(self, token: TokenRecord) -> None:
        await self._execute(
            "INSERT INTO tokens (id, token_hash, pool, labels, created_at, expires_at,"
            " uses_total, uses_left, created_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            token.id,
            token.token_hash,
            token.pool,
            token.labels,
            token.created_at,
            token.expires_at,
            token.uses_total,
            token.uses_left,
            token.created_by,
        )

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        rows = await self._rows(
            f"SELECT {_ENROLL_COLUMNS} FROM tokens WHERE token_hash = $1",  # noqa: S608
            token_hash,
        )
        return TokenRecord(*rows[0]) if rows else None

    async def use_token(self, token_id: str) -> bool:
        """Spend one use, atomically; False when none was left."""
        status = await self._execute(
            "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = $1 AND uses_left > 0",
            token_id,
        )
        return status == "UPDATE 1"

    async def list_tokens(self) -> list[TokenRecord]:
        rows = await self._rows(
            f"SELECT {_ENROLL_COLUMNS} FROM tokens ORDER BY created_at"  # noqa: S608
        )
        return [TokenRecord(*r) for r in rows]

    async def revoke_token(self, token_id: str, at: float) -> None:
        await self._execute(
            "UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
            at,
            token_id,
        )

    # operators ----------------------------------------------------------

    _OPERATOR_INSERT = (
        "INSERT INTO operators (name, role, token_hash, created_at, created_by,"
        " last_used_at, revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    )

    @_announces("operators")
    async def add_operator(self, op: OperatorRecord) -> None:
        await self._execute(self._OPERATOR_INSERT, *astuple(op))

    @_announces("operators")
    async def replace_operator(self, op: OperatorRecord) -> None:
        await self._execute(
            self._OPERATOR_INSERT + " ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
            " token_hash = excluded.token_hash, created_at = excluded.created_at,"
            " created_by = excluded.created_by, last_used_at = excluded.last_used_at,"
            " revoked_at = excluded.revoked_at",
            *astuple(op),
        )

    async def list_operators(self) -> list[OperatorRecord]:
        rows = await self._rows(
            "SELECT name, role, token_hash, created_at, created_by, last_used_at, revoked_at"
            " FROM operators ORDER BY name"
        )
        return [OperatorRecord(*r) for r in rows]

    async def save_operators_last_used(self, rows: list[tuple[str, float]]) -> None:
        if not rows:
            return
        async with self._conn(transaction=True) as conn:
            await conn.executemany(
                "UPDATE operators SET last_used_at = $1 WHERE name = $2",
                [_clean((at, name)) for name, at in rows],
            )

    # pins, pools, connections -------------------------------------------

    @_announces("pins")
    async def set_pin(self, pin: PinRecord) -> None:
        await self._execute(
            "INSERT INTO pins (scope, name, version, config, set_at, set_by)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (scope, name) DO UPDATE SET"
            " version = excluded.version, config = excluded.config,"
            " set_at = excluded.set_at, set_by = excluded.set_by",
            pin.scope,
            pin.name,
            pin.version,
            pin.config,
            pin.set_at,
            pin.set_by,
        )

    async def list_pins(self) -> list[PinRecord]:
        rows = await self._rows("SELECT scope, name, version, config, set_at, set_by FROM pins")
        return [PinRecord(*r) for r in rows]

    @_announces("pins")
    async def delete_pin(self, scope: str, name: str) -> None:
        await self._execute("DELETE FROM pins WHERE scope = $1 AND name = $2", scope, name)

    @_announces("pools")
    async def set_pool(self, pool: PoolRecord) -> None:
        await self._execute(
            "INSERT INTO pools (name, policy, min_healthy) VALUES ($1, $2, $3)"
            " ON CONFLICT (name) DO UPDATE SET policy = excluded.policy,"
            " min_healthy = excluded.min_healthy",
            pool.name,
            pool.policy,
            pool.min_healthy,
        )

    async def list_pools(self) -> list[PoolRecord]:
        rows = await self._rows("SELECT name, policy, min_healthy FROM pools")
        return [PoolRecord(*r) for r in rows]

    @_announces("pools")
    async def delete_pool(self, name: str) -> None:
        await self._execute("DELETE FROM pools WHERE name = $1", name)

    @_announces("connections")
    async def add_connection(self, conn: ConnectionRecord) -> None:
        await self._execute(
            "INSERT INTO connections (name, host, port, pools, created_at, schedules)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            conn.name,
            conn.host,
            conn.port,
            conn.pools,
            conn.created_at,
            _schedules(conn.schedules),
        )

    async def list_connections(self) -> list[ConnectionRecord]:
        rows = await self._rows(
            "SELECT name, host, port, pools, created_at, schedules FROM connections ORDER BY name"
        )
        return [
            ConnectionRecord(r[0], r[1], r[2], r[3], r[4], [ScheduleRecord(**s) for s in r[5]])
            for r in rows
        ]

    @_announces("connections")
    async def update_connection(self, conn: ConnectionRecord) -> None:
        await self._execute(
            "UPDATE connections SET host = $1, port = $2, pools = $3, schedules = $4"
            " WHERE name = $5",
            conn.host,
            conn.port,
            conn.pools,
            _schedules(conn.schedules),
            conn.name,
        )

    @_announces("connections")
    async def delete_connection(self, name: str) -> None:
        await self._execute("DELETE FROM connections WHERE name = $1", name)

    # alerts and audit ---------------------------------------------------

    async def save_alert(self, alert: AlertRecord) -> None:
        await self.save_alerts([alert])

    async def save_alerts(self, alerts: list[AlertRecord]) -> None:
        if not alerts:
            return
        async with self._conn(transaction=True) as conn:
            await conn.executemany(
                "INSERT INTO alerts"
                " (id, kind, severity, target, message, raised_at, cleared_at, flaps)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO UPDATE SET"
                " severity = excluded.severity, message = excluded.message,"
                " cleared_at = excluded.cleared_at, flaps = excluded.flaps",
                [_clean(astuple(a)) for a in alerts],
            )

    async def list_alerts(self, include_cleared: bool) -> list[AlertRecord]:
        rows = await self._rows(
            "SELECT id, kind, severity, target, message, raised_at, cleared_at, flaps"
            " FROM alerts WHERE cleared_at IS NULL OR $1 ORDER BY raised_at DESC",
            include_cleared,
        )
        return [AlertRecord(*r) for r in rows]

    # disconnect history -------------------------------------------------

    async def add_disconnects(
        self, batch: list[tuple[str, list[dict[str, Any]]]], keep: int
    ) -> None:
        received = time.time()
        rows = [_clean((agent_id, received, r)) for agent_id, records in batch for r in records]
        if not rows:
            return
        agents = sorted({agent_id for agent_id, _ in batch})
        async with self._conn(transaction=True) as conn:
            await conn.executemany(
                "INSERT INTO disconnects (agent_id, received_at, record) VALUES ($1, $2, $3)",
                rows,
            )
            await conn.executemany(
                "DELETE FROM disconnects WHERE agent_id = $1 AND id NOT IN"
                " (SELECT id FROM disconnects WHERE agent_id = $1 ORDER BY id DESC LIMIT $2)",
                [_clean((agent_id, keep)) for agent_id in agents],
            )

    async def list_disconnects(self, agent_id: str, limit: int) -> list[dict[str, Any]]:
        rows = await self._rows(
            "SELECT record FROM disconnects WHERE agent_id = $1 ORDER BY id DESC LIMIT $2",
            agent_id,
            limit,
        )
        return [r[0] for r in reversed(rows)]

    # acknowledgements, silences, maintenance ---------------------------

    async def _upsert(self, table: str, record: Any) -> None:
        """Insert ``record`` (a dataclass whose first field is the key), or update it."""
        names = [f.name for f in fields(record)]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        values = ", ".join(f"${i}" for i in range(1, len(names) + 1))
        await self._execute(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({values})"  # noqa: S608
            f" ON CONFLICT ({names[0]}) DO UPDATE SET {updates}",
            *astuple(record),
        )

    @_announces("suppression")
    async def save_ack(self, ack: AckRecord) -> None:
        await self._upsert("acks", ack)

    @_announces("suppression")
    async def delete_ack(self, alert_id: str) -> None:
        await self._execute("DELETE FROM acks WHERE alert_id = $1", alert_id)

    async def list_acks(self) -> list[AckRecord]:
        rows = await self._rows("SELECT alert_id, acked_by, note, at, expires_at FROM acks")
        return [AckRecord(*r) for r in rows]

    @_announces("suppression")
    async def save_silence(self, silence: SilenceRecord) -> None:
        await self._upsert("silences", silence)

    async def list_silences(self, ended_after: float | None) -> list[SilenceRecord]:
        rows = await self._rows(
            f"SELECT {_SILENCE_COLUMNS} FROM silences"  # noqa: S608
            " WHERE $1::double precision IS NULL OR (deleted_at IS NULL AND ends_at > $1)"
            " ORDER BY starts_at",
            ended_after,
        )
        return [SilenceRecord(*r) for r in rows]

    @_announces("suppression")
    async def save_maintenance(self, window: MaintenanceRecord) -> None:
        await self._upsert("maintenance", window)

    async def list_maintenance(self, ended_after: float | None) -> list[MaintenanceRecord]:
        rows = await self._rows(
            f"SELECT {_WINDOW_COLUMNS} FROM maintenance"  # noqa: S608
            " WHERE $1::double precision IS NULL OR (deleted_at IS NULL AND ends_at > $1)"
            " ORDER BY starts_at",
            ended_after,
        )
        return [MaintenanceRecord(*r) for r in rows]

    # documents --------------------------------------------------------

    @_announces("documents", lambda a, _: a[0])
    async def put_document(self, kind: str, key: str, body: dict[str, Any], at: float) -> None:
        await self._execute(
            "INSERT INTO documents (kind, key, body, updated_at) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body,"
            " updated_at = excluded.updated_at",
            kind,
            key,
            body,
            at,
        )

    async def get_document(self, kind: str, key: str) -> dict[str, Any] | None:
        rows = await self._rows(
            "SELECT body FROM documents WHERE kind = $1 AND key = $2", kind, key
        )
        return dict(rows[0][0]) if rows else None

    async def list_documents(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await self._rows(
            "SELECT key, body FROM documents WHERE kind = $1 ORDER BY updated_at, key", kind
        )
        return [(r[0], r[1]) for r in rows]

    @_announces("documents", lambda a, _: a[0])
    async def delete_document(self, kind: str, key: str) -> None:
        await self._execute("DELETE FROM documents WHERE kind = $1 AND key = $2", kind, key)

    async def put_release_file(self, sha256: str, body: bytes) -> None:
        await self._execute(
            "INSERT INTO release_files (sha256, body) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            sha256,
            body,
        )

    async def get_release_file(self, sha256: str) -> bytes | None:
        rows = await self._rows("SELECT body FROM release_files WHERE sha256 = $1", sha256)
        return bytes(rows[0][0]) if rows else None

    async def delete_release_file(self, sha256: str) -> None:
        await self._execute("DELETE FROM release_files WHERE sha256 = $1", sha256)

    async def audit(self, entry: AuditRecord) -> None:
        await self._execute(
            "INSERT INTO audit (at, actor, action, target, result, detail)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            *astuple(entry),
        )

    async def list_audit(
        self, limit: int, since: float | None = None, actor: str | None = None
    ) -> list[AuditRecord]:
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            params.append(since)
            where.append(f"at >= ${len(params)}")
        if actor is not None:
            params.append(actor)
            where.append(f"actor = ${len(params)}")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._rows(
            "SELECT at, actor, action, target, result, detail FROM audit"  # noqa: S608
            f"{clause} ORDER BY id DESC LIMIT ${len(params) + 1}",
            *params,
            limit,
        )
        return [AuditRecord(*r) for r in rows]


def _schedules(schedules: list[ScheduleRecord]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(s) for s in schedules]
