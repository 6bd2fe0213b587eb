"""What each command from the control plane does on the agent, and how the log says it.

``probe``, ``logs`` and ``config`` are answered here; ``upgrade``, ``rollback``,
``restart`` and ``renew`` by :mod:`agent.lifecycle`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agent.config import AgentConfig
from agent.logs import LogBook
from agent.policy import ProbePolicy
from agent.probe import run_probe
from fleet.protocol import (
    Command,
    LogsCommand,
    ProbeCommand,
    RenewCommand,
    RestartCommand,
    RollbackCommand,
    UpgradeCommand,
)

__all__ = ["CommandRunner", "describe", "summarize"]


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


def describe(spec: Command) -> str:
    """A command, for the log."""
    if isinstance(spec, ProbeCommand):
        return f"probe {spec.host}:{spec.port}{' tls' if spec.tls else ''}"
    if isinstance(spec, LogsCommand):
        since = ""
        if spec.since is not None:
            since = " since " + datetime.fromtimestamp(spec.since, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            )
        return f"logs, last {spec.lines} lines{since}"
    if isinstance(spec, UpgradeCommand):
        return f"upgrade to {spec.version} ({spec.size} bytes)"
    if isinstance(spec, RollbackCommand | RestartCommand | RenewCommand):
        return f"{spec.kind}: {spec.reason}"
    return "config"


def summarize(result: dict[str, Any]) -> str:
    """A command's result, for the log."""
    if result.get("kind") == "probe":
        if result.get("ok"):
            return "ok"
        return f"{result.get('failure')}: {result.get('error')}"
    if result.get("kind") == "logs":
        return f"{len(result.get('lines', []))} lines"
    return str(result.get("kind"))
