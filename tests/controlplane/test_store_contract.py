"""Every method of the Store, on SQLite and on PostgreSQL: the same records back, in
the same order, with the same filters, conflicts and transactions."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import pytest

from controlplane.errors import Conflict, StoreError
from controlplane.store.base import (
    AckRecord,
    AgentRecord,
    AlertRecord,
    AuditRecord,
    ConnectionRecord,
    MaintenanceRecord,
    OperatorRecord,
    PinRecord,
    PoolRecord,
    ScheduleRecord,
    SilenceRecord,
    TokenRecord,
)


def agent(i: int, name: str | None = None, **kw) -> AgentRecord:
    return AgentRecord(
        f"ag_{i}", name or f"edge-{i}", "edge", {"zone": "a", "tier": "1"}, 10.0 + i, f"s{i}", 99.5,
        **kw,
    )  # fmt: skip


async def test_agents_round_trip_sorted_by_name_bytewise(store):
    # Byte order, as SQLite's BINARY: upper case before lower, '-' before letters.
    for i, name in enumerate(["web-b", "Web-a", "web", "db-1", "db_1", "dé-1"]):
        await store.add_agent(agent(i, name))
    assert [a.name for a in await store.list_agents()] == [
        "Web-a",
        "db-1",
        "db_1",
        "dé-1",
        "web",
        "web-b",
    ]
    with pytest.raises(Conflict, match="already exists"):
        await store.add_agent(agent(0, "again"))
    [first] = [a for a in await store.list_agents() if a.id == "ag_0"]
    assert first == agent(0, "web-b")


async def test_status_is_written_in_one_batch_and_read_back_as_json(store):
    for i in range(3):
        await store.add_agent(agent(i))
    status = {
        "version": "1.2.3",
        "last_heartbeat": 1234.5,
        "samples": [{"cpu": 0.25, "rss": 31_000_000}],
        "nested": {"ok": True, "none": None, "big": 2**53},
        "text": "naïve ✓",
    }
    await store.save_agent_status([("ag_0", status), ("ag_2", {"version": "2"}), ("gone", {})])
    await store.save_agent_status([])
    by_id = {a.id: a for a in await store.list_agents()}
    assert by_id["ag_0"].status == status
    assert by_id["ag_1"].status == {}
    assert by_id["ag_2"].status == {"version": "2"}


async def test_a_nul_or_an_infinity_from_an_agent_does_not_stop_the_fleets_flush(backend, store):
    for i in range(3):
        await store.add_agent(agent(i))
    await store.save_agent_status(
        [
            ("ag_0", {"v": "a\x00b", "k\x00": 1}),
            ("ag_1", {"skew_ms": float("inf"), "samples": [float("nan"), 1.5]}),
            ("ag_2", {"v": "ok", "path": "C:\\u0000"}),
        ]
    )
    by_id = {a.id: a.status for a in await store.list_agents()}
    assert by_id["ag_2"] == {"v": "ok", "path": "C:\\u0000"}
    if backend.name == "sqlite":
        assert by_id["ag_0"] == {"v": "a\x00b", "k\x00": 1}
        assert by_id["ag_1"]["skew_ms"] == float("inf")
    else:  # jsonb cannot hold them: a replacement character, null
        assert by_id["ag_0"] == {"v": "a\ufffdb", "k\ufffd": 1}
        assert by_id["ag_1"] == {"skew_ms": None, "samples": [None, 1.5]}


async def test_certificates_revocation_supersession_and_deletion(store):
    await store.add_agent(agent(1))
    await store.add_certificate("s1", "ag_1", 100.0)
    await store.add_certificate("s2", "ag_1", 200.0, pending=True)
    assert await store.pending_serials() == {"s2"}
    assert await store.supersede_certificates("ag_1", "s2", 50.0) == ["s1"]
    assert await store.pending_serials() == set()
    assert await store.revoked_serials() == {"s1"}
    assert await store.revoked_serials(valid_at=150.0) == set()  # s1 expired by then
    [a] = await store.list_agents()
    assert (a.cert_serial, a.cert_not_after) == ("s2", 200.0)
    await store.set_agent_cert("ag_1", "s3", 300.0)
    [a] = await store.list_agents()
    assert (a.cert_serial, a.cert_not_after) == ("s3", 300.0)
    await store.revoke_agent("ag_1", 60.0)
    assert (await store.list_agents())[0].revoked
    assert await store.revoked_serials() == {"s1", "s2"}
    await store.set_pin(PinRecord("agent", "ag_1", "1.0", None, 1.0, "admin"))
    await store.add_disconnects([("ag_1", [{"cause": "reset"}])], 50)
    await store.delete_agent("ag_1")
    assert await store.list_agents() == []
    assert await store.list_pins() == []
    assert await store.list_disconnects("ag_1", 50) == []
    assert await store.revoked_serials() == {"s1", "s2"}  # still refused


async def test_supersession_is_all_or_nothing(store):
    await store.add_agent(agent(1))
    await store.add_certificate("s1", "ag_1", 100.0)
    # "nope" was never issued: the agent's not_after would be NULL, which is refused,
    # and nothing of the supersession may stay.
    with pytest.raises(Conflict):
        await store.supersede_certificates("ag_1", "nope", 50.0)
    assert await store.revoked_serials() == set()
    assert (await store.list_agents())[0].cert_serial == "s1"


async def test_tokens(store):
    t = TokenRecord("t1", "h1", "edge", {"a": "b"}, 5.0, 500.0, 2, 2, "admin")
    await store.add_token(t)
    await store.add_token(replace(t, id="t0", token_hash="h0", created_at=1.0))
    with pytest.raises(Conflict):
        await store.add_token(replace(t, id="t9"))  # the same hash
    assert await store.get_token("h1") == t
    assert await store.get_token("nope") is None
    assert [x.id for x in await store.list_tokens()] == ["t0", "t1"]
    assert await store.use_token("t1")
    assert await store.use_token("t1")
    assert not await store.use_token("t1")
    assert not await store.use_token("missing")
    await store.revoke_token("t1", 7.0)
    await store.revoke_token("t1", 9.0)  # the first revocation stays
    got = await store.get_token("h1")
    assert (got.uses_left, got.revoked_at, got.state(10.0)) == (0, 7.0, "revoked")


async def test_operators(store):
    bob = OperatorRecord("bob", "viewer", "hb", 2.0, "admin")
    await store.add_operator(bob)
    await store.add_operator(OperatorRecord("Alice", "admin", "ha", 1.0))
    with pytest.raises(Conflict):
        await store.add_operator(replace(bob, token_hash="other"))
    await store.replace_operator(replace(bob, role="operator", token_hash="hb2"))
    await store.save_operators_last_used([("bob", 8.0), ("ghost", 9.0)])
    await store.save_operators_last_used([])
    assert await store.list_operators() == [
        OperatorRecord("Alice", "admin", "ha", 1.0, "", None, None),
        OperatorRecord("bob", "operator", "hb2", 2.0, "admin", 8.0, None),
    ]


async def test_pins_pools_and_connections(store):
    await store.set_pin(PinRecord("pool", "edge", "1.0", {"max_queue": 8}, 1.0, "a"))
    await store.set_pin(PinRecord("pool", "edge", None, None, 2.0, "b"))
    assert await store.list_pins() == [PinRecord("pool", "edge", None, None, 2.0, "b")]
    await store.delete_pin("pool", "edge")
    assert await store.list_pins() == []

    policy = {"allow_hosts": ["*.db.internal"], "allow_ports": [5432]}
    await store.set_pool(PoolRecord("edge", policy))
    await store.set_pool(PoolRecord("edge", policy, min_healthy=2))
    assert await store.list_pools() == [PoolRecord("edge", policy, 2)]
    await store.delete_pool("edge")
    assert await store.list_pools() == []

    nightly = ScheduleRecord("0 2 * * *", "Europe/Berlin", "nightly")
    pg = ConnectionRecord("pg", "pg.internal", 5432, ["edge", "db"], 3.0, [nightly])
    await store.add_connection(pg)
    await store.add_connection(ConnectionRecord("MQ", "mq", 5672, [], 4.0))
    with pytest.raises(Conflict):
        await store.add_connection(pg)
    await store.update_connection(replace(pg, port=6432, schedules=[]))
    assert await store.list_connections() == [
        ConnectionRecord("MQ", "mq", 5672, [], 4.0, []),
        replace(pg, port=6432, schedules=[]),
    ]
    await store.delete_connection("MQ")
    assert [c.name for c in await store.list_connections()] == ["pg"]


async def test_alerts_newest_first_and_all_or_none(store):
    old = AlertRecord("a1", "stale", "warning", "ag_1", "stale", 10.0)
    new = AlertRecord("a2", "offline", "critical", "ag_2", "offline", 20.0)
    await store.save_alert(old)
    await store.save_alerts([new, replace(old, cleared_at=30.0, flaps=2)])
    assert await store.list_alerts(include_cleared=False) == [new]
    assert await store.list_alerts(include_cleared=True) == [
        new,
        replace(old, cleared_at=30.0, flaps=2),
    ]
    bad = AlertRecord("a3", "x", "warning", "t", "m", None)  # type: ignore[arg-type]
    with pytest.raises(Conflict):
        await store.save_alerts([AlertRecord("a4", "x", "info", "t", "m", 1.0), bad])
    assert {a.id for a in await store.list_alerts(include_cleared=True)} == {"a1", "a2"}


async def test_disconnects_trimmed_per_agent(store):
    await store.add_disconnects([("a", [{"n": i} for i in range(5)]), ("b", [{"n": 0}])], 3)
    await store.add_disconnects([], 3)
    assert await store.list_disconnects("a", 10) == [{"n": 2}, {"n": 3}, {"n": 4}]
    assert await store.list_disconnects("a", 2) == [{"n": 3}, {"n": 4}]
    assert await store.list_disconnects("b", 10) == [{"n": 0}]


async def test_acks_silences_and_windows(store):
    ack = AckRecord("a1", "alice", "on it", 5.0, 50.0)
    await store.save_ack(ack)
    await store.save_ack(replace(ack, note="still"))
    assert await store.list_acks() == [replace(ack, note="still")]
    await store.delete_ack("a1")
    assert await store.list_acks() == []

    later = SilenceRecord("s2", 20.0, 200.0, "", "bob", 1.0, agent="ag_1", kind="stale")
    ended = SilenceRecord("s1", 10.0, 50.0, "patch", "alice", 1.0, pool="edge")
    for s in (later, ended):
        await store.save_silence(s)
    assert await store.list_silences(None) == [ended, later]
    assert await store.list_silences(100.0) == [later]
    await store.save_silence(replace(later, deleted_at=30.0, deleted_by="carol"))
    assert await store.list_silences(100.0) == []
    assert [s.id for s in await store.list_silences(None)] == ["s1", "s2"]

    window = MaintenanceRecord("m1", "pool", "edge", 5.0, 60.0, "move", "bob", 1.0)
    await store.save_maintenance(window)
    assert await store.list_maintenance(59.0) == [window]
    assert await store.list_maintenance(60.0) == []
    assert await store.list_maintenance(None) == [window]


async def test_documents(store):
    await store.put_document("rollout", "b", {"state": "running", "waves": [1, 2]}, 2.0)
    await store.put_document("rollout", "a", {"state": "done"}, 2.0)
    await store.put_document("rollout", "c", {"state": "paused"}, 1.0)
    await store.put_document("release", "1.0", {"sha256": "x"}, 0.5)
    assert await store.get_document("rollout", "b") == {"state": "running", "waves": [1, 2]}
    assert await store.get_document("rollout", "zz") is None
    # Oldest change first, then by key.
    assert [k for k, _ in await store.list_documents("rollout")] == ["c", "a", "b"]
    await store.put_document("rollout", "c", {"state": "running"}, 3.0)
    assert await store.list_documents("rollout") == [
        ("a", {"state": "done"}),
        ("b", {"state": "running", "waves": [1, 2]}),
        ("c", {"state": "running"}),
    ]
    await store.delete_document("rollout", "a")
    assert [k for k, _ in await store.list_documents("rollout")] == ["b", "c"]


async def test_audit_newest_first_filtered_by_the_store(store):
    for i in range(6):
        actor = "alice" if i % 2 else "bob"
        await store.audit(AuditRecord(float(i), actor, f"act{i}", "t", "ok", f"d{i}"))
    assert [a.action for a in await store.list_audit(3)] == ["act5", "act4", "act3"]
    assert [a.action for a in await store.list_audit(10, actor="alice")] == [
        "act5",
        "act3",
        "act1",
    ]
    assert [a.action for a in await store.list_audit(10, since=2.0, actor="bob")] == [
        "act4",
        "act2",
    ]
    assert (await store.list_audit(1, since=5.0))[0] == AuditRecord(
        5.0, "alice", "act5", "t", "ok", "d5"
    )
    assert await store.list_audit(10, actor="nobody") == []


async def test_one_control_plane_claims_a_store_and_gives_it_back_when_it_closes(store, backend):
    """SQLite: two control planes on one file would each write the fleet as they see
    it, so the second to claim it is refused, naming the first, until the first closes.
    PostgreSQL: replicas share it (both claims pass), and one of them at a time holds
    the lead lock, which passes on when its session ends."""
    await store.claim()
    second = backend.make()
    await second.open()
    try:
        if backend.name == "postgresql":
            await second.claim()
            first_session, second_session = await store.session(), await second.session()
            try:
                assert await store.try_lead(first_session)
                assert not await second.try_lead(second_session)
                await first_session.close()
                await wait_until(lambda: second.try_lead(second_session))
            finally:
                await second_session.close()
            return
        with pytest.raises(StoreError, match="another control plane") as refused:
            await second.claim()
        assert "docs/scaling.md" in str(refused.value)
        assert f"pid {os.getpid()}" in str(refused.value)
        await store.close()
        await second.claim()
    finally:
        await second.close()


async def wait_until(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "not within the time"
        await asyncio.sleep(0.1)
