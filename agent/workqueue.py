"""Bounded work queue for commands from the control plane.

At most ``concurrency`` commands run at once, each under a timeout; at most
``limit`` are pending (waiting or running) and a further one is refused with
``busy`` rather than queued without bound.  :attr:`WorkQueue.depth` is what
heartbeats report.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "WorkQueue"]

log = logging.getLogger("agent.workqueue")


@dataclass(frozen=True)
class Outcome:
    """How a job ended: a result, or an error code and message."""

    request_id: str
    result: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None


Job = Callable[[], Awaitable[dict[str, Any]]]
Done = Callable[[Outcome], Awaitable[None]]


class WorkQueue:
    """Runs jobs with bounded concurrency, bounded backlog and timeouts.

    Args:
        concurrency: jobs that run at the same time.
        limit: jobs pending (waiting or running) before :meth:`submit` refuses.
        max_timeout_s: cap on any job's timeout.
        on_done: called with each job's :class:`Outcome`.
    """

    def __init__(
        self, *, concurrency: int, limit: int, max_timeout_s: float, on_done: Done
    ) -> None:
        self._queue: asyncio.Queue[tuple[str, Job, float]] = asyncio.Queue()
        self._concurrency = concurrency
        self._limit = limit
        self._max_timeout_s = max_timeout_s
        self._on_done = on_done
        self._pending = 0
        self._workers: list[asyncio.Task[None]] = []
        self._now: set[asyncio.Task[None]] = set()

    @property
    def depth(self) -> int:
        """Jobs waiting or running."""
        return self._pending

    def start(self) -> None:
        """Start the workers (inside a running event loop)."""
        if not self._workers:
            self._workers = [
                asyncio.create_task(self._worker(), name=f"agent-worker-{i}")
                for i in range(self._concurrency)
            ]

    async def stop(self) -> None:
        """Cancel the workers and whatever they run; pending jobs are dropped."""
        tasks = [*self._workers, *self._now]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers = []
        self._now.clear()

    def submit(self, request_id: str, job: Job, timeout_s: float) -> bool:
        """Queue a job; ``False`` if the backlog is full (answer ``busy``)."""
        if self._pending >= self._limit:
            return False
        self._pending += 1
        self._queue.put_nowait((request_id, job, min(timeout_s, self._max_timeout_s)))
        return True

    def run_now(self, request_id: str, job: Job, timeout_s: float) -> None:
        """Run a job at once, beside the workers and outside the backlog.

        For the agent's own lifecycle (restart, rollback, renew, upgrade): a queue
        full of stuck probes is exactly when a restart must get through.
        """

        async def run() -> None:
            outcome = await self._run(request_id, job, min(timeout_s, self._max_timeout_s))
            try:
                await self._on_done(outcome)
            except Exception:
                log.warning("could not deliver the answer to %s", request_id, exc_info=True)

        task = asyncio.get_running_loop().create_task(run(), name=f"agent-now-{request_id}")
        self._now.add(task)
        task.add_done_callback(self._now.discard)

    async def _worker(self) -> None:
        while True:
            request_id, job, timeout_s = await self._queue.get()
            try:
                outcome = await self._run(request_id, job, timeout_s)
            finally:
                self._pending -= 1
            try:
                await self._on_done(outcome)
            except Exception:  # a lost channel must not kill the worker
                log.warning("could not deliver the answer to %s", request_id, exc_info=True)

    async def _run(self, request_id: str, job: Job, timeout_s: float) -> Outcome:
        try:
            async with asyncio.timeout(timeout_s):
                result = await job()
        except TimeoutError:
            log.warning("command %s timed out after %.1f s", request_id, timeout_s)
            return Outcome(
                request_id, error_code="timeout", error_message=f"timed out after {timeout_s:g} s"
            )
        except Exception as exc:
            log.exception("command %s failed", request_id)
            return Outcome(
                request_id, error_code="failed", error_message=f"{exc.__class__.__name__}: {exc}"
            )
        return Outcome(request_id, result=result)
