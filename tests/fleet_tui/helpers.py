"""Reading what the user sees, as plain text."""

from __future__ import annotations

from textual.app import App
from textual.widgets import Static

from fleet_tui.widgets.agents import FleetTable


def table_lines(table: FleetTable) -> list[str]:
    """Every line the fleet table shows on screen, as text."""
    height = table.scrollable_content_region.height
    return [table.render_line(y).text.rstrip() for y in range(height)]


def static_text(app: App[object], selector: str) -> str:
    """The plain text of a Static (or Label) on the current screen."""
    return str(app.screen.query_one(selector, Static).visual)


def screen_text(app: App[object]) -> str:
    """Everything on the current screen, as text (via the compositor)."""
    height = app.size.height
    lines = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in lines[:height])


async def wait_for_text(pilot, app: App[object], *needles: str, timeout: float = 10.0) -> str:
    """Let the app run until every needle is on screen; returns the screen text."""
    import time

    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = screen_text(app)
        if all(needle in text for needle in needles):
            return text
        await pilot.pause(0.05)
    raise AssertionError(f"{needles!r} not all on screen:\n{text}")
