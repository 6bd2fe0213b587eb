"""Fixtures for the dashboard tests: a fixed fleet fed straight into the app."""

from __future__ import annotations

from pathlib import Path

from fleet_tui.app import FleetApp
from fleet_tui.model import FleetModel
from fleet_tui.sample import NOW, sample_snapshot


def fixed_model() -> FleetModel:
    """A model whose clock stands still at the sample's time."""
    return FleetModel(clock=lambda: NOW)


def sample_app(
    n: int = 50, role: str = "admin", wall: bool = False, logs_dir: Path | None = None
) -> FleetApp:
    """An app showing the fixed sample fleet, with no server behind it."""
    app = FleetApp(model=fixed_model(), wall=wall, logs_dir=logs_dir, tick=0.2, page_s=1.0)
    app.feed(sample_snapshot(n, role=role))
    return app
