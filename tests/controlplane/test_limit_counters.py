"""The counters behind the limits, with explicit clocks."""

from __future__ import annotations

import timeit

from controlplane.limits import (
    FailureCounter,
    PendingConnections,
    RefusalAudit,
    TokenBucket,
    address_of,
)


def test_a_token_bucket_allows_its_burst_then_its_rate():
    bucket = TokenBucket(rate=10.0, burst=5)
    now = bucket.stamp
    assert [bucket.take(now) for _ in range(6)] == [True] * 5 + [False]
    assert bucket.take(now + 0.11)  # one token back after 1/rate
    assert not bucket.take(now + 0.11)
    assert sum(bucket.take(now + 100 + i * 1e-6) for i in range(10)) == 5  # capped at burst


def test_taking_a_token_is_cheap():
    bucket = TokenBucket(rate=1e9, burst=1e9)
    seconds = min(timeit.repeat(lambda: bucket.take(1.0), number=100_000, repeat=3)) / 100_000
    assert seconds < 5e-6, seconds  # a heartbeat's whole handling costs tens of µs


def test_failures_lock_an_address_until_its_window_ends():
    counter = FailureCounter(limit=3, window_s=60)
    for _ in range(3):
        assert counter.retry_after("10.0.0.1", 0.0) is None
        counter.fail("10.0.0.1", 0.0)
    assert counter.retry_after("10.0.0.1", 20.0) == 40.0
    assert counter.retry_after("10.0.0.2", 20.0) is None
    assert counter.retry_after("10.0.0.1", 60.0) is None


def test_failures_track_a_bounded_number_of_addresses():
    counter = FailureCounter(limit=1, window_s=60)
    for i in range(FailureCounter.MAX_ADDRESSES + 50):
        counter.fail(f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}", 0.0)
    assert len(counter._windows) <= FailureCounter.MAX_ADDRESSES


def test_pending_connections_are_capped_per_address():
    pending = PendingConnections(cap=2)
    assert pending.acquire("a") and pending.acquire("a") and not pending.acquire("a")
    assert pending.acquire("b")
    pending.release("a")
    assert pending.acquire("a")


def test_address_of_a_peer():
    assert address_of("127.0.0.1:5000") == "127.0.0.1"
    assert address_of("[::1]:5000") == "::1"
    assert address_of(None) == "?"


async def test_refusals_are_one_row_per_key_with_a_count():
    rows: list[tuple[str, str, str, str, str]] = []

    async def write(actor: str, action: str, target: str, result: str, detail: str) -> None:
        rows.append((actor, action, target, result, detail))

    audit = RefusalAudit(write, window_s=60)
    for _ in range(7):
        audit.note("anonymous", "enroll", "10.0.0.1", "unknown token")
    audit.note("anonymous", "enroll", "10.0.0.2", "unknown token")
    await audit.flush(everything=False)
    assert rows == []  # the window has not ended
    await audit.flush()
    assert sorted(r[2] for r in rows) == ["10.0.0.1", "10.0.0.2"]
    assert "(7 times in 0 s)" in next(r[4] for r in rows if r[2] == "10.0.0.1")
    assert "(once in 0 s)" in next(r[4] for r in rows if r[2] == "10.0.0.2")


async def test_refusals_from_too_many_addresses_share_one_row():
    rows: list[str] = []

    async def write(actor: str, action: str, target: str, result: str, detail: str) -> None:
        rows.append(target)

    audit = RefusalAudit(write, window_s=60)
    for i in range(RefusalAudit.MAX_TALLIES + 100):
        audit.note("anonymous", "http.auth", f"addr-{i}", "bad token")
    await audit.flush()
    assert len(rows) == RefusalAudit.MAX_TALLIES + 1 and "*" in rows
