"""The notifier against a real HTTP receiver on loopback: signatures, Slack text,
retries, the bounded queue, holds and escalations."""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.config import Settings
from controlplane.notify.notifier import Notifier
from controlplane.notify.signing import verify_signature
from fleet.protocol import AlertInfo
from tests.helpers.receiver import Receiver

SECRET = b"0123456789abcdef0123456789abcdef"
LABELS = {"agent": "etl-07", "agent_id": "ag_1", "pool": "db-east"}


def alert(
    id: str = "a1", severity: str = "warning", cleared_at: float | None = None, **kw: Any
) -> AlertInfo:
    fields: dict[str, Any] = {
        "kind": "stale",
        "target": "ag_1",
        "message": "no heartbeat since 03:00:00 UTC",
        "raised_at": time.time() - 5,
        **kw,
    }
    return AlertInfo(id=id, severity=severity, cleared_at=cleared_at, **fields)  # type: ignore[arg-type]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver().start()
    yield r
    r.stop()


def settings(tmp_path: Path, url: str, kind: str = "webhook", **extra: Any) -> Settings:
    entry: dict[str, Any] = {"name": "hook", "kind": kind, "url": url}
    if kind == "webhook":
        secret = tmp_path / "hook.secret"
        secret.write_bytes(SECRET + b"\n")
        secret.chmod(0o600)
        entry["secret_file"] = str(secret)
    values = {
        "receivers": [entry],
        "notify_backoff_s": 0.01,
        "notify_backoff_max_s": 0.05,
        "notify_timeout_s": 5,
        **extra,
    }
    return Settings(**values)


@pytest.fixture
async def running() -> AsyncIterator[list[Notifier]]:
    started: list[Notifier] = []
    yield started
    for n in started:
        await n.stop()


async def start(notifier: Notifier, running: list[Notifier]) -> Notifier:
    await notifier.start()
    running.append(notifier)
    return notifier


