"""Fixtures for the dashboard tests: a fixed fleet fed straight into the app."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleet_tui.app import FleetApp
from fleet_tui.model import FleetModel
from fleet_tui.sample import NOW, sample_snapshot
from tests.helpers.stream import start_agent, stop_agent


def fixed_model() -> FleetModel:
    """A model whose clock stands still at the sample's time."""
    return FleetModel(clock=lambda: NOW)


def sample_app(
    n: int = 50,
    role: str = "admin",
    wall: bool = False,
    logs_dir: Path | None = None,
    upgrades: bool = False,
) -> FleetApp:
    """An app showing the fixed sample fleet, with no server behind it (with
    ``upgrades``, its rollouts, remediations and upgrade steps too)."""
    app = FleetApp(model=fixed_model(), wall=wall, logs_dir=logs_dir, tick=0.2, page_s=1.0)
    app.feed(sample_snapshot(n, role=role, upgrades=upgrades))
    return app


@pytest.fixture
async def gone(control_plane):
    """An agent of pool etl that connected once and went away (an offline alert)."""
    agent, task = await start_agent(control_plane, "etl-07", "etl", interval_s=0.3)
    await stop_agent(task)
    yield agent
