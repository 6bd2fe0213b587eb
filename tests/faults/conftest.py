"""Fixtures for fault tests: everything a test starts is stopped at its end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.agents import AgentProcess, enroll
from tests.helpers.server import RunningServer


@pytest.fixture
def running() -> Iterator[list[AgentProcess | RunningServer]]:
    """Processes started in a test; stopped at its end, agents first."""
    started: list[AgentProcess | RunningServer] = []
    yield started
    for thing in sorted(started, key=lambda t: isinstance(t, RunningServer)):
        thing.stop()


def real_agent(
    server: RunningServer,
    tmp_path: Path,
    running: list[AgentProcess | RunningServer],
    name: str,
    args: list[str] | None = None,
) -> AgentProcess:
    """Enroll ``python -m agent`` as ``name`` and start ``agent run``."""
    state_dir = tmp_path / name
    done = enroll(server, state_dir, name=name)
    assert done.returncode == 0, done.stderr
    agent = AgentProcess(state_dir, args=args or []).start()
    running.append(agent)
    return agent