async def until(predicate: Any, what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def test_webhook_is_signed_and_a_replay_is_refused(tmp_path, receiver, running):
    n = await start(Notifier(settings(tmp_path, receiver.url + "/hook"), lambda a: LABELS), running)
    n.alert_changed(alert(), True)
    n.alert_changed(alert(severity="critical"), True)
    n.alert_changed(alert(severity="critical", cleared_at=time.time()), False)
    await until(lambda: len(receiver.requests) == 3, "three webhook requests")
    events = []
    for req in receiver.requests:
        stamp, signature = req.headers["X-Fleet-Timestamp"], req.headers["X-Fleet-Signature"]
        assert signature.startswith("sha256=")
        now = time.time()
        assert verify_signature(SECRET, stamp, req.body, signature, now)
        # A replay later than the tolerance, a changed body, another secret: refused.
        assert not verify_signature(SECRET, stamp, req.body, signature, now + 301)
        assert not verify_signature(SECRET, stamp, req.body + b" ", signature, now)
        assert not verify_signature(b"another secret!!", stamp, req.body, signature, now)
        assert not verify_signature(SECRET, "soon", req.body, signature, now)
        body = req.json()
        assert body["version"] == 1 and body["labels"] == LABELS
        assert set(body["alert"]) >= {"id", "kind", "severity", "target", "message", "raised_at"}
        assert isinstance(body["sent_at"], float)
        events.append((body["event"], body["alert"]["severity"]))
    assert events == [("raised", "warning"), ("escalated", "critical"), ("resolved", "critical")]
    assert SECRET.decode() not in str(receiver.requests[0].headers)
    [stats] = n.stats()
    assert (stats.delivered, stats.failed, stats.dropped, stats.queued) == (3, 0, 0, 0)


async def test_slack_gets_readable_text(tmp_path, receiver, running):
    n = await start(
        Notifier(
            settings(tmp_path, receiver.url + "/services/T/B/X", kind="slack"),
            lambda a: {"connection": "warehouse", "pools": "legacy,db-east"},
        ),
        running,
    )
    info = alert(
        kind="unroutable",
        target="connection:warehouse",
        severity="critical",
        message="no healthy agent in pools legacy, db-east",
    )
    n.alert_changed(info, True)
    n.alert_changed(alert(**{**_fields(info), "cleared_at": time.time()}), False)
    await until(lambda: len(receiver.requests) == 2, "two Slack messages")
    first, second = (r.json() for r in receiver.requests)
    assert first["text"] == (
        ":red_circle: CRITICAL connection unroutable: connection warehouse: "
        "no healthy agent in pools legacy, db-east"
    )
    assert "[" not in first["text"] and "'" not in first["text"]
    assert second["text"].startswith(":white_check_mark: RESOLVED connection unroutable")
    assert first["blocks"][0]["text"]["text"] == first["text"]


def _fields(info: AlertInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "kind": info.kind,
        "severity": info.severity,
        "target": info.target,
        "message": info.message,
        "raised_at": info.raised_at,
    }


async def test_retries_after_two_500s(tmp_path, running):
    receiver = Receiver(answers=[500, 500]).start()
    try:
        n = await start(Notifier(settings(tmp_path, receiver.url), lambda a: LABELS), running)
        n.alert_changed(alert(), True)
        await until(lambda: n.stats()[0].delivered == 1, "the third attempt accepted")
        [stats] = n.stats()
        assert stats.failed == 2 and stats.last_error == "HTTP 500 Internal Server Error"
        assert len(receiver.requests) == 3
        # Each attempt is signed afresh, and the same notification each time.
        assert len({r.json()["alert"]["id"] for r in receiver.requests}) == 1
    finally:
        receiver.stop()


def test_retry_delays_are_full_jitter_under_a_doubling_cap():
    from controlplane.notify.notifier import retry_delay

    rng = random.Random(20260901)
    for retry in range(1, 12):
        bound = min(8.0, 0.5 * 2 ** (retry - 1))
        drawn = [retry_delay(retry, 0.5, 8.0, rng) for _ in range(400)]
        assert all(0.0 <= d <= bound for d in drawn), (retry, bound, max(drawn))
        # Full jitter: spread over the whole window, not a fixed step or a small band.
        assert min(drawn) < 0.05 * bound and max(drawn) > 0.95 * bound, (retry, bound)


class RecordingRandom(random.Random):
    """A seeded random source that remembers every window it was asked to draw in."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.draws: list[tuple[float, float, float]] = []

    def uniform(self, a: float, b: float) -> float:
        value = super().uniform(a, b)
        self.draws.append((a, b, value))
        return value


async def test_retries_sleep_the_drawn_delay_within_the_capped_window(tmp_path, running):
    receiver = Receiver(answers=[500, 500, 503, 500, 500]).start()
    rng = RecordingRandom(7)
    try:
        config = settings(
            tmp_path,
            receiver.url,
            notify_retries=5,
            notify_backoff_s=0.04,
            notify_backoff_max_s=0.15,
        )
        n = await start(Notifier(config, lambda a: LABELS, rng=rng), running)
        n.alert_changed(alert(), True)
        await until(lambda: n.stats()[0].delivered == 1, "the sixth attempt accepted")
        assert n.stats()[0].failed == 5
        # One draw before each retry, in [0, min(cap, base * 2 ** (n - 1))].
        assert [(a, b) for a, b, _ in rng.draws] == pytest.approx(
            [(0, 0.04), (0, 0.08), (0, 0.15), (0, 0.15), (0, 0.15)]
        )
        assert all(a <= v <= b for a, b, v in rng.draws)
        # And each retry waited at least what was drawn for it.
        arrived = [r.arrived_at for r in receiver.requests]
        gaps = [later - earlier for earlier, later in itertools.pairwise(arrived)]
        for gap, (_, _, drawn) in zip(gaps, rng.draws, strict=True):
            assert gap >= drawn - 0.002, (gaps, rng.draws)
    finally:
        receiver.stop()


async def test_a_refusal_is_not_retried(tmp_path, running):
    receiver = Receiver(answers=[400]).start()
    try:
        n = await start(Notifier(settings(tmp_path, receiver.url), lambda a: LABELS), running)
        n.alert_changed(alert(), True)
        n.alert_changed(alert("a2"), True)
        await until(lambda: n.stats()[0].delivered == 1, "the next notification sent")
        assert n.stats()[0].failed == 1 and len(receiver.requests) == 2
    finally:
        receiver.stop()


async def test_retries_give_up_and_never_raise(tmp_path, running):
    # Nothing listens there: every attempt fails, the notifier goes on.
    n = await start(
        Notifier(settings(tmp_path, "http://127.0.0.1:9/hook", notify_retries=2), lambda a: {}),
        running,
    )
    n.alert_changed(alert(), True)
    await until(lambda: n.stats()[0].failed == 3, "three failed attempts")
    assert n.stats()[0].last_error and "127.0.0.1" not in (n.stats()[0].last_error or "x")


async def test_a_full_queue_drops_the_oldest_and_counts(tmp_path, running):
    gate = threading.Event()
    receiver = Receiver(gate=gate).start()
    try:
        n = await start(
            Notifier(settings(tmp_path, receiver.url, notify_queue=3), lambda a: LABELS), running
        )
        n.alert_changed(alert("a0"), True)
        await until(lambda: receiver.arrived == 1, "the first request held at the receiver")
        for i in range(1, 10):
            n.alert_changed(alert(f"a{i}"), True)  # never blocks, whatever the receiver does
        [stats] = n.stats()
        assert (stats.queued, stats.dropped) == (3, 6)
        gate.set()
        await until(lambda: n.stats()[0].delivered == 4, "the queue drained")
        ids = [r.json()["alert"]["id"] for r in receiver.requests]
        assert ids == ["a0", "a7", "a8", "a9"]
    finally:
        receiver.stop()


async def test_held_notifications_are_counted_and_not_sent(tmp_path, receiver, running):
    holding = {"a1"}
    n = await start(
        Notifier(
            settings(tmp_path, receiver.url),
            lambda a: LABELS,
            hold=lambda a: "silenced by ops" if a.id in holding else None,
        ),
        running,
    )
    n.alert_changed(alert("a1"), True)
    n.alert_changed(alert("a1", cleared_at=time.time()), False)
    n.alert_changed(alert("a2"), True)
    await until(lambda: n.stats()[0].delivered == 1, "the alert not held")
    assert [r.json()["alert"]["id"] for r in receiver.requests] == ["a2"]
    assert n.stats()[0].held == 2  # the raise, and the resolve of a raise never sent


async def test_a_held_alert_is_announced_when_the_hold_ends(tmp_path, receiver, running):
    holding = {"a1"}
    n = await start(
        Notifier(
            settings(tmp_path, receiver.url, notify_resend_s=0.2),
            lambda a: LABELS,
            hold=lambda a: "maintenance" if a.id in holding else None,
        ),
        running,
    )
    n.alert_changed(alert("a1"), True)
    await until(lambda: n.stats()[0].held == 1, "the raise held")
    holding.clear()
    await until(lambda: receiver.requests, "the raise sent once the hold ended")
    assert receiver.requests[0].json()["event"] == "raised"
    assert n.stats()[0].held == 1


async def test_repeats_stop_when_acknowledged(tmp_path, receiver, running):
    acked: set[str] = set()
    n = await start(
        Notifier(
            settings(tmp_path, receiver.url, notify_resend_s=0.1, notify_repeat_s=0.2),
            lambda a: LABELS,
            ack=lambda a: "alice" if a.id in acked else None,
        ),
        running,
    )
    n.alert_changed(alert(), True)
    await until(lambda: len(receiver.requests) >= 2, "a repeat")
    assert receiver.requests[1].json()["repeat"] is True
    acked.add("a1")
    count = len(receiver.requests)
    # No fixed pause: the resolve is the next thing the receiver hears.
    n.alert_changed(alert(cleared_at=time.time()), False)
    await until(lambda: receiver.bodies()[-1]["event"] == "resolved", "the resolve")
    assert len(receiver.requests) <= count + 1


async def test_flaps_are_not_notified(tmp_path, receiver, running):
    n = await start(Notifier(settings(tmp_path, receiver.url), lambda a: LABELS), running)
    n.alert_changed(alert(), True)
    n.alert_changed(alert(flaps=1), True)  # the same alert goes on
    n.alert_changed(alert("a2"), True)
    await until(lambda: n.stats()[0].delivered == 2, "two notifications")
    assert [r.json()["alert"]["id"] for r in receiver.requests] == ["a1", "a2"]


def test_secret_file_must_be_private(tmp_path):
    from controlplane.config_load import ServerConfigError, load_settings

    secret = tmp_path / "s"
    secret.write_bytes(SECRET)
    secret.chmod(0o644)
    config = tmp_path / "server.toml"
    config.write_text(
        f'[[receivers]]\nname = "h"\nkind = "webhook"\nurl = "http://u:pwzz9@127.0.0.1:1/x?k=tokqq7"\n'
        f'secret_file = "{secret}"\n'
    )
    with pytest.raises(ServerConfigError) as err:
        load_settings(config, {})
    message = str(err.value)
    assert f"chmod 600 {secret}" in message and "receivers[0]" in message
    assert "pwzz9" not in message and "tokqq7" not in message
    secret.chmod(0o600)
    loaded = load_settings(config, {})
    from controlplane.config_load import render_settings

    shown = render_settings(loaded)
    assert "http://127.0.0.1:1/x" in shown and "pwzz9" not in shown and "tokqq7" not in shown
    assert SECRET.decode() not in shown


async def test_a_severity_drop_pages_nobody(tmp_path, receiver, running):
    n = await start(Notifier(settings(tmp_path, receiver.url), lambda a: LABELS), running)
    n.alert_changed(alert(severity="critical"), True)
    n.alert_changed(alert(severity="warning"), True)  # down: Alertmanager only
    n.alert_changed(alert(severity="warning", cleared_at=time.time()), False)
    await until(lambda: n.stats()[0].delivered == 2, "raise and resolve")
    assert [r.json()["event"] for r in receiver.requests] == ["raised", "resolved"]


async def test_after_a_restart_open_alerts_are_not_announced_again(tmp_path, receiver, running):
    n = Notifier(settings(tmp_path, receiver.url, notify_resend_s=0.1), lambda a: LABELS)
    n.load([alert()])  # open in the store at start
    await start(n, running)
    n.alert_changed(alert("a2"), True)
    n.alert_changed(alert(cleared_at=time.time()), False)
    await until(lambda: n.stats()[0].delivered == 2, "the new raise and the resolve")
    assert [(b["alert"]["id"], b["event"]) for b in receiver.bodies()] == [
        ("a2", "raised"),
        ("a1", "resolved"),
    ]


async def test_stop_is_never_lost_to_a_wake_up(tmp_path, receiver):
    """A stop that lands as the worker wakes up still stops it.

    Python 3.11's ``asyncio.wait_for`` returns the inner result and drops the
    cancellation when both happen in one loop turn; the worker then slept on for a
    resend period (a CI run hung 120 s here).  Every interleaving of the wake-up and
    the stop, a loop turn apart, must end at once.
    """
    for turns in range(8):
        n = Notifier(settings(tmp_path, receiver.url, notify_resend_s=3600), lambda a: LABELS)
        await n.start()
        await asyncio.sleep(0.01)  # the worker is asleep in its wait
        n.workers[0].wake.set()
        for _ in range(turns):
            await asyncio.sleep(0)
        began = time.monotonic()
        async with asyncio.timeout(5):  # a hung stop fails here, not at the suite's timeout
            await n.stop()
        assert time.monotonic() - began < 2, f"stop lost {turns} loop turns after a wake-up"
