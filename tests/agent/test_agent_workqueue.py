"""Bounded concurrency, bounded backlog and timeouts for commands."""

from __future__ import annotations

import asyncio

from agent.workqueue import Outcome, WorkQueue


async def test_concurrency_backlog_depth_and_timeouts():
    outcomes: list[Outcome] = []
    finished: asyncio.Queue[Outcome] = asyncio.Queue()
    running = 0
    peak = 0
    release = asyncio.Event()

    async def on_done(outcome: Outcome) -> None:
        await finished.put(outcome)

    def job(name: str):
        async def run():
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            try:
                await release.wait()
            finally:
                running -= 1
            return {"kind": "config", "config": {}, "hash": name}

        return run

    queue = WorkQueue(concurrency=2, limit=4, max_timeout_s=30, on_done=on_done)
    queue.start()
    try:
        assert all(queue.submit(f"r{i}", job(f"r{i}"), 5) for i in range(4))
        assert queue.depth == 4
        assert not queue.submit("r4", job("r4"), 5)  # backlog full: busy
        await asyncio.sleep(0.05)
        assert peak == 2 and running == 2
        release.set()
        async with asyncio.timeout(2):
            outcomes = [await finished.get() for _ in range(4)]
        assert queue.depth == 0
        assert sorted(o.request_id for o in outcomes) == ["r0", "r1", "r2", "r3"]
        assert all(o.result is not None for o in outcomes)
    finally:
        await queue.stop()


async def test_timeout_is_capped_and_reported():
    outcomes: list[Outcome] = []
    finished: asyncio.Queue[Outcome] = asyncio.Queue()

    async def on_done(outcome: Outcome) -> None:
        await finished.put(outcome)

    async def slow():
        await asyncio.sleep(10)
        return {}

    async def broken():
        raise ValueError("bad input")

    queue = WorkQueue(concurrency=2, limit=2, max_timeout_s=0.1, on_done=on_done)
    queue.start()
    try:
        queue.submit("slow", slow, 60)  # asks for 60 s, gets the 0.1 s cap
        queue.submit("broken", broken, 5)
        async with asyncio.timeout(2):
            outcomes = [await finished.get() for _ in range(2)]
    finally:
        await queue.stop()
    by_id = {o.request_id: o for o in outcomes}
    assert by_id["slow"].error_code == "timeout"
    assert by_id["broken"].error_code == "failed"
    assert "ValueError: bad input" in (by_id["broken"].error_message or "")
