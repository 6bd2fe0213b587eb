"""The connections view against a real control plane: an admin adds and edits a
connection in the modal, and ``p`` probes the selected connection through its route."""

from __future__ import annotations

import asyncio

import pytest
from textual.widgets import Input

from fleet_tui.screens.connection_edit import ConnectionModal
from fleet_tui.screens.connections import ConnectionsScreen
from fleet_tui.screens.probe import ProbeModal, ProbeResultModal
from tests.helpers.stream import start_agent, stop_agent

from .helpers import screen_text, static_text
from .test_live import live_app, until

pytestmark = pytest.mark.timeout(90)


def fill(app, **values: str) -> None:
    for field, value in values.items():
        app.screen.query_one(f"#conn-{field}", Input).value = value


async def test_admin_adds_and_edits_a_connection_and_probes_it_through_its_route(
    control_plane, tmp_path
):
    async def accept(reader, writer):
        writer.close()

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    control_plane.set_policy("db-west", allow_cidrs=["127.0.0.0/8"], allow_ports=[port])
    _, task = await start_agent(control_plane, "west-1", "db-west", interval_s=0.5)
    app = live_app(control_plane, tmp_path)
    try:
        async with app.run_test(size=(140, 40)) as pilot:
            await until(pilot, lambda: len(app.model.agents) == 1, what="the agent")
            app.open_connections()
            await pilot.pause()
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, ConnectionModal), what="modal")
            fill(app, name="orders-db", host="127.0.0.1", port=str(port), pools="db-east")
            fill(app, schedules="0 14 * * *@Mars/Base")
            await pilot.press("enter")
            # The server's refusal stays in the modal, with what was typed.
            await until(
                pilot,
                lambda: "time zone 'Mars/Base' is unknown" in static_text(app, "#conn-error"),
                what="the 422 in the modal",
            )
            fill(app, schedules="nightly=0 14 * * *@Europe/Berlin")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ConnectionsScreen), what="saved")
            await until(pilot, lambda: "14:00 Europe/Berlin (nightly)" in screen_text(app))
            with control_plane.api() as api:
                [conn] = api.get("/v1/connections").json()
            assert conn["schedules"] == [
                {"cron": "0 14 * * *", "timezone": "Europe/Berlin", "name": "nightly"}
            ]
            assert not conn["routable"], "db-east has no agent"

            # Unroutable: p says so, from the server.
            await pilot.press("p")
            await until(
                pilot,
                lambda: any(
                    "no healthy agent in pool db-east" in n.message for n in app._notifications
                ),
                what="the 409",
            )
            # Edit: add the pool that has an agent; the route appears.
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, ConnectionModal), what="edit")
            assert app.screen.query_one("#conn-name", Input).disabled
            fill(app, pools="db-east, db-west")
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, ConnectionsScreen), what="saved")
            await until(pilot, lambda: "west-1 (db-west)" in screen_text(app), what="the route")

            await pilot.press("p")
            await until(pilot, lambda: isinstance(app.screen, ProbeResultModal), what="result")
            text = screen_text(app)
            assert f"TCP 127.0.0.1:{port} from west-1 (pool db-west): OK" in text
            assert not isinstance(app.screen, ProbeModal)
        with control_plane.api() as api:
            audit = api.get("/v1/audit").json()
        actions = {e["action"] for e in audit}
        assert {"connection.create", "connection.update", "connection.probe"} <= actions
    finally:
        listener.close()
        await stop_agent(task)
