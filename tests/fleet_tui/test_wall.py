"""Wall mode at 80x24: the unhealthy agents on every page, reasons, fleet alerts by text."""

from __future__ import annotations

from fleet.protocol import AlertInfo, Presence, replace
from fleet_tui.app import FleetApp
from fleet_tui.sample import NOW, sample_snapshot
from fleet_tui.screens.wall import WallScreen, wall_pages

from .conftest import fixed_model, sample_app
from .helpers import screen_text, static_text


def test_pages_repeat_the_unhealthy_agents_and_share_the_rest():
    sick, well = list("AB"), list("cdefg")
    assert wall_pages(sick, well, 4) == [
        ["A", "B", "c", "d"],
        ["A", "B", "e", "f"],
        ["A", "B", "g"],
    ]
    # More unhealthy than a page holds: the pages turn through them alone.
    assert wall_pages(list("ABCDE"), well, 2) == [["A", "B"], ["C", "D"], ["E"]]
    assert wall_pages([], [], 5) == [[]]
    assert wall_pages([], well, 5) == [well]


async def test_every_page_at_80x24_starts_with_the_unhealthy_agents_and_their_reasons():
    # Pages turned by the test alone: the timer must not race it.
    app = FleetApp(model=fixed_model(), wall=True, tick=0.2, page_s=3600)
    app.feed(sample_snapshot(120))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        wall = app.screen
        assert isinstance(wall, WallScreen)
        assert wall.pages > 1
        seen = []
        for _ in range(wall.pages):
            lines = static_text(app, "#wall-list").splitlines()
            seen.append(wall.page)
            assert lines[0].startswith("✗ offline") and "channel closed 7m ago" in lines[0]
            assert lines[1].startswith("? stale")
            assert "no heartbeat for 19 s (3 intervals)" in lines[1]  # the reasons, whole
            assert sum(line.startswith("▲ degraded") for line in lines) == 4
            assert "6 unhealthy on each page" in static_text(app, "#wall-page")
            wall.next_page()
            await pilot.pause()
        assert sorted(seen) == list(range(wall.pages))
        assert "quits" in screen_text(app).splitlines()[-1]  # the page line is not cut


async def test_pool_and_connection_alerts_are_shown_by_their_text():
    app = sample_app(n=20, wall=True)
    snap = sample_snapshot(20)
    pool_alert = AlertInfo(
        id="al-9",
        kind="pool_below_min",
        severity="critical",
        target="pool:etl",
        message="pool etl has 1 healthy agent, below its minimum of 2",
        raised_at=NOW - 120,
    )
    app.feed(replace(snap, alerts=[*snap.alerts, pool_alert]))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        text = static_text(app, "#wall-alerts")
        assert "!!  2m ago  pool etl: pool etl has 1 healthy agent, below its minimum" in text
        assert "connection warehouse: no healthy agent in pool etl-dr" in text
        # An agent's alert is on its row, not repeated here.
        assert "no heartbeat for 19 s" not in text


async def test_stopped_agents_have_a_counter_that_is_never_red():
    snapshot = sample_snapshot(20)
    stopped = [
        replace(a, state=Presence.STOPPED, stop_reason="received SIGTERM")
        for a in snapshot.agents[10:13]
    ]
    snapshot = replace(snapshot, agents=[*snapshot.agents[:10], *stopped, *snapshot.agents[13:]])
    app = FleetApp(model=fixed_model(), wall=True, tick=0.2, page_s=3600)
    app.feed(snapshot)
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause(0.2)
        counter = app.screen.query_one("#counter-stopped")
        assert "stopped" in static_text(app, "#counter-stopped Label")
        assert "3" in str(counter.query_one("Digits").value)
        assert not counter.has_class("-bad")
        assert app.screen.query_one("#counter-offline").has_class("-bad")
