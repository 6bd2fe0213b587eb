"""Schema step 3: alerts get a flap count; a version-2 database keeps its alerts."""

from __future__ import annotations

from controlplane.store.base import AlertRecord
from controlplane.store.sqlite import MIGRATIONS, SQLiteStore


async def test_a_version_2_database_keeps_its_alerts_and_counts_flaps(tmp_path):
    path = tmp_path / "fleet.db"
    old = SQLiteStore(path, MIGRATIONS[:2])
    await old.open()
    await old.db.execute(
        "INSERT INTO alerts (id, kind, severity, target, message, raised_at, cleared_at)"
        " VALUES ('a1', 'offline', 'critical', 'agent-1', 'agent is offline', 100.0, NULL)"
    )
    await old.db.commit()
    await old.close()

    store = SQLiteStore(path, MIGRATIONS[:3])
    await store.open()
    assert [step.version for step in store.applied] == [3]
    [alert] = await store.list_alerts(include_cleared=False)
    assert alert == AlertRecord("a1", "offline", "critical", "agent-1", "agent is offline", 100.0)
    assert alert.flaps == 0
    alert.flaps = 2
    await store.save_alerts([alert, AlertRecord("a2", "stale", "warning", "agent-2", "m", 5.0)])
    await store.close()

    again = SQLiteStore(path, MIGRATIONS[:3])
    await again.open()
    assert again.applied == []
    by_id = {a.id: a for a in await again.list_alerts(include_cleared=True)}
    assert by_id["a1"].flaps == 2 and by_id["a1"].raised_at == 100.0
    assert by_id["a2"].flaps == 0
    await again.close()
