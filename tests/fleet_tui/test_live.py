"""The dashboard against a real control plane on loopback, with simulated agents."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from fleet_tui.app import FleetApp
from fleet_tui.client import ConnectionState
from fleet_tui.screens.agent_detail import AgentDetailScreen
from fleet_tui.screens.confirm import PinRequest
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.logs import LogViewer
from fleet_tui.screens.probe import ProbeModal, ProbeResultModal
from fleet_tui.widgets.agents import FleetTable
from tests.helpers.stream import start_agent, stop_agent

from .helpers import screen_text, static_text, table_lines

pytestmark = pytest.mark.timeout(90)


async def until(pilot, predicate: Callable[[], object], timeout: float = 15.0, what: str = ""):
    """Let the app run until ``predicate`` holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        await pilot.pause(0.05)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def live_app(cp, tmp_path, token: str | None = None) -> FleetApp:
    return FleetApp(
        server_url=cp.url,
        token=token or cp.admin_token,
        ca_file=cp.ca_file,
        tick=0.2,
        logs_dir=tmp_path / "logs",
        backoff_cap=1.0,
    )


@pytest.fixture
async def agents(control_plane):
    started = []
    for name, pool, attrs in (
        ("web-1", "web", {"cpu_percent": 12.0}),
        ("web-2", "web", {"queue_depth": 250}),
        ("etl-1", "etl", {"version": "0.9.0"}),
    ):
        agent, task = await start_agent(control_plane, name, pool, interval_s=0.5, **attrs)
        started.append((agent, task))
    yield started
    for _, task in started:
        await stop_agent(task)


async def test_live_fleet_filter_sort_and_drill_in(control_plane, agents, tmp_path):
    app = live_app(control_plane, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: len(app.model.agents) == 3, what="three agents")
        await until(pilot, lambda: app.sub_title == "live · admin", what="live header")
        table = app.screen.query_one(FleetTable)
        await until(pilot, lambda: "web-2" in "\n".join(table_lines(table)), what="rows drawn")
        # Filter by pool.
        await pilot.press("slash", *"etl", "enter")
        await pilot.pause(0.3)
        rows = [line for line in table_lines(table)[1:] if line.strip()]
        assert len(rows) == 1 and "etl-1" in rows[0]
        await pilot.press("escape")
        # Sort by queue depth: web-2 (250) first.
        await pilot.press("8")
        await until(pilot, lambda: "web-2" in table_lines(table)[1], what="queue sort")
        # Drill in: every field, and the config diff fetched over REST.  The cursor
        # followed etl-1 through the re-sort; Home goes to the top row.
        await pilot.press("home", "enter")
        assert isinstance(app.screen, AgentDetailScreen)
        await until(
            pilot,
            lambda: (
                "config" in static_text(app, "#detail-config")
                and "loading" not in static_text(app, "#detail-config")
            ),
            what="config",
        )
        text = screen_text(app)
        assert "web-2" in text and "queue depth" in text and "250" in text
        await pilot.press("escape")
        assert isinstance(app.screen, FleetScreen)


async def test_viewer_token_sees_actions_unavailable_and_server_refusals_are_clear(
    control_plane, agents, tmp_path
):
    token = control_plane.user("wall-display", "viewer")
    app = live_app(control_plane, tmp_path, token=token)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.model.has_snapshot and len(app.model.agents) == 3)
        assert app.gate.role == "viewer"
        await until(pilot, lambda: app.sub_title == "live · viewer", what="header")
        for action in ("probe", "logs", "pin", "revoke"):
            assert app.check_action(action, ()) is None
        await pilot.press("v")
        assert isinstance(app.screen, FleetScreen)
        # Even if the UI were wrong, the server refuses and the user is told why.
        agent = next(iter(app.model.agents.values()))
        worker = app._pin(agent, PinRequest(version="9.9.9", scope="agent"))
        await worker.wait()
        messages = [n.message for n in app._notifications]
        assert any(m.startswith("refused:") and "admin" in m for m in messages), messages


