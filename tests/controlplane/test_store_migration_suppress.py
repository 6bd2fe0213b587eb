"""Schema step "acknowledgements, silences, maintenance": a version-3 database upgrades,
and the three kinds of record round-trip (deletions kept, ended ones listed with all);
on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace

from controlplane.store.base import AckRecord, MaintenanceRecord, SilenceRecord


async def test_a_version_3_database_gets_acks_silences_and_windows(backend):
    old = backend.make(backend.steps[:3])
    await old.open()
    await old.close()

    store = backend.make()
    await store.open()
    assert any(s.description.startswith("acknowledgements") for s in store.applied)
    ack = AckRecord("a1", "alice", "on it", 100.0, None)
    await store.save_ack(ack)
    await store.save_ack(replace(ack, note="still on it"))
    silence = SilenceRecord("sil_1", 100.0, 200.0, "patching", "alice", 99.0, pool="etl")
    ended = SilenceRecord("sil_2", 10.0, 50.0, "", "bob", 9.0, kind="stale")
    await store.save_silence(silence)
    await store.save_silence(ended)
    window = MaintenanceRecord("mnt_1", "pool", "etl", 100.0, 300.0, "move", "bob", 99.0)
    await store.save_maintenance(window)
    await store.close()

    again = backend.make()
    await again.open()
    assert again.applied == []
    assert await again.list_acks() == [replace(ack, note="still on it")]
    assert await again.list_silences(ended_after=150.0) == [silence]
    assert [s.id for s in await again.list_silences(ended_after=None)] == ["sil_2", "sil_1"]
    await again.save_silence(replace(silence, deleted_at=160.0, deleted_by="carol"))
    assert await again.list_silences(ended_after=150.0) == []
    assert await again.list_maintenance(ended_after=150.0) == [window]
    await again.delete_ack("a1")
    assert await again.list_acks() == []
    await again.close()
