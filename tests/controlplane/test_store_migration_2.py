"""Step 2 (lifecycle columns) upgrades a version-1 database, once, losing nothing;
on SQLite and PostgreSQL."""

from __future__ import annotations

import time

from controlplane.store.base import OperatorRecord


async def first_schema_db(backend) -> float:
    created = time.time() - 100
    old = backend.make(backend.steps[:1])
    await old.open()
    await old.close()
    await backend.execute(
        "INSERT INTO operators (name, role, token_hash, created_at) VALUES (?, ?, ?, ?)",
        "admin",
        "admin",
        "h1",
        created,
    )
    await backend.execute(
        "INSERT INTO tokens (id, token_hash, pool, labels, created_at, expires_at,"
        " uses_total, uses_left, created_by) VALUES ('t1', 'h2', 'p', '{}', 1, 2, 1, 1, 'x')"
    )
    await backend.execute(
        "INSERT INTO audit (at, actor, action, target, result, detail)"
        " VALUES (1, 'admin', 'a', 't', 'ok', '')"
    )
    return created


async def test_an_old_database_is_upgraded_and_keeps_its_rows(backend):
    created = await first_schema_db(backend)
    assert await backend.version() == 1
    store = backend.make()
    await store.open()
    assert store.applied[0].version == 2  # then any later steps
    [admin] = await store.list_operators()
    assert admin == OperatorRecord("admin", "admin", "h1", created, "", None, None)
    [token] = await store.list_tokens()
    assert token.id == "t1" and token.revoked_at is None
    assert [e.action for e in await store.list_audit(10, actor="admin")] == ["a"]
    await store.revoke_token("t1", 5.0)
    await store.save_operators_last_used([("admin", 7.0)])
    await store.close()

    again = backend.make()  # a second open must not apply the step twice
    await again.open()
    assert again.applied == []
    [admin] = await again.list_operators()
    assert admin.last_used_at == 7.0
    assert (await again.list_tokens())[0].revoked_at == 5.0
    await again.close()
