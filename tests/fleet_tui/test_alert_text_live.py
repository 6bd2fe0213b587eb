"""Alert text on the dashboard is for people (issue 9, point 7): a connection whose
two pools have no healthy agent reads ``no healthy agent in pools legacy, legacy-dr``
in the alerts panel of a dashboard on a real control plane, never Python's list
syntax (``pools ['legacy']``, as a real user's session found)."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList

from .helpers import wait_for_text
from .test_live import live_app, until

pytestmark = pytest.mark.timeout(60)


async def test_the_alerts_panel_names_the_pools_in_words(control_plane, tmp_path):
    async with control_plane.aapi() as api:
        for name, pools in (("legacy-db", ["legacy", "legacy-dr"]), ("old-db", ["legacy"])):
            body = {"name": name, "host": "127.0.0.1", "port": 5432, "pools": pools}
            created = await api.post("/v1/connections", json=body)
            assert created.status_code == 201, created.text
    app = live_app(control_plane, tmp_path)
    async with app.run_test(size=(160, 40)) as pilot:
        await until(pilot, lambda: len(app.model.alerts) == 2, what="both alerts")
        # Each alert is one option of the panel's list (wrapped on screen).
        alerts = app.screen.query_one("#alerts-list", OptionList)

        def shown() -> list[str]:
            return [str(alerts.get_option_at_index(i).prompt) for i in range(alerts.option_count)]

        await until(pilot, lambda: len(shown()) == 2, what="both alerts in the panel")
        lines = sorted(line.split("  ", 1)[1] for line in shown())
        assert lines == [
            "connection legacy-db: no healthy agent in pools legacy, legacy-dr",
            "connection old-db: no healthy agent in pool legacy",
        ]
        await wait_for_text(pilot, app, "connection legacy-db: no healthy agent in")
