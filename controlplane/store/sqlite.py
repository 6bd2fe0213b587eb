"""SQLite store in WAL mode: the embedded default, one file in the data directory.

The SQL is kept portable (``INSERT ... ON CONFLICT ... DO UPDATE``, no SQLite-only
types) so that a PostgreSQL backend can share it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import astuple, fields
from pathlib import Path
from typing import Any

import aiosqlite

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
from .migrations import Migration, migrate

__all__ = ["MIGRATIONS", "SQLiteStore"]

SCHEMA_1 = (
    """
CREATE TABLE IF NOT EXISTS agents (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, pool TEXT NOT NULL, labels TEXT NOT NULL,
    enrolled_at REAL NOT NULL, cert_serial TEXT NOT NULL, cert_not_after REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0, revoked_at REAL, status TEXT NOT NULL DEFAULT '{}'
)
""",
    """
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY, agent_id TEXT NOT NULL, not_after REAL NOT NULL,
    revoked_at REAL
)
""",
    """
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, pool TEXT NOT NULL,
    labels TEXT NOT NULL, created_at REAL NOT NULL, expires_at REAL NOT NULL,
    uses_total INTEGER NOT NULL, uses_left INTEGER NOT NULL, created_by TEXT NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS operators (
    name TEXT PRIMARY KEY, role TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
    created_at REAL NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS pins (
    scope TEXT NOT NULL, name TEXT NOT NULL, version TEXT, config TEXT,
    set_at REAL NOT NULL, set_by TEXT NOT NULL, PRIMARY KEY (scope, name)
)
""",
    """
CREATE TABLE IF NOT EXISTS pools (
    name TEXT PRIMARY KEY, policy TEXT NOT NULL, min_healthy INTEGER NOT NULL DEFAULT 0
)
""",
    """
CREATE TABLE IF NOT EXISTS connections (
    name TEXT PRIMARY KEY, host TEXT NOT NULL, port INTEGER NOT NULL, pools TEXT NOT NULL,
    created_at REAL NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, severity TEXT NOT NULL, target TEXT NOT NULL,
    message TEXT NOT NULL, raised_at REAL NOT NULL, cleared_at REAL
)
""",
    """
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, actor TEXT NOT NULL,
    action TEXT NOT NULL, target TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL
)
""",
    """
CREATE INDEX IF NOT EXISTS audit_at ON audit (at)
""",
)
"""Version 1: the schema from before versions were recorded.  Frozen: a change to the
schema is a new step in :data:`MIGRATIONS`, never an edit here."""

MIGRATION_2: tuple[str, ...] = (
    "ALTER TABLE operators ADD COLUMN created_by TEXT NOT NULL DEFAULT ''",
    "ALTER TABLE operators ADD COLUMN last_used_at REAL",
    "ALTER TABLE operators ADD COLUMN revoked_at REAL",
    "ALTER TABLE tokens ADD COLUMN revoked_at REAL",
    "CREATE INDEX IF NOT EXISTS audit_actor ON audit (actor, at)",
)
"""Issue 7 (lifecycle of every object): who created an operator, when its token was
last used, revocations of operators and enrollment tokens; an index for the audit's
actor filter.  Step 2 of :data:`MIGRATIONS`."""

MIGRATION_3: tuple[str, ...] = ("ALTER TABLE alerts ADD COLUMN flaps INTEGER NOT NULL DEFAULT 0",)
"""Issue 8 (durable, calm alerts): how often an alert cleared and was raised again
within the hold time, kept open instead.  Step 3 of :data:`MIGRATIONS`."""

MIGRATION_DISCONNECTS: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS disconnects (
    id INTEGER PRIMARY KEY AUTOINCREMENT, agent_id TEXT NOT NULL,
    received_at REAL NOT NULL, record TEXT NOT NULL
)
""",
    "CREATE INDEX IF NOT EXISTS disconnects_agent ON disconnects (agent_id, id)",
)
"""Issue 9 (disconnect history): why each agent's channels ended, as the agent
reported it, append-only and trimmed to the newest 50 per agent."""


MIGRATION_SUPPRESS: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS acks (
    alert_id TEXT PRIMARY KEY, acked_by TEXT NOT NULL, note TEXT NOT NULL, at REAL NOT NULL,
    expires_at REAL
)
""",
    """
