"""One store backend for a test: SQLite in a temporary file, or PostgreSQL in a
throwaway database, with raw access to its tables beside the store.

Raw SQL is written once with ``?`` placeholders and run on either backend, so a
migration test reads the same on both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from controlplane.store import postgres_schema
from controlplane.store.migrations import Migration
from controlplane.store.sqlite import MIGRATIONS as SQLITE_MIGRATIONS
from controlplane.store.sqlite import SQLiteStore

BACKENDS = ("sqlite", "postgresql")


@dataclass
class StoreBackend:
    name: str
    """``sqlite`` or ``postgresql``."""
    target: str
    """The SQLite file's path, or the PostgreSQL database's URL."""

    @property
    def steps(self) -> tuple[Migration, ...]:
        """This backend's real schema steps."""
        return SQLITE_MIGRATIONS if self.name == "sqlite" else postgres_schema.MIGRATIONS

    def make(self, migrations: Sequence[Migration] | None = None) -> Any:
        """A store on this database (not opened), with these steps or the real ones."""
        steps = self.steps if migrations is None else migrations
        if self.name == "sqlite":
            return SQLiteStore(Path(self.target), steps)
        from controlplane.store.postgres import PostgresStore

        return PostgresStore(self.target, migrations=steps, pool_size=4)

    async def fetch(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        """Rows of one statement (``?`` placeholders), committed, outside any store."""
        if self.name == "sqlite":
            with sqlite3.connect(self.target) as db:
                return [tuple(r) for r in db.execute(sql, params).fetchall()]
        from controlplane.store.postgres import _placeholders
        from tests.helpers.postgres import query

        return await query(self.target, _placeholders(sql), *params)

    async def execute(self, sql: str, *params: Any) -> None:
        await self.fetch(sql, *params)

    async def version(self) -> int:
        """The schema version the database records."""
        if self.name == "sqlite":
            return int((await self.fetch("PRAGMA user_version"))[0][0])
        rows = await self.fetch(
            "SELECT version FROM schema_version WHERE id = 1"
            if await self.has_table("schema_version")
            else "SELECT 0"
        )
        return int(rows[0][0])

    async def set_version(self, version: int) -> None:
        if self.name == "sqlite":
            await self.execute(f"PRAGMA user_version = {int(version)}")
        else:
            await self.execute("UPDATE schema_version SET version = ?", version)

    async def has_table(self, table: str) -> bool:
        if self.name == "sqlite":
            sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
        else:
            sql = (
                "SELECT 1 FROM information_schema.tables"
                " WHERE table_schema = current_schema() AND table_name = ?"
            )
        return bool(await self.fetch(sql, table))

    async def columns(self, table: str) -> list[str]:
        if self.name == "sqlite":
            return [r[1] for r in await self.fetch(f"PRAGMA table_info({table})")]
        rows = await self.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position",
            table,
        )
        return [r[0] for r in rows]

    async def count(self, table: str) -> int:
        return int((await self.fetch(f"SELECT count(*) FROM {table}"))[0][0])
