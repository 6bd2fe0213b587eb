"""The fleet view on a fixed fleet fed straight into the app (no server)."""

from __future__ import annotations

from textual import events
from textual.widgets import Input

from fleet.protocol import AgentUpdate, AlertRaised, Presence, replace
from fleet_tui.client import ConnectionState, LinkStatus
from fleet_tui.client._rest import ConfigView
from fleet_tui.model import GroupHeader
from fleet_tui.sample import NOW
from fleet_tui.screens.agent_detail import AgentDetailScreen, config_markup
from fleet_tui.screens.connections import ConnectionsScreen
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.widgets.agents import FleetTable

from .conftest import sample_app
from .helpers import screen_text, static_text, table_lines, wait_for_text


async def test_rows_show_every_column_unhealthy_first():
    app = sample_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        lines = table_lines(app.screen.query_one(FleetTable))
        header = lines[0]
        for title in (
            "state",
            "name",
            "pool",
            "heartbeat",
            "skew",
            "cpu",
            "mem",
            "queue",
            "cert",
            "version",
        ):
            assert title in header
        assert lines[1].lstrip().startswith("✗ offline")
        assert "build-us-0006" in lines[1] and "7m ago" in lines[1]
        assert lines[2].lstrip().startswith("? stale")
        text = "\n".join(lines)
        assert "≠1.3.9" in text  # version off its pin is marked
        assert "in 2h" in text  # certificate close to expiry
        assert "+2.4s" in text  # skewed clock
        summary = static_text(app, "#summary")
        assert "43 connected" in summary and "4 degraded" in summary
        assert "1 stale" in summary and "1 offline" in summary and "4 alerts open" in summary


async def test_slash_filters_by_text_and_state_and_escape_clears():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(FleetTable)
        await pilot.press("slash", *"etl")
        await pilot.pause()
        rows = [line for line in table_lines(table)[1:] if line.strip()]
        assert rows and all(" etl " in line for line in rows)
        assert "filter: etl (10 shown)" in static_text(app, "#summary")
        await pilot.press("enter", "escape")
        await pilot.pause()
        assert app.model.shown_count() == 50
        await pilot.press("slash", *"state:degraded", "enter")
        await pilot.pause()
        rows = [line for line in table_lines(table)[1:] if line.strip()]
        assert len(rows) == 4 and all("▲ degraded" in line for line in rows)


async def test_number_keys_sort_by_column_and_again_flips():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.screen.query_one(FleetTable)
        await pilot.press("8")  # queue
        await pilot.pause()
        lines = table_lines(table)
        # Highest first, and the mark says so: ▼, as spreadsheets and k9s draw it.
        assert "queue▼" in lines[0]
        assert "4812" in lines[1]
        await pilot.press("8")  # again: smallest first, ▲
        await pilot.pause()
        lines = table_lines(table)
        assert "queue▲" in lines[0] and "4812" not in lines[1]
        await pilot.press("2")  # name: A to Z
        await pilot.pause()
        assert "name▲" in table_lines(table)[0]
        await pilot.press("2")  # name descending
        await pilot.pause()
        lines = table_lines(table)
        assert "name▼" in lines[0]
        assert "etl-0048" in lines[1]


async def test_g_groups_by_pool():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("g")
        await pilot.pause()
        assert isinstance(app.model.rows()[0], GroupHeader)
        lines = table_lines(app.screen.query_one(FleetTable))
        assert "agents," in lines[1] and "unhealthy" in lines[1]