async def test_unknown_token_is_refused_with_what_to_do_and_no_retry(control_plane, tmp_path):
    app = live_app(control_plane, tmp_path, token="flta_" + "x" * 40)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.link.state is ConnectionState.REFUSED, what="refusal")
        await pilot.pause(0.3)
        banner = static_text(app, "#banner")
        assert banner.startswith("refused: the token is unknown or expired")
        assert "FLEET_TOKEN" in banner
        assert app.sub_title.startswith("refused")
        await pilot.pause(1.5)
        assert app.link.state is ConnectionState.REFUSED  # it did not retry


async def test_reconnect_banner_after_server_stop_and_resume_after_start(
    control_plane, agents, tmp_path
):
    app = live_app(control_plane, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(
            pilot,
            lambda: app.link.state is ConnectionState.LIVE and len(app.model.agents) == 3,
            what="live",
        )
        await asyncio.to_thread(control_plane.stop)
        await until(
            pilot, lambda: app.link.state is ConnectionState.RECONNECTING, what="reconnecting"
        )
        await pilot.pause(1.2)
        banner = static_text(app, "#banner")
        assert banner.startswith("reconnecting… data as of ")
        assert app.screen.query_one("#banner").display
        assert app.screen.query_one(FleetTable).stale
        assert "(stale)" in static_text(app, "#summary")
        await asyncio.to_thread(control_plane.start)
        await until(
            pilot, lambda: app.link.state is ConnectionState.LIVE, timeout=30, what="live again"
        )
        await pilot.pause(0.5)
        assert not app.screen.query_one("#banner").display
        assert not app.screen.query_one(FleetTable).stale
        assert app.model.seq is not None


async def test_probe_from_an_agent_shows_the_result(control_plane, agents, tmp_path):
    async def accept(reader, writer):
        writer.close()

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    control_plane.set_policy("web", allow_cidrs=["127.0.0.0/8"], allow_ports=[port])
    app = live_app(control_plane, tmp_path)
    try:
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: len(app.model.agents) == 3)
            await pilot.press("slash", *"web-1", "enter")
            await pilot.pause(0.3)
            await pilot.press("p")
            assert isinstance(app.screen, ProbeModal)
            await pilot.press(*"127.0.0.1", "tab", *str(port), "enter")
            await until(pilot, lambda: isinstance(app.screen, ProbeResultModal), what="result")
            text = screen_text(app)
            assert f"TCP 127.0.0.1:{port} from web-1: OK" in text
            assert "connect" in text and " ms" in text
            await pilot.press("escape")
            # A port outside the policy is refused by the control plane, clearly.
            await pilot.press("p", *"127.0.0.1", "tab", "1", "enter")
            await until(
                pilot,
                lambda: any(
                    "not in the pool's allowed ports" in n.message for n in app._notifications
                ),
                what="refusal",
            )
            # The detail screen lists the probe among the agent's recent commands.
            await pilot.press("enter")
            assert isinstance(app.screen, AgentDetailScreen)
            await until(
                pilot,
                lambda: (
                    "agent.probe" in static_text(app, "#detail-events")
                    or "probe" in static_text(app, "#detail-events")
                ),
                what="probe in recent commands",
            )
    finally:
        listener.close()


async def test_logs_are_saved_and_opened_in_the_viewer(control_plane, agents, tmp_path):
    app = live_app(control_plane, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: len(app.model.agents) == 3)
        await pilot.press("l", "enter")
        await until(pilot, lambda: isinstance(app.screen, LogViewer), what="log viewer")
        viewer = app.screen
        assert isinstance(viewer, LogViewer)
        assert viewer.path.parent == tmp_path / "logs" and viewer.path.exists()
        assert str(viewer.path) in static_text(app, "#log-path")
        assert viewer.lines and viewer.path.read_text().splitlines() == viewer.lines
        await pilot.press("slash", *"line 1")
        await pilot.pause(0.2)
        assert "match 'line 1'" in static_text(app, "#log-count")


