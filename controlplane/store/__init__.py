"""Persistence behind one interface; SQLite is the embedded default."""

from .base import Store
from .sqlite import SQLiteStore

__all__ = ["SQLiteStore", "Store"]
