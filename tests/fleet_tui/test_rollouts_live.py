"""The rollouts view against a real control plane with stored releases and simulated
agents that upgrade over the real protocol: an operator pauses, resumes and aborts
a rollout from the view (and its canary rolls back); a release that crash-loops
halts after its canary, and the header and the view say so."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_tui.app import FleetApp
from fleet_tui.screens.decisions import AbortRolloutModal
from fleet_tui.screens.rollouts import RolloutsScreen
from tests.helpers.rollouts import release_server, start_pool, stop_all
from tests.helpers.server import RunningServer

from .helpers import notices, static_text, wait_for_text
from .test_live import until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[RunningServer]:
    server = release_server(tmp_path / "cp", "2.0.0", "3.0.0")
    try:
        yield server
    finally:
        server.stop()


def dashboard(cp: RunningServer, token: str) -> FleetApp:
    return FleetApp(server_url=cp.url, token=token, ca_file=cp.ca_file, tick=0.2, backoff_cap=1.0)


async def start(cp: RunningServer, **body: object) -> str:
    async with cp.aapi() as api:
        r = await api.post("/v1/rollouts", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


async def test_an_operator_pauses_resumes_and_aborts_from_the_view(cp):
    agents, tasks = await start_pool(cp, "web", 4, "1.0.0")
    app = dashboard(cp, cp.user("ops", "operator"))
    try:
        rid = await start(cp, pool="web", version="2.0.0", canaries=1, soak_s=60, wave=3)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: rid in app.model.rollouts, what="the rollout")
            await pilot.press("R")
            assert isinstance(app.screen, RolloutsScreen)
            await wait_for_text(pilot, app, "▶ soaking  web → 2.0.0 · 1/4 upgraded", timeout=30)
            await wait_for_text(pilot, app, "soak ends in 1m", "web-01  canary  runs 2.0.0")

            await pilot.press("p")
            await wait_for_text(pilot, app, "‖ paused   web → 2.0.0", "paused by ops")
            assert "Paused the rollout of 2.0.0 to pool web: paused." in notices(app)
            await pilot.press("r")
            await wait_for_text(pilot, app, "▶ soaking  web → 2.0.0", "resumed by ops")

            await pilot.press("x")
            await until(pilot, lambda: isinstance(app.screen, AbortRolloutModal), what="confirm")
            said = static_text(app, "#abort-does")
            assert "rolls back the agents it upgraded or is upgrading (1: web-01)" in said
            await pilot.press("enter")
            await wait_for_text(pilot, app, "⊘ aborted  web → 2.0.0", "aborted by ops")
            # The canary goes back to the version it ran: the view says so when the
            # agent accepts the rollback, the agent runs it once it has restarted.
            await wait_for_text(pilot, app, "↺ rolled back  web-01", timeout=30)
            await until(pilot, lambda: agents[0].version == "1.0.0", timeout=30, what="1.0.0")
    finally:
        await stop_all(tasks)
    assert [a.version for a in agents] == ["1.0.0"] * 4


async def test_a_halted_rollout_is_called_out_and_says_why(cp):
    _agents, tasks = await start_pool(cp, "web", 4, "1.0.0", bad_versions={"3.0.0": "crash"})
    app = dashboard(cp, cp.user("wall", "viewer"))
    try:
        rid = await start(cp, pool="web", version="3.0.0", canaries=1, soak_s=1, wave=2)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(
                pilot,
                lambda: rid in app.model.rollouts and app.model.rollouts[rid].state == "halted",
                timeout=60,
                what="the halt",
            )
            await until(pilot, lambda: "✗ 1 rollout halted" in app.sub_title, what="the badge")
            await pilot.press("R")
            await wait_for_text(
                pilot, app, "✗ halted   web → 3.0.0", "web-01 (canary) rolled back: 3.0.0 exited"
            )
            await wait_for_text(pilot, app, "canary  ▓▓▓▓▓▓▓▓▓▓  0/1  1 failed")
            # A viewer sees it all and is told why it cannot abort.
            await pilot.press("x")
            await pilot.pause()
            assert isinstance(app.screen, RolloutsScreen)
            assert any("Abort rollout needs the operator role" in n for n in notices(app))
    finally:
        await stop_all(tasks)