CREATE TABLE IF NOT EXISTS silences (
    id TEXT PRIMARY KEY, starts_at REAL NOT NULL, ends_at REAL NOT NULL, reason TEXT NOT NULL,
    created_by TEXT NOT NULL, created_at REAL NOT NULL, agent TEXT, pool TEXT,
    connection TEXT, kind TEXT, deleted_at REAL, deleted_by TEXT
)
""",
    """
CREATE TABLE IF NOT EXISTS maintenance (
    id TEXT PRIMARY KEY, scope TEXT NOT NULL, target TEXT NOT NULL, starts_at REAL NOT NULL,
    ends_at REAL NOT NULL, reason TEXT NOT NULL, created_by TEXT NOT NULL,
    created_at REAL NOT NULL, deleted_at REAL, deleted_by TEXT
)
""",
    "CREATE INDEX IF NOT EXISTS silences_ends ON silences (ends_at)",
    "CREATE INDEX IF NOT EXISTS maintenance_ends ON maintenance (ends_at)",
)
"""Issue 9 (acknowledge, silence, maintenance): acknowledgements of open alerts,
silences by matcher and maintenance windows of agents and pools; each ends by itself
(``ends_at``) or early (``deleted_at``)."""


MIGRATION_SCHEDULES: tuple[str, ...] = (
    "ALTER TABLE connections ADD COLUMN schedules TEXT NOT NULL DEFAULT '[]'",
)
"""Issue 9 (schedule-aware connections): the jobs' schedules on each connection, a
JSON list of ``{"cron", "timezone", "name"}``.  The next step of :data:`MIGRATIONS`."""

MIGRATION_DOCUMENTS: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS documents (
    kind TEXT NOT NULL, key TEXT NOT NULL, body TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (kind, key)
)
""",
)
"""Issue 10 (releases, rollouts, windows, remediation): documents kept and read
whole, as JSON, by kind and key (docs/decisions.md, "Documents")."""

MIGRATION_PENDING_KEYS: tuple[str, ...] = (
    "ALTER TABLE certificates ADD COLUMN pending INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX IF NOT EXISTS certificates_pending ON certificates (serial) WHERE pending = 1",
    "CREATE INDEX IF NOT EXISTS certificates_agent ON certificates (agent_id)",
    "CREATE INDEX IF NOT EXISTS certificates_not_after ON certificates (not_after)",
)
"""Issue 8 (a renewal with a new key supersedes the old certificate): a certificate
issued for a new key is ``pending`` until it first authenticates; then the agent's
older certificates are refused.  Indexes for the pending ones (read at start) and for
one agent's certificates (read at each supersession)."""

MIGRATION_REPLICAS: tuple[str, ...] = (
    """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, replica TEXT NOT NULL, body TEXT NOT NULL,
    at REAL NOT NULL
)
""",
    """
CREATE TABLE IF NOT EXISTS agent_leases (
    agent_id TEXT PRIMARY KEY, replica TEXT NOT NULL, epoch INTEGER NOT NULL
)
""",
)
"""Issue 11 (replicas on PostgreSQL): what each replica tells the others, by sequence,
and which replica holds each agent's channel (controlplane/replicas.py).  SQLite runs
one control plane, so its tables stay empty; they keep the two schemas alike."""

MIGRATION_RELEASE_FILES: tuple[str, ...] = (
    "CREATE TABLE IF NOT EXISTS release_files (sha256 TEXT PRIMARY KEY, body BLOB NOT NULL)",
)
"""Issue 11: a release's wheel in the database, so that a replica that did not receive
the upload serves its download (PostgreSQL only: one SQLite control plane has the file)."""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "agents, certificates, tokens, operators, pins, pools, connections, alerts, audit",
        SCHEMA_1,
    ),
    Migration(
        2,
        "operators' creator, last use and revocation; enrollment tokens' revocation",
        MIGRATION_2,
    ),
    Migration(3, "alerts' flap count", MIGRATION_3),
    Migration(4, "agents' disconnect history", MIGRATION_DISCONNECTS),
    Migration(5, "acknowledgements, silences, maintenance windows", MIGRATION_SUPPRESS),
    Migration(6, "connections' schedules", MIGRATION_SCHEDULES),
    Migration(7, "documents: releases, rollouts, windows, remediation", MIGRATION_DOCUMENTS),
    Migration(8, "certificates pending their first use", MIGRATION_PENDING_KEYS),
    Migration(9, "replicas: the outbox and agents' session leases", MIGRATION_REPLICAS),
    Migration(10, "release files shared by replicas", MIGRATION_RELEASE_FILES),
)
"""The schema, step by step (:mod:`controlplane.store.migrations`); append new steps."""

