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


class Recorder:
    """The control plane's REST side for fed-data tests: records each call the
    dashboard makes and answers it from ``answer`` (method, path, JSON body or None)
    -> (status, JSON).  The real :class:`~fleet_tui.client.RestClient` sends them,
    so paths, bodies and the handling of errors are the dashboard's own."""

    def __init__(self, answer):
        self.answer = answer
        self.calls: list[tuple[str, str, object]] = []

    def client(self):
        import json

        import httpx

        from fleet_tui.client import RestClient

        def handle(request: httpx.Request) -> httpx.Response:
            body = json.loads(request.content) if request.content else None
            self.calls.append((request.method, request.url.path, body))
            status, data = self.answer(request.method, request.url.path, body)
            return httpx.Response(status, json=data)

        return RestClient("https://cp.test", "token", None, transport=httpx.MockTransport(handle))


def notices(app: App[object]) -> list[str]:
    """The notifications shown so far, as text."""
    return [n.message for n in app._notifications]
