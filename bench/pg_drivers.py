"""asyncpg against psycopg 3 on what the control plane asks of PostgreSQL.

Three operations, on a throwaway database of the local server (127.0.0.1:5432,
user postgres, trust auth), each driver through a pool of its own:

* the write-behind flush: 10,000 agents' status rows (JSONB) updated in one
  transaction, as ``save_agent_status`` does, both as ``executemany`` and as one
  ``UPDATE ... FROM unnest(...)``;
* one audit insert (its own transaction, as ``audit`` does): median and p99;
* one ``list_agents`` of 10,000 rows, JSON decoded into Python.

    .venv/bin/python bench/pg_drivers.py [--agents 10000] [--repeat 5] [--dsn DSN]

psycopg is not a dependency of the project: ``pip install "psycopg[binary,pool]"``
into the venv for the comparison; without it that column is left out.
docs/decisions.md ("PostgreSQL store") has the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import re
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")

SCHEMA = (
    "CREATE TABLE agents (id TEXT PRIMARY KEY, name TEXT NOT NULL, pool TEXT NOT NULL,"
    " labels JSONB NOT NULL, enrolled_at DOUBLE PRECISION NOT NULL, cert_serial TEXT NOT NULL,"
    " cert_not_after DOUBLE PRECISION NOT NULL, revoked BIGINT NOT NULL DEFAULT 0,"
    " revoked_at DOUBLE PRECISION, status JSONB NOT NULL DEFAULT '{}')",
    "CREATE TABLE audit (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " at DOUBLE PRECISION NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,"
    " target TEXT NOT NULL, result TEXT NOT NULL, detail TEXT NOT NULL)",
)
LIST = (
    "SELECT id, name, pool, labels, enrolled_at, cert_serial, cert_not_after, revoked, status"
    " FROM agents ORDER BY name"
)
AUDIT = "INSERT INTO audit (at, actor, action, target, result, detail) VALUES ($1,$2,$3,$4,$5,$6)"
UPDATE = "UPDATE agents SET status = $1 WHERE id = $2"
UNNEST = (
    "UPDATE agents SET status = v.status FROM unnest($1::text[], $2::jsonb[]) AS v(id, status)"
    " WHERE agents.id = v.id"
)


def pg(sql: str) -> str:
    """asyncpg's ``$1`` placeholders as psycopg's ``%s``."""
    return re.sub(r"\$\d+", "%s", sql)


def status(i: int, round_: int) -> dict[str, Any]:
    return {
        "version": "1.4.2",
        "last_heartbeat": time.time(),
        "uptime_s": 1000 + round_,
        "samples": [
            {"at": time.time() - k, "cpu": 0.1 * k, "rss": 30_000_000 + i} for k in range(3)
        ],
        "config_hash": f"{i:032x}",
    }


CPU: dict[str, float] = {}
"""The last timed() call's median CPU seconds of this process (the driver's own cost)."""


async def timed(fn: Callable[[], Awaitable[object]], repeat: int) -> list[float]:
    out, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        await fn()
        out.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    CPU["last"] = statistics.median(cpu)
    return out


async def wall_cpu(name: str, fn: Callable[[], Awaitable[object]], repeat: int) -> dict[str, float]:
    wall = statistics.median(await timed(fn, repeat))
    return {f"{name}_s": wall, f"{name}_cpu_s": CPU["last"]}


async def bench_asyncpg(dsn: str, n: int, repeat: int) -> dict[str, float]:
    import asyncpg

    async def init(conn: Any) -> None:
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )

    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4, init=init)
    try:
        async with pool.acquire() as conn:
            for sql in SCHEMA:
                await conn.execute(sql)
            await conn.executemany(
                "INSERT INTO agents (id, name, pool, labels, enrolled_at, cert_serial,"
                " cert_not_after) VALUES ($1, $2, 'p', $3, 1.0, '01', 2.0)",
                [(f"ag_{i}", f"agent-{i:05d}", {"zone": "a"}) for i in range(n)],
            )
        rounds = iter(range(10**6))

        async def flush_many() -> None:
            r = next(rounds)
            async with pool.acquire() as conn, conn.transaction():
                await conn.executemany(UPDATE, [(status(i, r), f"ag_{i}") for i in range(n)])

        async def flush_unnest() -> None:
            r = next(rounds)
            ids = [f"ag_{i}" for i in range(n)]
            docs = [status(i, r) for i in range(n)]
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute(UNNEST, ids, docs)

        async def audit() -> None:
            async with pool.acquire() as conn:
                await conn.execute(AUDIT, time.time(), "admin", "x", "y", "ok", "")

        async def list_agents() -> None:
            async with pool.acquire() as conn:
                rows = await conn.fetch(LIST)
            assert len(rows) == n and isinstance(rows[0][8], dict)

        return {
            **await wall_cpu("flush_executemany", flush_many, repeat),
            **await wall_cpu("flush_unnest", flush_unnest, repeat),
            **audit_figures(await timed(audit, 500)),
            **await wall_cpu("list_agents", list_agents, repeat),
        }
    finally:
        await pool.close()


async def bench_psycopg(dsn: str, n: int, repeat: int) -> dict[str, float]:
    from psycopg.types.json import Jsonb
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(dsn, min_size=2, max_size=4, open=False)
    await pool.open()
    try:
        async with pool.connection() as conn:
            for sql in SCHEMA:
                await conn.execute(sql)
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO agents (id, name, pool, labels, enrolled_at, cert_serial,"
                    " cert_not_after) VALUES (%s, %s, 'p', %s, 1.0, '01', 2.0)",
                    [(f"ag_{i}", f"agent-{i:05d}", Jsonb({"zone": "a"})) for i in range(n)],
                )
        rounds = iter(range(10**6))

        async def flush_many() -> None:
            r = next(rounds)
            async with pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
                await cur.executemany(
                    pg(UPDATE), [(Jsonb(status(i, r)), f"ag_{i}") for i in range(n)]
                )

        async def flush_unnest() -> None:
            r = next(rounds)
            ids = [f"ag_{i}" for i in range(n)]
            docs = [Jsonb(status(i, r)) for i in range(n)]
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(pg(UNNEST), (ids, docs))

        async def audit() -> None:
            async with pool.connection() as conn:
                await conn.execute(pg(AUDIT), (time.time(), "admin", "x", "y", "ok", ""))

        async def list_agents() -> None:
            async with pool.connection() as conn:
                cur = await conn.execute(LIST)
                rows = await cur.fetchall()
            assert len(rows) == n and isinstance(rows[0][8], dict)

        return {
            **await wall_cpu("flush_executemany", flush_many, repeat),
            **await wall_cpu("flush_unnest", flush_unnest, repeat),
            **audit_figures(await timed(audit, 500)),
            **await wall_cpu("list_agents", list_agents, repeat),
        }
    finally:
        await pool.close()


async def bench_store(store: Any, n: int, repeat: int) -> dict[str, float]:
    """The same three operations through the Store interface, as the control plane calls it."""
    from controlplane.store.base import AgentRecord, AuditRecord

    await store.open()
    try:
        for i in range(n):
            await store.add_agent(
                AgentRecord(f"ag_{i}", f"agent-{i:05d}", "p", {"zone": "a"}, 1.0, "01", 2.0)
            )
        rounds = iter(range(10**6))

        async def flush() -> None:
            r = next(rounds)
            await store.save_agent_status([(f"ag_{i}", status(i, r)) for i in range(n)])

        async def audit() -> None:
            await store.audit(AuditRecord(time.time(), "admin", "x", "y", "ok"))

        async def list_agents() -> None:
            assert len(await store.list_agents()) == n

        return {
            **await wall_cpu("save_agent_status", flush, repeat),
            **audit_figures(await timed(audit, 500)),
            **await wall_cpu("list_agents", list_agents, repeat),
        }
    finally:
        await store.close()


def audit_figures(times: list[float]) -> dict[str, float]:
    times.sort()
    return {"audit_median_ms": statistics.median(times) * 1000, "audit_p99_ms": times[494] * 1000}


async def with_database(dsn: str, run: Callable[[str], Awaitable[T]]) -> T:
    """``run`` on the URL of a new database of the server at ``dsn``, dropped after."""
    import asyncpg

    name = f"fleet_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        return await run(dsn.rsplit("/", 1)[0] + "/" + name)
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    results = {}
    for name, fn in (("asyncpg", bench_asyncpg), ("psycopg", bench_psycopg)):
        if name == "psycopg" and importlib.util.find_spec("psycopg_pool") is None:
            print("psycopg is not installed: left out", file=sys.stderr)
            continue
        results[name] = asyncio.run(
            with_database(args.dsn, lambda dsn, fn=fn: fn(dsn, args.agents, args.repeat))
        )
    import tempfile
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from controlplane.store.postgres import PostgresStore
    from controlplane.store.sqlite import SQLiteStore

    results["PostgresStore"] = asyncio.run(
        with_database(
            args.dsn, lambda dsn: bench_store(PostgresStore(dsn), args.agents, args.repeat)
        )
    )
    with tempfile.TemporaryDirectory() as tmp:
        results["SQLiteStore"] = asyncio.run(
            bench_store(SQLiteStore(Path(tmp) / "fleet.db"), args.agents, args.repeat)
        )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
