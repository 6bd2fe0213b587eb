"""The command palette jumps to an agent by name, pool or id."""

from __future__ import annotations

import time

from textual.command import CommandPalette

from fleet_tui.commands import AgentCommands
from fleet_tui.screens.agent_detail import AgentDetailScreen

from .conftest import sample_app
from .helpers import screen_text


async def _open_via_palette(pilot, app, typed: str) -> None:
    await pilot.press("ctrl+p")
    await pilot.pause()
    assert isinstance(app.screen, CommandPalette)
    await pilot.press(*typed)
    # The palette searches in the background: wait for the hit, then choose it.
    deadline = time.monotonic() + 10
    while "open the agent's detail" not in screen_text(app):
        assert time.monotonic() < deadline, screen_text(app)
        await pilot.pause(0.05)
    await pilot.press("enter")
    await pilot.pause(0.2)


async def test_typing_part_of_an_agents_name_opens_its_detail():
    app = sample_app(role="viewer")
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await _open_via_palette(pilot, app, "etl0048")
        assert isinstance(app.screen, AgentDetailScreen)
        assert app.model.agents[app.screen.agent_id].name == "etl-0048"


async def test_an_agent_is_found_by_its_id_too():
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        await _open_via_palette(pilot, app, "ag-00017")
        assert isinstance(app.screen, AgentDetailScreen)
        assert app.screen.agent_id == "ag-00017"


async def test_the_palette_lists_the_least_healthy_agents_before_anything_is_typed():
    # Asked of the provider itself: where its hits fall among the other providers'
    # in the palette's list depends on which answers first.
    app = sample_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        provider = AgentCommands(app.screen)
        hits = [hit async for hit in provider.discover()]
        assert [str(h.display).split()[0] for h in hits] == [
            "build-us-0006",  # offline
            "build-us-0001",  # stale
            "build-eu-0005",  # then the degraded ones, by name
            "deploy-0002",
            "edge-0004",
            "etl-0003",
        ]
        assert hits[0].help == "✗ offline · open the agent's detail"
        hits[0].command()
        await pilot.pause()
        assert isinstance(app.screen, AgentDetailScreen) and app.screen.agent_id == "ag-00006"
