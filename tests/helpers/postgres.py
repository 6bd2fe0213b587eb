"""PostgreSQL for the tests: the local server, one throwaway database per test.

The server is the machine's own on 127.0.0.1:5432 with trust authentication for
the user ``postgres`` (Debian's ``postgresql`` package; ``.ci/run`` installs and
starts it).  Each test gets a database with a random name, dropped after it.
When nothing answers, the test is skipped naming the package, except under
``CI=true``, where that is a failure (as :mod:`tests.helpers.binaries`).
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import cache
from typing import Any

import pytest

HOST = os.environ.get("FLEET_TEST_PGHOST", "127.0.0.1")
PORT = int(os.environ.get("FLEET_TEST_PGPORT", "5432"))
USER = "postgres"
ADMIN_DSN = f"postgresql://{USER}@{HOST}:{PORT}/postgres"
START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def _run(coro: Any) -> Any:
    """Run ``coro`` on a loop of its own: callable from sync and async tests alike."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _admin(*statements: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_DSN, timeout=5)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


@cache
def _unavailable() -> str | None:
    """Why PostgreSQL cannot be used here, or None."""
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError as exc:
        return (
            f"PostgreSQL does not answer on {HOST}:{PORT} ({exc.strerror or exc}): install "
            f"the Debian package 'postgresql' and start it ({START})"
        )
    try:
        _run(_admin("SELECT 1"))
    except Exception as exc:
        return (
            f"PostgreSQL on {HOST}:{PORT} refused user {USER} ({exc}): the tests need trust "
            "authentication for it on 127.0.0.1 (Debian's default for local connections)"
        )
    return None


def require_postgres() -> None:
    """Skip the test (fail it under CI) when the local PostgreSQL cannot be used."""
    reason = _unavailable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


def dsn(database: str) -> str:
    return f"postgresql://{USER}@{HOST}:{PORT}/{database}"


async def _create(name: str) -> None:
    # A linguistic collation, as production databases have (en_US sorts "Web-a"
    # after "db-1"): the store must sort by bytes all the same, as SQLite does.
    # PostgreSQL without ICU gets the server's default.
    import asyncpg

    try:
        await _admin(
            f'CREATE DATABASE "{name}" TEMPLATE template0 LOCALE_PROVIDER icu'
            " ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'"
        )
    except asyncpg.PostgresError:
        await _admin(f'CREATE DATABASE "{name}"')


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new, empty database; yields its URL and drops it after, whoever is connected."""
    require_postgres()
    name = f"fleet_test_{uuid.uuid4().hex[:16]}"
    _run(_create(name))
    try:
        yield dsn(name)
    finally:
        _run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def query(url: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one statement on the database at ``url``, outside any store."""
    import asyncpg

    conn = await asyncpg.connect(url, timeout=5)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()
