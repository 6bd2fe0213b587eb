"""The probe form keeps every key of a burst, in order, and Enter submits.

A terminal delivers fast typing (or a paste of keys) as one read: Textual posts
the keys one after another without waiting for any to be handled.  ``burst``
does the same; ``pilot.press`` waits for each key, so both are tried.
"""

from __future__ import annotations

import pytest
from textual import events

from fleet_tui.app import FleetApp
from fleet_tui.client import ProbeRequest
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.probe import ProbeModal

from .conftest import sample_app

_CHARS = {"tab": "\t", "enter": "\r", "space": " "}


def burst(app: FleetApp, keys: list[str]) -> None:
    """Post ``keys`` as a terminal driver does: all at once, none waited for."""
    for key in keys:
        name = "full_stop" if key == "." else key  # as Textual names the key
        app.post_message(events.Key(name, _CHARS.get(key, key if len(key) == 1 else None)))


def recording_app() -> tuple[FleetApp, list[ProbeRequest]]:
    app = sample_app()
    sent: list[ProbeRequest] = []
    app._probe = lambda agent, request: sent.append(request)  # type: ignore[method-assign]
    return app, sent


TYPED = [*"127.0.0.1", "tab", *"42409", "enter"]
WITH_TLS = [*"db.internal", "tab", *"5432", "tab", "space", "enter"]


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (TYPED, ProbeRequest(host="127.0.0.1", port=42409, tls=False)),
        (WITH_TLS, ProbeRequest(host="db.internal", port=5432, tls=True)),
    ],
)
@pytest.mark.parametrize("how", ["burst", "pilot.press"])
async def test_a_burst_of_keys_fills_host_and_port_and_submits(keys, expected, how):
    app, sent = recording_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p")
        assert isinstance(app.screen, ProbeModal)
        if how == "burst":
            burst(app, keys)
        else:
            await pilot.press(*keys)
        for _ in range(40):
            if sent:
                break
            await pilot.pause(0.05)
        assert sent == [expected]
        assert isinstance(app.screen, FleetScreen)


async def test_enter_on_the_tls_box_submits_and_space_toggles_it():
    app, sent = recording_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p", *"db", "tab", *"5432", "tab")
        modal = app.screen
        assert isinstance(modal, ProbeModal)
        assert modal.focused is not None and modal.focused.id == "probe-tls"
        await pilot.press("space")
        assert modal.query_one("#probe-tls").value is True
        await pilot.press("enter")
        await pilot.pause()
        assert sent == [ProbeRequest(host="db", port=5432, tls=True)]


async def test_enter_on_cancel_still_cancels():
    app, sent = recording_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("p", *"db", "tab", *"5432", "tab", "tab", "enter")
        await pilot.pause()
        assert sent == [] and isinstance(app.screen, FleetScreen)
