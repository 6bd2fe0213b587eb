"""Snapshot tests of the main screens from one app on fixed data (Textual pinned to 8.2.8)."""

from __future__ import annotations

import pytest

from fleet.protocol import ProbeResult
from fleet_tui.sample import sample_holds
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.probe import ProbeResultModal

from .conftest import sample_app

SIZES = [(80, 24), (160, 50)]


async def settled(pilot):
    """Wait until the table's cut mark sits over its column (placed after the first resize).

    It draws what the table draws there, but its move re-cuts the SVG's
    rectangles, so a picture taken before it moved would differ.
    """
    app = pilot.app
    for _ in range(100):
        await pilot.pause()
        screen = app.screen
        if not isinstance(screen, FleetScreen):
            return
        cut = screen.table.cut
        if cut is None or not cut.display:
            return
        placed = screen.table.region.x + round(cut.styles.offset.x.value)
        if cut.region.x == placed and cut.region.x > 0:
            await pilot.pause()
            return
    raise AssertionError("the cut mark was never placed")


def _app(wall: bool = False, upgrades: bool = False):
    app = sample_app(wall=wall, upgrades=upgrades)
    app.page_s = 3600.0  # no page turns during the snapshot
    return app


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fleet_view(snap_compare, size):
    assert snap_compare(_app(), terminal_size=size, run_before=settled)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_fleet_grouped_and_filtered(snap_compare, size):
    assert snap_compare(
        _app(),
        press=["g", "slash", *"is:unhealthy", "enter"],
        terminal_size=size,
        run_before=settled,
    )


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_agent_detail(snap_compare, size):
    assert snap_compare(_app(), press=["down", "down", "enter"], terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_probe_result(snap_compare, size):
    result = ProbeResult(
        host="orders.db.internal",
        port=5432,
        tls=True,
        ok=False,
        failure="tls",
        error="certificate verify failed: unable to get local issuer certificate",
        resolved=["10.20.0.15"],
        dns_ms=1.8,
        connect_ms=2.4,
        tls_ms=None,
    )

    async def show(pilot):
        await settled(pilot)
        pilot.app.push_screen(ProbeResultModal("build-eu-0005", result))
        await pilot.pause()

    assert snap_compare(_app(), run_before=show, terminal_size=size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_wall_mode(snap_compare, size):
    assert snap_compare(_app(wall=True), terminal_size=size)


def test_fleet_view_monochrome_80x24(snap_compare, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(_app(), terminal_size=(80, 24), run_before=settled)


def test_fleet_view_ansi_theme_80x24(snap_compare):
    app = _app()
    app.theme = "ansi-dark"
    assert snap_compare(app, terminal_size=(80, 24), run_before=settled)


def test_keys_80x24(snap_compare):
    async def keys(pilot):
        await settled(pilot)
        await pilot.press("question_mark")

    assert snap_compare(_app(), terminal_size=(80, 24), run_before=keys)


def test_held_view_80x24(snap_compare):
    """Silences and maintenance windows, active and planned (h from the fleet view)."""
    app = _app()
    app.model.holds = sample_holds()
    assert snap_compare(app, press=["h"], terminal_size=(80, 24))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_rollouts_view(snap_compare, size):
    """Rollouts halted, in a wave, waiting and done; the one in a wave selected (R, down)."""
    assert snap_compare(_app(upgrades=True), press=["R", "down"], terminal_size=size)


def test_remediation_inbox_80x24(snap_compare):
    """Two remediations waiting for approval, then three decided or run (I)."""
    assert snap_compare(_app(upgrades=True), press=["I"], terminal_size=(80, 24))
