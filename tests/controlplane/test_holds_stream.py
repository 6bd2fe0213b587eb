"""Silences and maintenance windows on the event stream: in every snapshot, and a
``holds`` update each time one is made, ended or over (the dashboard's held-back view
no longer polls REST for them)."""

from __future__ import annotations

import time

from fleet.protocol import HoldsUpdate, Snapshot
from tests.helpers.server import RunningServer
from tests.helpers.stream import next_event, subscribe


async def test_holds_come_in_the_snapshot_and_as_updates(control_plane: RunningServer) -> None:
    ws = await subscribe(control_plane)
    first = await next_event(ws)
    assert isinstance(first, Snapshot) and first.holds == []
    async with control_plane.aapi() as api:
        silence = await api.post(
            "/v1/silences",
            json={"pool": "etl", "kind": "stale", "duration_s": 3600, "reason": "migration"},
        )
        silence.raise_for_status()
        made = await next_event(ws, lambda m: isinstance(m, HoldsUpdate))
        assert isinstance(made, HoldsUpdate)
        [held] = made.holds
        assert (held.kind, held.what, held.reason, held.created_by) == (
            "silence",
            "pool=etl kind=stale",
            "migration",
            "admin",
        )
        window = await api.post(
            "/v1/maintenance",
            json={"pool": "etl", "starts_at": time.time() + 600, "duration_s": 60},
        )
        window.raise_for_status()
        both = await next_event(ws, lambda m: isinstance(m, HoldsUpdate))
        assert isinstance(both, HoldsUpdate)
        assert [(h.kind, h.what) for h in both.holds] == [
            ("maintenance", "pool etl"),
            ("silence", "pool=etl kind=stale"),
        ]
        # A dashboard that subscribes now gets them in its snapshot.
        late = await subscribe(control_plane)
        snap = await next_event(late)
        assert isinstance(snap, Snapshot) and snap.holds == both.holds
        await late.close()
        (await api.delete(f"/v1/silences/{silence.json()['id']}")).raise_for_status()
        ended = await next_event(ws, lambda m: isinstance(m, HoldsUpdate))
        assert isinstance(ended, HoldsUpdate)
        assert [h.kind for h in ended.holds] == ["maintenance"]
    await ws.close()
