"""The maintenance (and silence) dialog keeps every key of a burst in order: the scope, the start,
the duration and the reason reach their fields, and Enter submits where it is typed.

Typed in one burst before this, ``Tab 14:00 Enter`` planned a window from now (the
start went to the scope choice) and ``Down Enter Tab +1h`` submitted the first
scope from the start field.  ``burst`` posts keys as a terminal driver does;
``pilot.press`` waits for each: both are tried.
"""

from __future__ import annotations

import pytest

from fleet_tui.sample import NOW
from fleet_tui.screens.fleet import FleetScreen
from fleet_tui.screens.silence import (
    MaintenanceModal,
    MaintenanceRequest,
    SilenceModal,
    SilenceRequest,
)
from fleet_tui.widgets.alerts import AlertsPanel

from .conftest import sample_app
from .helpers import static_text
from .test_probe_form import burst


def recording_app():
    app = sample_app()
    sent: list[tuple[str, MaintenanceRequest]] = []
    app._allowed = lambda action: True  # no control plane behind the sample
    app._maintenance = lambda agent, request: sent.append((agent.name, request))
    return app, sent


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        (
            ["down", "tab", *"+30m", "tab", "tab", *"kernel", "enter"],
            MaintenanceRequest("pool", 3600.0, "kernel", NOW + 1800),
        ),
        (["down", "enter"], MaintenanceRequest("pool", 3600.0, "", None)),
        (
            ["tab", "tab", "backspace", "backspace", *"2h", "enter"],
            MaintenanceRequest("agent", 7200.0, "", None),
        ),
    ],
    ids=["start-and-reason", "enter-on-the-scope", "duration"],
)
@pytest.mark.parametrize("how", ["burst", "pilot.press"])
async def test_a_burst_fills_the_dialog_in_order(keys, expected, how):
    app, sent = recording_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("M")
        assert isinstance(app.screen, MaintenanceModal)
        if how == "burst":
            burst(app, keys)
        else:
            await pilot.press(*keys)
        for _ in range(40):
            if sent:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)  # the last keys' echoes reach the app before it stops
        assert [request for _, request in sent] == [expected]
        assert isinstance(app.screen, FleetScreen)


@pytest.mark.parametrize("how", ["burst", "pilot.press"])
async def test_a_start_without_a_date_is_refused_in_the_dialog(how):
    app, sent = recording_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("M")
        keys = ["tab", *"14:00", "enter"]
        if how == "burst":
            burst(app, keys)
        else:
            await pilot.press(*keys)
        for _ in range(40):
            if static_text(app, "#mnt-error"):
                break
            await pilot.pause(0.05)
        assert isinstance(app.screen, MaintenanceModal) and sent == []
        assert static_text(app, "#mnt-error").startswith("start: '14:00' has no date: write ")
        assert "from a start that is not a time yet" in static_text(app, "#mnt-does").lower()


@pytest.mark.parametrize("how", ["burst", "pilot.press"])
async def test_the_silence_dialog_takes_a_start_in_a_burst_too(how):
    app = sample_app()
    sent: list[SilenceRequest] = []
    app._allowed = lambda action: True
    app._silence = sent.append
    async with app.run_test(size=(160, 50)) as pilot:
        app.screen.query_one(AlertsPanel).focus_list()
        await pilot.press("Z")
        assert isinstance(app.screen, SilenceModal)
        keys = [*" kind=stale", "tab", *"+2h", "tab", "tab", *"patching", "enter"]
        if how == "burst":
            burst(app, keys)
        else:
            await pilot.press(*keys)
        for _ in range(40):
            if sent:
                break
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        [request] = sent
        assert request.matchers == {"agent": "build-us-0001", "kind": "stale"}
        assert (request.starts_at, request.duration_s, request.reason) == (
            NOW + 7200,
            7200.0,
            "patching",
        )