async def test_enter_opens_detail_with_every_field_and_escape_returns():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("down", "down", "enter")  # build-eu-0005 (deep queue)
        await pilot.pause()
        assert isinstance(app.screen, AgentDetailScreen)
        assert app.screen.agent_id == "ag-00005"
        text = screen_text(app)
        for label in (
            "labels",
            "reasons",
            "clock skew",
            "round trip",
            "certificate",
            "pinned version",
            "memory (agent)",
            "queue depth",
        ):
            assert label in text
        assert "queue depth 4812 above 1000" in text
        assert "cpu % now" in text
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_only_changed_cells_are_redrawn_on_a_tick():
    app = sample_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        app.tick()
        before = table.lines_refreshed
        app.tick()
        assert table.lines_refreshed == before  # nothing changed: nothing redrawn
        agent = app.model.agents["ag-00010"]
        app.feed(AgentUpdate(seq=200, agent=replace(agent, queue_depth=77)))
        app.tick()
        assert table.lines_refreshed == before + 1  # one cell: the queue
        assert any(" 77 " in line for line in table_lines(table))


async def test_state_change_reorders_on_the_next_tick_not_before():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        agent = app.model.agents["ag-00020"]
        app.feed(AgentUpdate(seq=200, agent=replace(agent, state=Presence.OFFLINE)))
        assert "build-eu-0020" not in table_lines(table)[1]
        app.tick()
        lines = table_lines(table)
        assert "build-eu-0020" in lines[1] or "build-eu-0020" in lines[2]


async def test_alerts_newest_first_and_enter_jumps_to_the_agent():
    app = sample_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "Alerts (4 open)" in text  # shown by default on a wide terminal
        panel_lines = [line for line in text.splitlines() if "!!" in line or "! " in line]
        assert "no heartbeat for 19 s" in panel_lines[0]  # newest first, with its age
        assert "<1m ago" in panel_lines[0]
        await pilot.press("a", "a")  # hide, show again (focuses the newest alert)
        await pilot.press("enter")
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        assert table.highlighted_agent == "ag-00001"
        assert table.has_focus
        # An alert on a connection opens the connections view.
        await pilot.press("a", "a", "down", "enter")
        await pilot.pause()
        assert isinstance(app.screen, ConnectionsScreen)


async def test_an_alert_that_flapped_says_how_often():
    app = sample_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.pause()
        assert "flap" not in screen_text(app)
        newest = max(app.model.alerts.values(), key=lambda a: a.raised_at)
        flapped = replace(newest, flaps=3)
        app.feed(AlertRaised(seq=(app.model.seq or 0) + 1, alert=flapped))
        text = await wait_for_text(pilot, app, "(3 flaps)")  # drawn on the next tick
        lines = [x for x in text.splitlines() if "(3 flaps)" in x]
        assert len(lines) == 1 and "<1m ago (3 flaps)" in lines[0]
        assert "Alerts (4 open)" in screen_text(app), "the same alert, not another one"


async def test_connections_view_says_which_are_routable():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, ConnectionsScreen)
        await wait_for_text(pilot, app, "1 not routable", "warehouse", "✗ NO", "orders-db", "✓ yes")
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, FleetScreen)


async def test_stream_loss_shows_banner_with_data_age_and_marks_rows_stale():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        clock = [NOW]
        app.model.clock = lambda: clock[0]
        app.model.data_at = NOW
        app._set_link(
            LinkStatus(ConnectionState.LIVE).to(
                ConnectionState.RECONNECTING, "the stream was lost; retrying in 2s", 1
            )
        )
        clock[0] = NOW + 12
        app.tick()
        await pilot.pause()
        banner = static_text(app, "#banner")
        assert banner.startswith("reconnecting… data as of 12 s ago")
        assert app.screen.query_one("#banner").display
        assert app.screen.query_one(FleetTable).stale
        assert "(stale)" in static_text(app, "#summary")
        assert "reconnecting" in app.sub_title
        app._set_link(app.link.to(ConnectionState.LIVE))
        app.tick()
        await pilot.pause()
        assert not app.screen.query_one("#banner").display
        assert not app.screen.query_one(FleetTable).stale


async def test_usable_at_80x24():
    app = sample_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause()
        lines = table_lines(app.screen.query_one(FleetTable))
        assert all(len(line) <= 79 for line in lines)
        for title in ("state", "name", "cpu", "mem", "queue", "cert", "version"):
            assert title in lines[0]
        assert len([line for line in lines[1:] if line.strip()]) >= 15
        text = screen_text(app)
        assert "Filter" in text and "Quit" in text