async def test_pin_a_version_and_see_the_drift_mark(control_plane, agents, tmp_path):
    app = live_app(control_plane, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: len(app.model.agents) == 3)
        await pilot.press("slash", *"web-1", "enter")
        await pilot.pause(0.3)
        await pilot.press("v")
        await pilot.press("ctrl+a", "ctrl+k")  # clear the proposed version
        await pilot.press(*"2.0.0", "enter")
        await until(
            pilot,
            lambda: any(
                "Pinned agent web-1 to version 2.0.0" in n.message for n in app._notifications
            ),
            what="pinned",
        )
        table = app.screen.query_one(FleetTable)
        await until(
            pilot,
            lambda: any("≠1.0.0" in line for line in table_lines(table)),
            what="drift mark",
            timeout=10,
        )


async def test_ca_pin_is_checked_before_trusting_the_server(control_plane, tmp_path):
    good = FleetApp(
        server_url=control_plane.url,
        token=control_plane.admin_token,
        ca_pin=control_plane.ca_pin,
        tick=0.2,
    )
    async with good.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: good.link.state is ConnectionState.LIVE, what="live by pin")
    bad = FleetApp(
        server_url=control_plane.url,
        token=control_plane.admin_token,
        ca_pin="sha256:" + "0" * 64,
        tick=0.2,
    )
    async with bad.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: bad.link.state is ConnectionState.REFUSED, what="refused")
        assert "the server's CA has pin sha256:" in bad.link.detail
        assert "wrong server" in bad.link.detail


async def test_wall_mode_survives_stream_loss_and_shows_data_age(control_plane, agents, tmp_path):
    app = FleetApp(
        server_url=control_plane.url,
        token=control_plane.admin_token,
        ca_file=control_plane.ca_file,
        wall=True,
        tick=0.2,
        backoff_cap=1.0,
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await until(
            pilot,
            lambda: static_text(app, "#wall-status") == "fleet: live · 3 agents",
            what="live wall",
        )
        await asyncio.to_thread(control_plane.stop)
        await until(
            pilot,
            lambda: static_text(app, "#wall-status").startswith("reconnecting… data as of "),
            what="wall shows the data's age",
        )
        await pilot.press("slash", "p", "enter")  # locked: nothing opens
        assert len(app.screen_stack) == 2
        await asyncio.to_thread(control_plane.start)
        await until(
            pilot,
            lambda: static_text(app, "#wall-status") == "fleet: live · 3 agents",
            timeout=30,
            what="live again",
        )


async def test_revoke_after_typing_the_name(control_plane, agents, tmp_path):
    app = live_app(control_plane, tmp_path)
    async with app.run_test(size=(140, 40)) as pilot:
        await until(pilot, lambda: len(app.model.agents) == 3)
        await pilot.press("slash", *"etl-1", "enter")
        await pilot.pause(0.3)
        await pilot.press("x")
        await pilot.press(*"etl-1", "enter")
        await until(
            pilot,
            lambda: any("Revoked etl-1" in n.message for n in app._notifications),
            what="revoked",
        )
        await until(
            pilot,
            lambda: any(
                a.name == "etl-1" and a.state.value == "revoked" for a in app.model.agents.values()
            ),
            what="revoked state on the stream",
        )
        table = app.screen.query_one(FleetTable)
        await until(pilot, lambda: "⊘ revoked" in "\n".join(table_lines(table)), what="row")


async def test_an_untrusted_server_is_refused_with_what_to_do(control_plane, tmp_path):
    app = FleetApp(server_url=control_plane.url, token=control_plane.admin_token, tick=0.2)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.link.state is ConnectionState.REFUSED, what="refused")
        assert "certificate is not trusted" in app.link.detail
        assert "--ca-file" in app.link.detail and "--ca-pin" in app.link.detail
