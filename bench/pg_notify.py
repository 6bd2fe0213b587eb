"""What PostgreSQL's NOTIFY costs an outbox of fleet events (issue 11, point 2).

Replicas are to learn of each other's changes from an outbox table read by a
bigint sequence, with NOTIFY only as a wake-up.  Before building on it, this
measures on a throwaway database of the local server (127.0.0.1:5432, user
postgres, trust auth), with asyncpg:

* commit latency of one outbox insert, without and with ``pg_notify`` in the
  same transaction, with 0 and with 3 listening sessions (median, p99);
* throughput of 8 sessions committing outbox batches at once, without and with
  NOTIFY (NOTIFY takes a cluster-wide lock at commit: committers that notify are
  serialised);
* wake-up latency: from the notifying commit to a listener's callback (median, p99);
* the payload limit: the largest payload accepted and what a larger one gets.

    .venv/bin/python bench/pg_notify.py [--commits 2000] [--dsn DSN]

Prints JSON; docs/scaling.md has the figures and what they mean for the design.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

OUTBOX = (
    "CREATE TABLE outbox (seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " replica TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, events JSONB NOT NULL)"
)
INSERT = "INSERT INTO outbox (replica, at, events) VALUES ($1, $2, $3) RETURNING seq"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from pg_drivers import with_database  # noqa: E402

BATCH = [{"agent": f"ag_{i:05d}", "state": "connected", "hb": 1.0} for i in range(50)]


def summary(times: list[float]) -> dict[str, float]:
    times = sorted(times)
    return {
        "median_ms": round(statistics.median(times) * 1000, 3),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))] * 1000, 3),
    }


async def commits(conn: Any, n: int, notify: bool) -> list[float]:
    times = []
    payload = json.dumps(BATCH[:1])
    for _ in range(n):
        start = time.perf_counter()
        async with conn.transaction():
            seq = await conn.fetchval(INSERT, "r1", time.time(), payload)
            if notify:
                await conn.execute("SELECT pg_notify('fleet_outbox', $1)", f"r1:{seq}")
        times.append(time.perf_counter() - start)
    return times


async def throughput(pool: Any, sessions: int, seconds: float, notify: bool) -> float:
    """Outbox batches (50 events each) committed per second by ``sessions`` at once."""
    payload = json.dumps(BATCH)
    done = 0
    end = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal done
        async with pool.acquire() as conn:
            while time.monotonic() < end:
                async with conn.transaction():
                    seq = await conn.fetchval(INSERT, "r1", time.time(), payload)
                    if notify:
                        await conn.execute("SELECT pg_notify('fleet_outbox', $1)", f"r1:{seq}")
                done += 1

    await asyncio.gather(*(worker() for _ in range(sessions)))
    return round(done / seconds, 1)


async def wakeups(conn: Any, listener: Any, n: int) -> list[float]:
    got: asyncio.Queue[float] = asyncio.Queue()

    def heard(*_: object) -> None:
        got.put_nowait(time.perf_counter())

    await listener.add_listener("fleet_wake", heard)
    times = []
    for _ in range(n):
        async with conn.transaction():
            await conn.execute("SELECT pg_notify('fleet_wake', 'r1:1')")
            sent = time.perf_counter()  # the commit follows at once
        times.append(await asyncio.wait_for(got.get(), 5) - sent)
    await listener.remove_listener("fleet_wake", heard)
    return times


async def payload_limit(conn: Any) -> dict[str, Any]:
    low, high = 1, 16_000
    while low < high:
        mid = (low + high + 1) // 2
        try:
            await conn.execute("SELECT pg_notify('fleet_limit', $1)", "x" * mid)
            low = mid
        except Exception:
            high = mid - 1
    try:
        await conn.execute("SELECT pg_notify('fleet_limit', $1)", "x" * (low + 1))
        refused = "accepted"
    except Exception as exc:
        refused = f"{type(exc).__name__}: {exc}"
    return {"largest_bytes": low, "one_more_gets": refused}


async def run(dsn: str, n: int) -> dict[str, Any]:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    await conn.execute(OUTBOX)
    listeners = [await asyncpg.connect(dsn) for _ in range(3)]
    pool = await asyncpg.create_pool(dsn, min_size=8, max_size=8)
    out: dict[str, Any] = {}
    try:
        await commits(conn, 200, notify=True)  # warm up
        out["commit_no_listener"] = summary(await commits(conn, n, notify=False))
        out["commit_notify_no_listener"] = summary(await commits(conn, n, notify=True))
        for c in listeners:
            await c.add_listener("fleet_outbox", lambda *_: None)
        out["commit_notify_3_listeners"] = summary(await commits(conn, n, notify=True))
        out["commit_3_listeners_no_notify"] = summary(await commits(conn, n, notify=False))
        out["batches_per_s_8_sessions"] = await throughput(pool, 8, 5.0, notify=False)
        out["batches_per_s_8_sessions_notify"] = await throughput(pool, 8, 5.0, notify=True)
        out["wakeup"] = summary(await wakeups(conn, listeners[0], min(n, 1000)))
        out["payload_limit"] = await payload_limit(conn)
    finally:
        await pool.close()
        for c in listeners:
            await c.close()
        await conn.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    try:
        result = asyncio.run(with_database(args.dsn, lambda url: run(url, args.commits)))
    except OSError as exc:
        print(f"cannot reach PostgreSQL at {args.dsn}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