async def test_cut_mark_draws_what_the_table_draws_under_it():
    app = sample_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("a")  # close the alerts: full-width table
        await pilot.press("down", "down", "down")
        await pilot.pause(0.2)
        table = app.screen.query_one(FleetTable)
        cut = table.cut
        assert cut is not None and cut.display
        keys = [c.key for c in table.columns]
        before = table.columns[: keys.index("cpu")]
        cpu_x = table.region.x + 1 + sum(c.width + 1 for c in before)
        assert cut.region.x == cpu_x - 1  # the separator just before the cpu column
        strips = app.screen._compositor.render_strips()
        y = table.region.y + 1 + table.cursor_row  # the cursor's line on screen
        line = strips[y]

        def style_at(x: int):
            pos = 0
            for seg in line:
                if pos <= x < pos + len(seg.text):
                    return seg.style
                pos += len(seg.text)
            raise AssertionError(x)

        # The cut shows the cursor's background, like the cells on both sides.
        assert style_at(cut.region.x).bgcolor == style_at(cut.region.x - 1).bgcolor
        assert style_at(cut.region.x).bgcolor == style_at(cut.region.x + 1).bgcolor
        other = strips[y + 1]
        assert other.text.rstrip() == table.render_line(y + 1 - table.region.y).text.rstrip()


async def test_clicking_a_heading_sorts_by_it():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        table = app.screen.query_one(FleetTable)
        header = table_lines(table)[0]
        x = header.index("queue") + 1
        await pilot.click(FleetTable, offset=(x, 0))
        await pilot.pause()
        assert app.model.sort_key.value == "queue"
        assert "4812" in table_lines(table)[1]


def test_config_with_no_pin_shows_the_effective_config_not_a_diff():
    view = ConfigView(
        effective_hash="sha256:e1",
        pinned_hash=None,
        version="1.0",
        pinned_version=None,
        diff=[],
        in_sync=True,
        effective={"heartbeat_s": 5},
    )
    text = config_markup(view)
    assert "no config pinned" in text and '"heartbeat_s": 5' in text and "+++" not in text
    pinned = ConfigView(
        effective_hash="sha256:e1",
        pinned_hash="sha256:p1",
        version="1.0",
        pinned_version=None,
        diff=["--- pinned", "+++ effective", "-  [a]", "+  b"],
        in_sync=False,
        error="agent is offline: showing the last reported hash only",
    )
    text = config_markup(pinned)
    assert "DIFFERS from the pin" in text and "agent is offline" in text
    assert r"\[a]" in text  # config text is escaped, not read as markup


async def test_keys_typed_in_a_burst_after_slash_land_in_the_filter():
    # As a paste or a slow SSH link delivers them: all queued before the first is
    # handled. None may reach the table's or the app's keys: "l" fetches logs,
    # "p" probes, "x" revokes, "q" quits.
    app = sample_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        for key, char in [("slash", "/"), *((c, c) for c in "lpxq"), ("enter", None)]:
            app.post_message(events.Key(key, char))
        await pilot.pause(0.3)
        assert isinstance(app.screen, FleetScreen)  # no modal opened, still running
        assert app.screen.query_one("#filter", Input).value == "lpxq"
        # Enter kept the filter and gave the table its keys back at once.
        assert app.focused is app.screen.query_one(FleetTable)
        await pilot.press("escape")  # clears the filter
        await pilot.pause()
        keys = [("slash", "/"), *(("minus" if c == "-" else c, c) for c in "edge-0004")]
        for key, char in [*keys, ("enter", None), ("j", "j")]:
            app.post_message(events.Key(key, char))
        await pilot.pause(0.3)
        assert app.screen.query_one("#filter", Input).value == "edge-0004"  # no "j" in it
        assert "edge-0004" in screen_text(app) and "build-us-0006" not in screen_text(app)
