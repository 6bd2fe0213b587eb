"""The two backends' schema steps stay side by side: the same versions with the same
descriptions, so a step added to one list only fails here, not in production."""

from __future__ import annotations

import re

from controlplane.store import postgres_schema, sqlite
from controlplane.store.migrations import latest_version


def test_both_backends_reach_the_same_version_by_the_same_steps():
    sqlite_steps = [(m.version, m.description) for m in sqlite.MIGRATIONS]
    postgres_steps = [(m.version, m.description) for m in postgres_schema.MIGRATIONS]
    assert latest_version(sqlite.MIGRATIONS) == latest_version(postgres_schema.MIGRATIONS), (
        "a schema step was added to one backend only: add it to "
        "controlplane/store/sqlite.py and controlplane/store/postgres_schema.py alike"
    )
    assert sqlite_steps == postgres_steps


def _tables_and_columns(statements: tuple[str, ...]) -> set[tuple[str, str]]:
    """(table, column) pairs a step creates or adds; names only, types differ."""
    found: set[tuple[str, str]] = set()
    for sql in statements:
        if match := re.search(r"CREATE TABLE IF NOT EXISTS (\w+) \((.*)\)", sql, re.S):
            body = re.sub(r"\([^()]*\)", "", match.group(2))  # PRIMARY KEY (a, b)
            for part in body.split(","):
                word = part.split()[0] if part.split() else ""
                if word and word.upper() != "PRIMARY":
                    found.add((match.group(1), word))
        elif match := re.search(r"ALTER TABLE (\w+) ADD COLUMN (\w+)", sql):
            found.add((match.group(1), match.group(2)))
        elif match := re.search(r"CREATE INDEX IF NOT EXISTS (\w+) ON (\w+)", sql):
            found.add((match.group(2), f"index {match.group(1)}"))
    return found


def test_each_step_makes_the_same_tables_columns_and_indexes():
    for lite, pg in zip(sqlite.MIGRATIONS, postgres_schema.MIGRATIONS, strict=True):
        assert _tables_and_columns(lite.statements) == _tables_and_columns(pg.statements), (
            f"step {lite.version} ({lite.description}) differs between the backends"
        )
        assert (lite.run is None) == (pg.run is None)
