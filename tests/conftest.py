"""Shared fixtures: a real control plane on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers.server import RunningServer


@pytest.fixture
def control_plane(tmp_path: Path) -> Iterator[RunningServer]:
    """A fresh control plane (own CA, own SQLite file) with fast test timings."""
    server = RunningServer(tmp_path / "cp").start()
    try:
        yield server
    finally:
        server.stop()
