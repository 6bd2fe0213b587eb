"""The connections view on fed data: next run and at-risk, keys that act on the
selected connection (never on the fleet's hidden cursor), roles said out loud."""

from __future__ import annotations

import pytest

from fleet.protocol import ConnectionInfo
from fleet_tui import format as fmt
from fleet_tui.permissions import Gate
from fleet_tui.screens.connection_edit import ConnectionModal, connection_body
from fleet_tui.screens.connections import ConnectionsScreen
from fleet_tui.screens.probe import ProbeModal

from .conftest import sample_app
from .helpers import screen_text, static_text


def test_counts_are_pluralised():
    assert fmt.count(1, "connection") == "1 connection"
    assert fmt.count(0, "connection") == "0 connections"
    assert fmt.count(1204, "agent") == "1,204 agents"
    assert fmt.count(1, "alert") + " open" == "1 alert open"


def test_connection_body_says_what_to_fix():
    assert connection_body("", "h", "1", "p", "") == "Give the connection a name."
    assert "port between" in str(connection_body("n", "h", "99999", "p", ""))
    assert "at least one pool" in str(connection_body("n", "h", "5432", " , ", ""))
    assert "no cron expression" in str(connection_body("n", "h", "5432", "p", "x="))
    assert connection_body(
        "pg", "127.0.0.1", "5432", "db-east, db-west", "0 14 * * *@Europe/Berlin; n=@daily"
    ) == {
        "name": "pg",
        "host": "127.0.0.1",
        "port": 5432,
        "pools": ["db-east", "db-west"],
        "schedules": [
            {"cron": "0 14 * * *", "timezone": "Europe/Berlin", "name": None},
            {"cron": "@daily", "timezone": "UTC", "name": "n"},
        ],
    }


def test_connection_actions_need_their_roles():
    assert Gate("viewer").why_not("connection_probe") == (
        "Probe connection needs the operator role; you are a viewer. "
        "Ask an admin for an operator token."
    )
    assert Gate("operator").allows("connection_probe")
    assert not Gate("operator").allows("connection_add")
    assert not Gate("operator").allows("connection_edit")
    assert Gate("admin").allows("connection_edit")


async def test_the_view_shows_next_runs_and_the_one_at_risk_first():
    app = sample_app()
    async with app.run_test(size=(140, 30)) as pilot:
        app.open_connections()
        await pilot.pause()
        assert isinstance(app.screen, ConnectionsScreen)
        text = screen_text(app)
        assert "next run" in text
        assert "⚠ 14:00 UTC (daily-load) AT RISK" in text
        assert "02:00 Europe/Berlin" in text
        summary = static_text(app, "#conn-summary")
        assert summary.startswith("2 connections, 1 not routable now")
        assert summary.endswith("1 at risk before the next run")
        assert app.screen.selected().name == "warehouse"  # the one at risk on top

        # One connection: "1 connection", not "1 connections".
        app.model.connections = {"warehouse": app.model.connections["warehouse"]}
        app.screen.tick()
        assert static_text(app, "#conn-summary").startswith("1 connection, 1 not routable")


@pytest.mark.parametrize(
    ("role", "key", "needs"),
    [
        ("viewer", "p", "Probe connection needs the operator role; you are a viewer"),
        ("operator", "a", "Add connection needs the admin role; you are an operator"),
        ("operator", "e", "Edit connection needs the admin role; you are an operator"),
        ("viewer", "e", "Edit connection needs the admin role; you are a viewer"),
    ],
)
async def test_a_key_the_role_does_not_allow_says_which_role_it_needs(role, key, needs):
    app = sample_app(role=role)
    async with app.run_test(size=(140, 30)) as pilot:
        app.open_connections()
        await pilot.pause()
        await pilot.press(key)
        await pilot.pause()
        assert isinstance(app.screen, ConnectionsScreen), "nothing opened"
        assert any(needs in n.message for n in app._notifications), [
            n.message for n in app._notifications
        ]


async def test_p_acts_on_the_selected_connection_not_the_hidden_agent():
    app = sample_app(role="operator")
    async with app.run_test(size=(140, 30)) as pilot:
        assert app.current_agent() is not None  # the fleet's cursor is on an agent
        app.open_connections()
        await pilot.pause()
        assert app.current_agent() is None, "agent actions do not reach through the view"
        await pilot.press("p")
        await pilot.pause()
        assert not isinstance(app.screen, ProbeModal), "no 'Probe from <agent>' modal"
        # Fed data has no control plane: the probe of the connection says so.
        assert any("Not connected" in n.message for n in app._notifications)


async def test_admin_opens_the_add_and_edit_modal():
    app = sample_app(role="admin")
    async with app.run_test(size=(140, 40)) as pilot:
        app.open_connections()
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, ConnectionsScreen)
        # Without a server the modal cannot save; open it directly to see its fields.
        info = app.model.connections["orders-db"]
        assert isinstance(info, ConnectionInfo)

        async def never(body):
            return "refused: test"

        app.push_screen(ConnectionModal(never, info))
        await pilot.pause()
        text = screen_text(app)
        assert "Edit connection orders-db" in text
        assert "0 2 * * *@Europe/Berlin" in text
        assert "build-eu, deploy" in text
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConnectionModal)
        assert "refused: test" in static_text(app, "#conn-error")
        await pilot.press("escape")
        assert isinstance(app.screen, ConnectionsScreen)
