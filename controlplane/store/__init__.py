"""Persistence behind one interface; SQLite is the embedded default, PostgreSQL the
store that several control planes can share (``--store postgresql://…``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .base import Store
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore

__all__ = ["SQLITE_FILE", "SQLiteStore", "Store", "make_store"]

SQLITE_FILE = "fleet.db"
"""The SQLite store's file in the data directory."""


def make_store(
    url: str, data_dir: Path, *, pool_size: int = 10, password_file: Path | None = None
) -> SQLiteStore | PostgresStore:
    """The store the ``store`` setting names (not opened yet).

    Args:
        url: empty for SQLite in ``data_dir``, else a ``postgresql://`` URL.
        pool_size: PostgreSQL's connections at most.
        password_file: PostgreSQL's password, in a file of mode 0600.
    """
    if not url:
        return SQLiteStore(data_dir / SQLITE_FILE)
    # Imported here: asyncpg is loaded only by the control planes that use it.
    from .postgres import PostgresStore

    return PostgresStore(url, pool_size=pool_size, password_file=password_file)