_SILENCE_COLUMNS = ", ".join(f.name for f in fields(SilenceRecord))
_WINDOW_COLUMNS = ", ".join(f.name for f in fields(MaintenanceRecord))

LEGACY_TABLE = "agents"
"""Its presence in a database at version 0 means the database predates versions."""


def _restrict(path: Path, *, create: bool = True) -> None:
    """Make ``path`` readable by its owner only (0600), creating it empty if asked.

    The store holds token hashes and the audit: no other user may read it.
    """
    if create:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    with contextlib.suppress(FileNotFoundError):
        path.chmod(0o600)


def _store_error(exc: sqlite3.Error) -> StoreError:
    text = str(exc)
    if "full" in text:
        return StoreError(
            "the store could not write: the disk holding the data directory is full; "
            "free space and retry (nothing was changed)"
        )
    return StoreError(f"the store failed: {text}; retry, and check the data directory")


class _SQLiteSchema:
    """:class:`~controlplane.store.migrations.SchemaRunner` on ``PRAGMA user_version``."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self.db = db
        self.where = str(path)

    async def read_version(self) -> int:
        async with self.db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def has_table(self, name: str) -> bool:
        rows = await self.fetchall(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
        )
        return bool(rows)

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        await self.db.execute(sql, tuple(params))

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        async with self.db.execute(sql, tuple(params)) as cur:
            return [tuple(row) for row in await cur.fetchall()]

    async def apply(self, step: Migration | None, version: int) -> None:
        # SQLite's DDL is transactional, and so is user_version: a failed step
        # leaves neither its tables nor its version number behind.
        await self.db.execute("BEGIN IMMEDIATE")
        try:
            if step is not None:
                for sql in step.statements:
                    await self.db.execute(sql)
                if step.run is not None:
                    await step.run(self)
            await self.db.execute(f"PRAGMA user_version = {int(version)}")
        except BaseException:
            await self.db.rollback()
            raise
        await self.db.commit()


class SQLiteStore:
    """The :class:`~controlplane.store.base.Store` on one SQLite file.

    Args:
        path: the database file (created if missing).
        migrations: the schema steps; tests give their own.
    """

    def __init__(self, path: Path, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self.path = path
        self.migrations = tuple(migrations)
        self.applied: list[Migration] = []
        """The schema steps the last :meth:`open` applied."""
        self._db: aiosqlite.Connection | None = None
        self._claim_fd: int | None = None

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("store is not open")
        return self._db

    async def open(self) -> None:
        try:
            _restrict(self.path)
        except OSError as exc:
            raise StoreError(
                f"cannot open the store {self.path}: {exc.strerror or exc}; check that the "
                "data directory exists and belongs to the user running the server"
            ) from None
        self._db = await aiosqlite.connect(self.path)
        await self._db.execute("PRAGMA journal_mode=WAL")
        # SQLite gives -wal and -shm the database's mode; older installs may
        # still have looser ones.
        for suffix in ("-wal", "-shm"):
            _restrict(self.path.with_name(self.path.name + suffix), create=False)
        await self._db.execute("PRAGMA synchronous=NORMAL")
        await self._db.execute("PRAGMA busy_timeout=5000")
        try:
            schema = _SQLiteSchema(self._db, self.path)
            self.applied = await migrate(schema, self.migrations, legacy_table=LEGACY_TABLE)
        except sqlite3.Error as exc:
            await self.close()
            raise _store_error(exc) from None
        except BaseException:
            await self.close()
            raise

    async def claim(self) -> None:
        """An exclusive ``flock`` on ``fleet.db.lock`` (holding this process's pid),
        released by :meth:`close` or by the process's end, however it ends."""
        lock = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreError(
                f"another control plane (pid {holder}) is using {self.path}: stop it, or "
                "give this one a data directory of its own; one control plane per store "
                "(docs/scaling.md)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._claim_fd = fd

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None
        if self._claim_fd is not None:
            os.close(self._claim_fd)
            self._claim_fd = None

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        try:
            yield self.db
            await self.db.commit()
        except sqlite3.IntegrityError as exc:
            await self.db.rollback()
            raise Conflict(f"already exists: {exc}") from None
        except sqlite3.Error as exc:
            await self.db.rollback()
            raise _store_error(exc) from None

    async def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            async with self.db.execute(sql, tuple(params)) as cur:
                return list(await cur.fetchall())
        except sqlite3.Error as exc:
            raise _store_error(exc) from None

    # agents -------------------------------------------------------------

    async def add_agent(self, agent: AgentRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO agents (id, name, pool, labels, enrolled_at, cert_serial,"
                " cert_not_after, revoked, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    agent.id,
                    agent.name,
                    agent.pool,
                    json.dumps(agent.labels),
                    agent.enrolled_at,
                    agent.cert_serial,
                    agent.cert_not_after,
                    int(agent.revoked),
                    json.dumps(agent.status),
                ),
            )

    async def list_agents(self) -> list[AgentRecord]:
        rows = await self._rows(
            "SELECT id, name, pool, labels, enrolled_at, cert_serial, cert_not_after, revoked,"
            " status FROM agents ORDER BY name"
        )
        return [
            AgentRecord(
                id=r[0],
                name=r[1],
                pool=r[2],
                labels=json.loads(r[3]),
                enrolled_at=r[4],
                cert_serial=r[5],
                cert_not_after=r[6],
                revoked=bool(r[7]),
                status=json.loads(r[8]),
            )
            for r in rows
        ]

    async def set_agent_cert(self, agent_id: str, serial: str, not_after: float) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE agents SET cert_serial = ?, cert_not_after = ? WHERE id = ?",
                (serial, not_after, agent_id),
            )

    async def revoke_agent(self, agent_id: str, at: float) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE agents SET revoked = 1, revoked_at = ? WHERE id = ?", (at, agent_id)
            )
            await db.execute(
                "UPDATE certificates SET revoked_at = ? WHERE agent_id = ? AND revoked_at IS NULL",
                (at, agent_id),
            )

    async def save_agent_status(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        if not rows:
            return
        async with self._write() as db:
            await db.executemany(
                "UPDATE agents SET status = ? WHERE id = ?",
                [(json.dumps(status), agent_id) for agent_id, status in rows],
            )

    async def delete_agent(self, agent_id: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM agents WHERE id = ?", (agent_id,))
            await db.execute("DELETE FROM pins WHERE scope = 'agent' AND name = ?", (agent_id,))
            await db.execute("DELETE FROM disconnects WHERE agent_id = ?", (agent_id,))

    async def add_certificate(
        self, serial: str, agent_id: str, not_after: float, *, pending: bool = False
    ) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO certificates (serial, agent_id, not_after, pending)"
                " VALUES (?, ?, ?, ?)",
                (serial, agent_id, not_after, int(pending)),
            )

    async def pending_serials(self) -> set[str]:
        rows = await self._rows(
            "SELECT serial FROM certificates WHERE pending = 1 AND revoked_at IS NULL"
        )
        return {r[0] for r in rows}

    async def supersede_certificates(self, agent_id: str, keep: str, at: float) -> list[str]:
        # Recorded as revoked_at: refused from now on, as a revocation is; the
        # channel tells the two apart (the agent itself is not revoked).  One
        # transaction: the others refused, ``keep`` no longer pending and the
        # agent's current certificate, or none of it.
        async with self._write() as db:
            async with db.execute(
                "SELECT serial FROM certificates "
                "WHERE agent_id = ? AND serial != ? AND revoked_at IS NULL",
                (agent_id, keep),
            ) as cur:
                serials = [str(r[0]) for r in await cur.fetchall()]
            await db.execute(
                "UPDATE certificates SET revoked_at = ? "
                "WHERE agent_id = ? AND serial != ? AND revoked_at IS NULL",
                (at, agent_id, keep),
            )
            await db.execute("UPDATE certificates SET pending = 0 WHERE serial = ?", (keep,))
            await db.execute(
                "UPDATE agents SET cert_serial = ?, cert_not_after ="
                " (SELECT not_after FROM certificates WHERE serial = ?) WHERE id = ?",
                (keep, keep, agent_id),
            )
        return serials

    async def revoked_serials(self, valid_at: float | None = None) -> set[str]:
        if valid_at is None:
            rows = await self._rows("SELECT serial FROM certificates WHERE revoked_at IS NOT NULL")
        else:
            rows = await self._rows(
                "SELECT serial FROM certificates WHERE revoked_at IS NOT NULL AND not_after > ?",
                (valid_at,),
            )
        return {r[0] for r in rows}

    # tokens -------------------------------------------------------------

    async def add_token(self, token: TokenRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO tokens (id, token_hash, pool, labels, created_at, expires_at,"
                " uses_total, uses_left, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    token.id,
                    token.token_hash,
                    token.pool,
                    json.dumps(token.labels),
                    token.created_at,
                    token.expires_at,
                    token.uses_total,
                    token.uses_left,
                    token.created_by,
                ),
            )

    _COLUMNS = (
        "id, token_hash, pool, labels, created_at, expires_at, uses_total, uses_left,"
        " created_by, revoked_at"
    )

    @staticmethod
    def _token(r: sqlite3.Row) -> TokenRecord:
        return TokenRecord(
            id=r[0],
            token_hash=r[1],
            pool=r[2],
            labels=json.loads(r[3]),
            created_at=r[4],
            expires_at=r[5],
            uses_total=r[6],
            uses_left=r[7],
            created_by=r[8],
            revoked_at=r[9],
        )

    async def get_token(self, token_hash: str) -> TokenRecord | None:
        rows = await self._rows(
            f"SELECT {self._COLUMNS} FROM tokens WHERE token_hash = ?",  # noqa: S608
            (token_hash,),
        )
        return self._token(rows[0]) if rows else None

    async def use_token(self, token_id: str) -> bool:
        """Spend one use, atomically; False when none was left."""
        async with self._write() as db:
            cur = await db.execute(
                "UPDATE tokens SET uses_left = uses_left - 1 WHERE id = ? AND uses_left > 0",
                (token_id,),
            )
            return cur.rowcount == 1

    async def list_tokens(self) -> list[TokenRecord]:
        rows = await self._rows(
            f"SELECT {self._COLUMNS} FROM tokens ORDER BY created_at"  # noqa: S608
        )
        return [self._token(r) for r in rows]

    async def revoke_token(self, token_id: str, at: float) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
                (at, token_id),
            )

    # operators ----------------------------------------------------------

    @staticmethod
    def _operator_row(op: OperatorRecord) -> tuple[Any, ...]:
        return (
            op.name,
            op.role,
            op.token_hash,
            op.created_at,
            op.created_by,
            op.last_used_at,
            op.revoked_at,
        )

    async def add_operator(self, op: OperatorRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO operators (name, role, token_hash, created_at, created_by,"
                " last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                self._operator_row(op),
            )

    async def replace_operator(self, op: OperatorRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO operators (name, role, token_hash, created_at, created_by,"
                " last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET role = excluded.role,"
                " token_hash = excluded.token_hash, created_at = excluded.created_at,"
                " created_by = excluded.created_by, last_used_at = excluded.last_used_at,"
                " revoked_at = excluded.revoked_at",
                self._operator_row(op),
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
        async with self._write() as db:
            await db.executemany(
                "UPDATE operators SET last_used_at = ? WHERE name = ?",
                [(at, name) for name, at in rows],
            )

    # pins, pools, connections -------------------------------------------

    async def set_pin(self, pin: PinRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO pins (scope, name, version, config, set_at, set_by)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope, name) DO UPDATE SET"
                " version = excluded.version, config = excluded.config,"
                " set_at = excluded.set_at, set_by = excluded.set_by",
                (
                    pin.scope,
                    pin.name,
                    pin.version,
                    None if pin.config is None else json.dumps(pin.config),
                    pin.set_at,
                    pin.set_by,
                ),
            )

    async def list_pins(self) -> list[PinRecord]:
        rows = await self._rows("SELECT scope, name, version, config, set_at, set_by FROM pins")
        return [
            PinRecord(r[0], r[1], r[2], None if r[3] is None else json.loads(r[3]), r[4], r[5])
            for r in rows
        ]

    async def delete_pin(self, scope: str, name: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM pins WHERE scope = ? AND name = ?", (scope, name))

    async def set_pool(self, pool: PoolRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO pools (name, policy, min_healthy) VALUES (?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET policy = excluded.policy,"
                " min_healthy = excluded.min_healthy",
                (pool.name, json.dumps(pool.policy), pool.min_healthy),
            )

    async def list_pools(self) -> list[PoolRecord]:
        rows = await self._rows("SELECT name, policy, min_healthy FROM pools")
        return [PoolRecord(r[0], json.loads(r[1]), r[2]) for r in rows]

    async def delete_pool(self, name: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM pools WHERE name = ?", (name,))

    async def add_connection(self, conn: ConnectionRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO connections (name, host, port, pools, created_at, schedules)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    conn.name,
                    conn.host,
                    conn.port,
                    json.dumps(conn.pools),
                    conn.created_at,
                    _schedules_json(conn.schedules),
                ),
            )

    async def list_connections(self) -> list[ConnectionRecord]:
        rows = await self._rows(
            "SELECT name, host, port, pools, created_at, schedules FROM connections ORDER BY name"
        )
        return [
            ConnectionRecord(
                r[0],
                r[1],
                r[2],
                json.loads(r[3]),
                r[4],
                [ScheduleRecord(**s) for s in json.loads(r[5])],
            )
            for r in rows
        ]

    async def update_connection(self, conn: ConnectionRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE connections SET host = ?, port = ?, pools = ?, schedules = ?"
                " WHERE name = ?",
                (
                    conn.host,
                    conn.port,
                    json.dumps(conn.pools),
                    _schedules_json(conn.schedules),
                    conn.name,
                ),
            )

    async def delete_connection(self, name: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM connections WHERE name = ?", (name,))

    # alerts and audit ---------------------------------------------------

    async def save_alert(self, alert: AlertRecord) -> None:
        await self.save_alerts([alert])

    async def save_alerts(self, alerts: list[AlertRecord]) -> None:
        async with self._write() as db:
            await db.executemany(
                "INSERT INTO alerts"
                " (id, kind, severity, target, message, raised_at, cleared_at, flaps)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET"
                " severity = excluded.severity, message = excluded.message,"
                " cleared_at = excluded.cleared_at, flaps = excluded.flaps",
                [
                    (
                        a.id,
                        a.kind,
                        a.severity,
                        a.target,
                        a.message,
                        a.raised_at,
                        a.cleared_at,
                        a.flaps,
                    )
                    for a in alerts
                ],
            )

    async def list_alerts(self, include_cleared: bool) -> list[AlertRecord]:
        rows = await self._rows(
            "SELECT id, kind, severity, target, message, raised_at, cleared_at, flaps"
            " FROM alerts"
            " WHERE cleared_at IS NULL OR ? ORDER BY raised_at DESC",
            (int(include_cleared),),
        )
        return [AlertRecord(*r) for r in rows]

    # disconnect history -------------------------------------------------

    async def add_disconnects(
        self, batch: list[tuple[str, list[dict[str, Any]]]], keep: int
    ) -> None:
        rows = [
            (agent_id, time.time(), json.dumps(r, separators=(",", ":")))
            for agent_id, records in batch
            for r in records
        ]
        if not rows:
            return
        agents = sorted({agent_id for agent_id, _ in batch})
        async with self._write() as db:
            await db.executemany(
                "INSERT INTO disconnects (agent_id, received_at, record) VALUES (?, ?, ?)", rows
            )
            await db.executemany(
                "DELETE FROM disconnects WHERE agent_id = ? AND id NOT IN"
                " (SELECT id FROM disconnects WHERE agent_id = ? ORDER BY id DESC LIMIT ?)",
                [(agent_id, agent_id, keep) for agent_id in agents],
            )

    async def list_disconnects(self, agent_id: str, limit: int) -> list[dict[str, Any]]:
        rows = await self._rows(
            "SELECT record FROM disconnects WHERE agent_id = ? ORDER BY id DESC LIMIT ?",
            (agent_id, limit),
        )
        return [json.loads(r[0]) for r in reversed(rows)]

    # acknowledgements, silences, maintenance ---------------------------

    async def _upsert(self, table: str, record: Any) -> None:
        """Insert ``record`` (a dataclass whose first field is the key), or update it."""
        names = [f.name for f in fields(record)]
        updates = ", ".join(f"{n} = excluded.{n}" for n in names[1:])
        async with self._write() as db:
            await db.execute(
                f"INSERT INTO {table} ({', '.join(names)})"  # noqa: S608
                f" VALUES ({', '.join('?' * len(names))})"
                f" ON CONFLICT ({names[0]}) DO UPDATE SET {updates}",
                astuple(record),
            )

    async def save_ack(self, ack: AckRecord) -> None:
        await self._upsert("acks", ack)

    async def delete_ack(self, alert_id: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM acks WHERE alert_id = ?", (alert_id,))

    async def list_acks(self) -> list[AckRecord]:
        rows = await self._rows("SELECT alert_id, acked_by, note, at, expires_at FROM acks")
        return [AckRecord(*r) for r in rows]

    async def save_silence(self, silence: SilenceRecord) -> None:
        await self._upsert("silences", silence)

    async def list_silences(self, ended_after: float | None) -> list[SilenceRecord]:
        rows = await self._rows(
            f"SELECT {_SILENCE_COLUMNS} FROM silences"  # noqa: S608
            " WHERE ? IS NULL OR (deleted_at IS NULL AND ends_at > ?) ORDER BY starts_at",
            (ended_after, ended_after),
        )
        return [SilenceRecord(*r) for r in rows]

    async def save_maintenance(self, window: MaintenanceRecord) -> None:
        await self._upsert("maintenance", window)

    async def list_maintenance(self, ended_after: float | None) -> list[MaintenanceRecord]:
        rows = await self._rows(
            f"SELECT {_WINDOW_COLUMNS} FROM maintenance"  # noqa: S608
            " WHERE ? IS NULL OR (deleted_at IS NULL AND ends_at > ?) ORDER BY starts_at",
            (ended_after, ended_after),
        )
        return [MaintenanceRecord(*r) for r in rows]

    # documents --------------------------------------------------------

    async def put_document(self, kind: str, key: str, body: dict[str, Any], at: float) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO documents (kind, key, body, updated_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (kind, key) DO UPDATE SET body = excluded.body,"
                " updated_at = excluded.updated_at",
                (kind, key, json.dumps(body, separators=(",", ":")), at),
            )

    async def get_document(self, kind: str, key: str) -> dict[str, Any] | None:
        rows = await self._rows(
            "SELECT body FROM documents WHERE kind = ? AND key = ?", (kind, key)
        )
        return json.loads(rows[0][0]) if rows else None

    async def list_documents(self, kind: str) -> list[tuple[str, dict[str, Any]]]:
        rows = await self._rows(
            "SELECT key, body FROM documents WHERE kind = ? ORDER BY updated_at, key", (kind,)
        )
        return [(r[0], json.loads(r[1])) for r in rows]

    async def delete_document(self, kind: str, key: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM documents WHERE kind = ? AND key = ?", (kind, key))

    async def put_release_file(self, sha256: str, body: bytes) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO release_files (sha256, body) VALUES (?, ?) ON CONFLICT DO NOTHING",
                (sha256, body),
            )

    async def get_release_file(self, sha256: str) -> bytes | None:
        rows = await self._rows("SELECT body FROM release_files WHERE sha256 = ?", (sha256,))
        return bytes(rows[0][0]) if rows else None

    async def delete_release_file(self, sha256: str) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM release_files WHERE sha256 = ?", (sha256,))

    async def audit(self, entry: AuditRecord) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO audit (at, actor, action, target, result, detail)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (entry.at, entry.actor, entry.action, entry.target, entry.result, entry.detail),
            )

    async def list_audit(
        self, limit: int, since: float | None = None, actor: str | None = None
    ) -> list[AuditRecord]:
        where: list[str] = []
        params: list[Any] = []
        if since is not None:
            where.append("at >= ?")
            params.append(since)
        if actor is not None:
            where.append("actor = ?")
            params.append(actor)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = await self._rows(
            "SELECT at, actor, action, target, result, detail FROM audit"  # noqa: S608
            f"{clause} ORDER BY id DESC LIMIT ?",
            (*params, limit),
        )
        return [AuditRecord(*r) for r in rows]


def _schedules_json(schedules: list[ScheduleRecord]) -> str:
    return json.dumps([dataclasses.asdict(s) for s in schedules])
