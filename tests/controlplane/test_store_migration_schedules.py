"""Schema step "connections' schedules": a database from before it keeps its
connections, each with no schedule, and stores schedules from then on (SQLite and
PostgreSQL)."""

from __future__ import annotations

from controlplane.store.base import ConnectionRecord, ScheduleRecord
from controlplane.store.sqlite import MIGRATIONS

# Found by its description: the step's number is set when branches merge.
STEP = next(i for i, m in enumerate(MIGRATIONS) if m.description == "connections' schedules")


async def test_connections_from_before_keep_theirs_and_get_schedules(backend):
    steps = backend.steps
    old = backend.make(steps[:STEP])
    await old.open()
    await old.close()
    await backend.execute(
        "INSERT INTO connections (name, host, port, pools, created_at)"
        " VALUES ('pg', '127.0.0.1', 5432, '[\"db\"]', 100.0)"
    )

    store = backend.make(steps[: STEP + 1])
    await store.open()
    assert [step.version for step in store.applied] == [steps[STEP].version]
    [conn] = await store.list_connections()
    assert conn == ConnectionRecord("pg", "127.0.0.1", 5432, ["db"], 100.0, [])
    conn.schedules = [ScheduleRecord("0 14 * * *", "Europe/Berlin", "nightly")]
    await store.update_connection(conn)
    await store.add_connection(
        ConnectionRecord("mq", "127.0.0.1", 5672, ["q"], 5.0, [ScheduleRecord("@hourly", "UTC")])
    )
    await store.close()

    again = backend.make(steps[: STEP + 1])
    await again.open()
    by_name = {c.name: c for c in await again.list_connections()}
    assert by_name["pg"].schedules == [ScheduleRecord("0 14 * * *", "Europe/Berlin", "nightly")]
    assert by_name["mq"].schedules == [ScheduleRecord("@hourly", "UTC", None)]
    await again.close()
