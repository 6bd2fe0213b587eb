"""A pool's minimum lifted (set to 0) clears the below-minimum alert raised under it."""

from __future__ import annotations

from tests.helpers.server import RunningServer, wait_for


def test_lifting_a_pools_minimum_clears_its_alert(control_plane: RunningServer) -> None:
    def below_min() -> list[dict]:
        with control_plane.api() as api:
            alerts = api.get("/v1/alerts").json()
        return [a for a in alerts if a["kind"] == "pool_below_min" and a["target"] == "pool:web"]

    control_plane.set_policy("web", allow_ports=[443], min_healthy=1)
    wait_for(below_min, 10, 0.1, "the pool below its minimum")
    control_plane.set_policy("web", allow_ports=[443], min_healthy=0)
    wait_for(lambda: not below_min(), 10, 0.1, "the alert cleared")
