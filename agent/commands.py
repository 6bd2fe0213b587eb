"""What each command from the control plane does on the agent."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from agent.config import AgentConfig
from agent.logs import LogBook
from agent.policy import ProbePolicy
from agent.probe import run_probe
from fleet.protocol import Command, LogsCommand, ProbeCommand

__all__ = ["CommandRunner"]


@dataclass(frozen=True)
class CommandRunner:
    """Turns a command spec into a job for the work queue."""

    config: AgentConfig
    policy: ProbePolicy
    logbook: LogBook

    def job(self, spec: Command) -> Callable[[], Awaitable[dict[str, Any]]]:
        """The job that answers ``spec`` with a result dict."""
        if isinstance(spec, ProbeCommand):
            return lambda: run_probe(spec, self.policy)
        if isinstance(spec, LogsCommand):
            return lambda: self._logs(spec)
        return self._config

    async def _logs(self, spec: LogsCommand) -> dict[str, Any]:
        lines, truncated = await asyncio.to_thread(self.logbook.tail, spec.lines, spec.since)
        return {"kind": "logs", "lines": lines, "truncated": truncated}

    async def _config(self) -> dict[str, Any]:
        return {"kind": "config", "config": self.config.report(), "hash": self.config.hash()}
