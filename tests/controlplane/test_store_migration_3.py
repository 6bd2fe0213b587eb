"""Schema step 3: alerts get a flap count; a version-2 database keeps its alerts
(SQLite and PostgreSQL)."""

from __future__ import annotations

from controlplane.store.base import AlertRecord


async def test_a_version_2_database_keeps_its_alerts_and_counts_flaps(backend):
    steps = backend.steps
    old = backend.make(steps[:2])
    await old.open()
    await old.close()
    await backend.execute(
        "INSERT INTO alerts (id, kind, severity, target, message, raised_at, cleared_at)"
        " VALUES ('a1', 'offline', 'critical', 'agent-1', 'agent is offline', 100.0, NULL)"
    )

    store = backend.make(steps[:3])
    await store.open()
    assert [step.version for step in store.applied] == [3]
    [alert] = await store.list_alerts(include_cleared=False)
    assert alert == AlertRecord("a1", "offline", "critical", "agent-1", "agent is offline", 100.0)
    assert alert.flaps == 0
    alert.flaps = 2
    await store.save_alerts([alert, AlertRecord("a2", "stale", "warning", "agent-2", "m", 5.0)])
    await store.close()

    again = backend.make(steps[:3])
    await again.open()
    assert again.applied == []
    by_id = {a.id: a for a in await again.list_alerts(include_cleared=True)}
    assert by_id["a1"].flaps == 2 and by_id["a1"].raised_at == 100.0
    assert by_id["a2"].flaps == 0
    await again.close()
