"""The replicas' outbox and leases on a real PostgreSQL (controlplane/replicas.py).

Sequence numbers commit in order, so a reader that reads ``seq > last`` over and over
while writers race never skips a batch; NOTIFY wakes a listener with the sequence
number only; each lease taken raises the agent's epoch; a change to a record is told
to the replicas before the change returns.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from controlplane import releases, remediation_policies, rollout_plan, window_book
from controlplane.replicas import DOCUMENT_KINDS
from controlplane.store.base import PinRecord
from controlplane.store.postgres import OUTBOX_CHANNEL, PostgresStore
from tests.helpers.postgres import throwaway_database


@pytest.fixture
async def store() -> AsyncIterator[PostgresStore]:
    with throwaway_database() as url:
        pg = PostgresStore(url, pool_size=4)
        await pg.open()
        try:
            yield pg
        finally:
            await pg.close()


async def test_a_reader_racing_the_writers_never_skips_a_batch(store: PostgresStore) -> None:
    writes = 150

    async def writer(name: str) -> None:
        for i in range(writes):
            await store.outbox_write(name, f'{{"n":{i}}}', 0.0)

    seen: list[int] = []
    last = 0
    done = asyncio.gather(*(writer(f"r{k}") for k in range(3)))
    while not done.done() or len(seen) < 3 * writes:
        for seq, _replica, _body in await store.outbox_read(last, 1000):
            seen.append(seq)
            last = seq
        await asyncio.sleep(0)
        if done.done() and not await store.outbox_read(last, 1):
            break
    await done
    everything = [seq for seq, _, _ in await store.outbox_read(0, 10_000)]
    assert len(everything) == 3 * writes
    assert seen == everything, "the reader skipped or reordered batches"


async def test_notify_carries_the_sequence_number_only(store: PostgresStore) -> None:
    listener = await store.session()
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(OUTBOX_CHANNEL, lambda *a: heard.put_nowait(a[3]))
    try:
        seq = await store.outbox_write("r1", '{"big":"' + "x" * 20_000 + '"}', 0.0)
        async with asyncio.timeout(5):
            assert await heard.get() == str(seq)
    finally:
        await listener.close()


async def test_each_lease_raises_the_epoch_and_names_the_holder(store: PostgresStore) -> None:
    assert await store.take_lease("ag_1", "replica-a") == 1
    assert await store.take_lease("ag_1", "replica-b") == 2
    assert await store.take_lease("ag_2", "replica-b") == 1
    assert await store.take_lease("ag_1", "replica-a") == 3


async def test_a_change_is_told_before_it_returns(store: PostgresStore) -> None:
    told: list[tuple[str, str]] = []

    async def changes(what: str, key: str) -> None:
        await asyncio.sleep(0.05)
        told.append((what, key))

    store.changes = changes
    await store.set_pin(PinRecord("pool", "db", "0.2.0", None, 1.0, "admin"))
    assert told == [("pins", "")]
    await store.add_certificate("s1", "ag_1", 2.0)
    assert told == [("pins", "")], "an enrollment's certificate is not news"
    await store.add_certificate("s2", "ag_1", 2.0, pending=True)
    assert told[-1] == ("certificates", "ag_1")


def test_the_replicas_reload_every_kind_of_shared_document() -> None:
    assert set(DOCUMENT_KINDS) == {
        releases.KIND,
        rollout_plan.KIND,
        window_book.KIND,
        remediation_policies.KIND,
    }
