"""One state for an agent wherever it is shown, and charts on a fixed 0-100 scale."""

from __future__ import annotations

from fleet.protocol import AgentHistory, Presence, replace
from fleet_tui.app import FleetApp
from fleet_tui.sample import NOW, sample_snapshot
from fleet_tui.screens.agent_detail import AgentDetailScreen
from fleet_tui.widgets.agents import FleetTable
from fleet_tui.widgets.chart import BarChart

from .conftest import fixed_model
from .helpers import screen_text, table_lines


def app_with_quiet_agent() -> FleetApp:
    """etl-0003 said connected by the server a minute ago, using 5 % memory."""
    snap = sample_snapshot(20)
    agents = [
        replace(a, state=Presence.CONNECTED, reasons=[], last_heartbeat_at=NOW - 65)
        if a.name == "etl-0003"
        else a
        for a in snap.agents
    ]
    history = dict(snap.history)
    quiet = next(a.id for a in agents if a.name == "etl-0003")
    history[quiet] = AgentHistory(cpu=[30.0] * 60, mem=[5.0] * 60, queue=[0] * 60)
    app = FleetApp(model=fixed_model(), tick=0.2)
    app.feed(replace(snap, agents=agents, history=history))
    return app


def row_of(app: FleetApp, name: str) -> str:
    table = app.screen.query_one(FleetTable)
    return next(line for line in table_lines(table) if name in line)


async def test_table_and_detail_agree_on_an_agent_whose_heartbeat_is_old():
    app = app_with_quiet_agent()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        row = row_of(app, "etl-0003")
        assert "? stale" in row and "1m ago" in row, row
        agent_id = next(a.id for a in app.model.agents.values() if a.name == "etl-0003")
        app.open_detail(agent_id)
        await pilot.pause()
        assert isinstance(app.screen, AgentDetailScreen)
        text = screen_text(app)
        assert "? stale (the server said connected: no heartbeat since)" in text
        assert "last heartbeat   1m ago" in text
        assert "✓ connected" not in text


async def test_an_offline_agents_heartbeat_reads_its_age():
    app = FleetApp(model=fixed_model(), tick=0.2)
    snap = sample_snapshot(20)
    agents = [
        replace(a, state=Presence.OFFLINE, last_heartbeat_at=NOW - 3) if a.name == "etl-0003" else a
        for a in snap.agents
    ]
    app.feed(replace(snap, agents=agents))
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        row = row_of(app, "etl-0003")
        assert "✗ offline" in row and "3s ago" in row and "<8s" not in row, row


async def test_memory_at_five_percent_is_drawn_low_not_as_full_bars():
    app = app_with_quiet_agent()
    async with app.run_test(size=(160, 50)) as pilot:
        agent_id = next(a.id for a in app.model.agents.values() if a.name == "etl-0003")
        app.open_detail(agent_id)
        await pilot.pause()
        chart = app.screen.query_one("#chart-mem", BarChart)
        assert chart.top == 100.0 and chart.data == (5.0,) * 60
        rows = [chart.render_line(y).text for y in range(chart.size.height)]
        assert len(rows) == 4
        assert all(not r.strip() for r in rows[:3]), rows  # nothing above the bottom row
        assert set(rows[3].strip()) == {"▂"}, rows
        assert "mem % now 5 · max 5 · scale 0-100" in screen_text(app)


def test_the_counters_count_the_state_the_rows_show():
    app = app_with_quiet_agent()
    counts = app.model.counts()
    snap_stale = sum(a.state is Presence.STALE for a in app.model.agents.values())
    assert counts[Presence.STALE] == snap_stale + 1  # etl-0003, said connected, is stale


def test_the_detail_names_the_replica_holding_the_agent_and_nothing_when_alone():
    from fleet_tui.screens.agent_detail import field_lines

    agent = sample_snapshot(1).agents[0]
    assert "replica" not in dict(field_lines(agent, NOW))
    held = replace(agent, replica="cp2.internal-4711-a1b2c3")
    assert dict(field_lines(held, NOW))["replica"] == "cp2.internal-4711-a1b2c3"


async def test_a_long_name_leaves_the_link_state_and_role_in_the_header_at_80_columns():
    name = "warehouse-loader-eu-west-1-primary-datacentre-rack-17-host-0042"
    snap = sample_snapshot(5)
    agents = [replace(snap.agents[0], name=name), *snap.agents[1:]]
    app = FleetApp(model=fixed_model(), tick=0.2)
    app.feed(replace(snap, agents=agents))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        app.open_detail(agents[0].id)
        await pilot.pause(0.3)
        header = screen_text(app).split("\n")[0]
        assert "agent warehouse-loader-eu-" in header and "-host-0042 — " in header, header
        assert header.rstrip().endswith(app.sub_title), header


def test_elide_keeps_both_ends():
    from fleet_tui.format import elide

    assert elide("build-eu-0001", 20) == "build-eu-0001"
    assert elide("build-eu-0001", 9) == "buil…0001"
    assert len(elide("x" * 64, 30)) == 30
