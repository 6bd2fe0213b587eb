"""Schema migrations: ordered steps, each applied once, each in its own transaction.

The mechanism is portable.  A backend implements :class:`SchemaRunner` (SQLite keeps
the version in ``PRAGMA user_version``; PostgreSQL in a ``schema_version`` table) and
gives its list of :class:`Migration` steps to :func:`migrate` when the store opens:

* a database newer than the code is refused, naming both versions;
* each missing step runs in its own transaction together with the new version
  number: on failure it is rolled back and the database stays at the last good
  version;
* a database made before versions existed (version 0 but already holding tables)
  is adopted as version 1, the schema it has.

Adding a step is one line: append ``Migration(N + 1, "what it does", STATEMENTS)``.
Never edit a released step: databases that already ran it would not see the change.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fleet import __version__

from ..errors import SchemaError

__all__ = ["Migration", "MigrationContext", "SchemaRunner", "latest_version", "migrate"]

log = logging.getLogger("controlplane.store")


class MigrationContext(Protocol):
    """What a step written as a function may do, inside the step's transaction.

    Placeholders are ``?`` on every backend (PostgreSQL's runner numbers them), so one
    function serves both step lists."""

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        ...

    async def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one query and return its rows."""
        ...


@dataclass(frozen=True)
class Migration:
    """One step from ``version - 1`` to ``version``.

    Attributes:
        version: the schema version after this step (1, 2, ...; no gaps).
        description: what the step does, for the log and for error messages.
        statements: SQL statements run in order (one statement each).
        run: a function run after the statements, for changes SQL alone cannot make.
    """

    version: int
    description: str
    statements: tuple[str, ...] = ()
    run: Callable[[MigrationContext], Awaitable[None]] | None = None


class SchemaRunner(Protocol):
    """The backend's part: read and record the version, run a step atomically."""

    where: str
    """The database, as named in messages (a file path, a DSN without password)."""

    async def read_version(self) -> int:
        """The version recorded in the database (0: none yet)."""
        ...

    async def has_table(self, name: str) -> bool:
        """Whether the table ``name`` exists (to recognise unversioned databases)."""
        ...

    async def apply(self, step: Migration | None, version: int) -> None:
        """In one transaction: run ``step`` (if any), then record ``version``.

        On any error the transaction is rolled back and the error raised.
        """
        ...


def latest_version(steps: Sequence[Migration]) -> int:
    """The version a database has once every step in ``steps`` ran."""
    return steps[-1].version if steps else 0


def _check_order(steps: Sequence[Migration]) -> None:
    for expected, step in enumerate(steps, start=1):
        if step.version != expected:
            raise ValueError(
                f"migration steps must be numbered 1, 2, 3, ... without gaps: step "
                f"{step.description!r} has version {step.version}, expected {expected}"
            )


async def migrate(
    runner: SchemaRunner, steps: Sequence[Migration], *, legacy_table: str | None = None
) -> list[Migration]:
    """Bring the database to :func:`latest_version` of ``steps``.

    Args:
        runner: the backend.
        steps: every step, in order, numbered from 1.
        legacy_table: a table whose presence in a version-0 database means it was made
            before versions existed, with the schema of step 1.

    Returns:
        The steps applied, in order (empty when the database was up to date).

    Raises:
        SchemaError: the database is newer than the code, or a step failed (the
            database then stays at the version before that step).
    """
    _check_order(steps)
    latest = latest_version(steps)
    current = await runner.read_version()
    if current > latest:
        raise SchemaError(
            f"{runner.where} has schema version {current}, but this fleet {__version__} "
            f"knows versions up to {latest}: it was written by a newer fleet. Upgrade "
            "fleet (pip install -U fleet-health) to use it, or use another database "
            "(--data-dir, --store); the database was not changed"
        )
    if current == 0 and legacy_table is not None and await runner.has_table(legacy_table):
        await _apply(runner, None, 1, current)
        log.info("%s: made before schema versions; recorded as version 1", runner.where)
        current = 1
    applied = []
    for step in steps[current:]:
        await _apply(runner, step, step.version, current)
        log.info(
            "%s: schema upgraded to version %d (%s)", runner.where, step.version, step.description
        )
        applied.append(step)
        current = step.version
    return applied


async def _apply(runner: SchemaRunner, step: Migration | None, version: int, before: int) -> None:
    try:
        await runner.apply(step, version)
    except SchemaError:
        raise
    except Exception as exc:
        what = f"step {version} ({step.description})" if step else f"recording version {version}"
        raise SchemaError(
            f"{runner.where}: schema migration {what} failed: {exc}. It was rolled back; "
            f"the database is unchanged at version {before}. Fix the cause (disk space, "
            "permissions, a damaged file: restore a backup) and start the server again"
        ) from None
