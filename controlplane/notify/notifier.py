"""The notifier: alert transitions in, one delivery task per receiver out.

:meth:`Notifier.alert_changed` is called by the fleet for every alert change it
has stored and published.  It never awaits and never raises: it decides what
happened (raised, escalated, resolved) and appends a :class:`Notice` to each
receiver's bounded queue, dropping (and counting) the oldest when one is full, so
a receiver that is down or slow never holds up ingest.  Each receiver's task
sends, retries with capped exponential backoff and full jitter, and counts.

Holding back (silences, maintenance, acknowledgements; built elsewhere):

* ``hold(alert)`` returns a reason not to notify anyone now (a silence, a
  maintenance window), or None.  A held notice is counted (``held``) and not sent,
  to any receiver; a resolve of an alert whose raise a receiver never got is not
  sent to it either.  An alert raised while held and still firing when the hold
  ends is announced then (the periodic pass finds it unannounced).
* ``ack(alert)`` returns who acknowledged it, or None.  An acknowledged alert
  stops the *repeat* reminders to webhook and Slack receivers (a person has it),
  but Alertmanager keeps getting it in the periodic re-send: Alertmanager resolves
  an alert its client stops sending, and it deduplicates re-sends itself, so
  stopping there would read as "resolved" to whoever routes from it (its
  ``acknowledged_by`` annotation says who has it).  Its escalation, a new and
  worse situation, and its resolve still go to every receiver.

After a restart the open alerts are loaded as already announced: webhook and
Slack receivers are not told again of what they heard before the restart (they
get the resolve), and Alertmanager gets them all in its next re-send.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from fleet.protocol import AlertInfo

from ..config import Settings
from .payloads import Notice, alertmanager_alert, slack_body, webhook_body
from .receivers import Receiver, read_secret
from .signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from .stats import ReceiverStats

__all__ = ["RESOLVED_RETENTION_S", "Hold", "Notifier", "retry_delay"]

log = logging.getLogger("controlplane.notify")

Hold = Callable[[AlertInfo], str | None]
Labels = Callable[[AlertInfo], dict[str, str]]

RESOLVED_RETENTION_S = 900.0
"""Resolved alerts go on being re-sent to Alertmanager (with their endsAt) this long,
as Prometheus does: one lost resolve must not leave an alert firing there."""

_RANK = {"warning": 1, "critical": 2}
_BATCH = 500
"""Alerts in one Alertmanager request at most."""


def _never(alert: AlertInfo) -> str | None:
    return None


def retry_delay(retry: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """The pause before retry number ``retry`` (1 for the first): capped exponential
    backoff with full jitter, uniform in ``[0, min(max_s, base_s * 2 ** (retry - 1))]``.

    Full jitter (AWS's "Exponential Backoff And Jitter") spreads the receivers' retries
    after a shared outage instead of bringing them back on the same tick.
    """
    return rng.uniform(0.0, min(max_s, base_s * 2 ** (retry - 1)))


class Undeliverable(Exception):
    """The receiver refused the request for good (a 4xx): retrying cannot help."""


@dataclass
class _Counters:
    delivered: int = 0
    failed: int = 0
    dropped: int = 0
    held: int = 0
    last_success_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass
class _Worker:
    """One receiver: its queue, what it has been told, its counters."""

    receiver: Receiver
    limit: int
    queue: deque[Notice] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    announced: dict[str, float] = field(default_factory=dict)
    """Alert id -> when this receiver last accepted a notice of it (firing ones)."""
    held_ids: set[str] = field(default_factory=set)
    """Firing alerts held back from this receiver (counted once each)."""
    resolved: dict[str, tuple[Notice, float]] = field(default_factory=dict)
    """Alertmanager: resolved alerts re-sent with endsAt, until the retention ends."""
    counters: _Counters = field(default_factory=_Counters)
    secret: bytes = b""

    def offer(self, notice: Notice) -> None:
        if len(self.queue) >= self.limit:
            self.queue.popleft()
            self.counters.dropped += 1
        self.queue.append(notice)
        self.wake.set()

    def queued_ids(self) -> set[str]:
        return {n.alert.id for n in self.queue}


class Notifier:
    """Delivers alert transitions to the configured receivers (see the module doc).

    Args:
        settings: the server's settings (receivers, queue, retries, timers).
        labels: what an alert concerns, as labels (``agent``, ``pool``, ...).
        hold: a reason to hold a notification back now, or None.
        ack: who acknowledged an alert, or None (stops webhook and Slack repeats).
        base_url: this control plane's URL (for generatorURL), read when sending.
        transport: for tests only, an httpx transport.
        rng: the retry jitter's random source (a seeded one in tests).
    """

    def __init__(
        self,
        settings: Settings,
        labels: Labels,
        *,
        hold: Hold = _never,
        ack: Hold = _never,
        base_url: Callable[[], str] = lambda: "",
        transport: httpx.AsyncBaseTransport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self._rng = rng if rng is not None else random.Random()
        self.labels = labels
        self.hold = hold
        self.ack = ack
        self.base_url = base_url
        self.firing: dict[str, Notice] = {}
        """Open alerts, as last notified (their labels fixed at raise)."""
        self.workers = [_Worker(r, settings.notify_queue) for r in settings.receivers]
        for worker in self.workers:
            if worker.receiver.secret_file is not None:
                worker.secret = read_secret(worker.receiver.secret_file, worker.receiver.name)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: list[asyncio.Task[None]] = []

    # ------------------------------------------------------------- inputs

    def load(self, open_alerts: Iterable[AlertInfo]) -> None:
        """The alerts open at start (from the store): firing, already announced."""
        now = time.time()
        for alert in open_alerts:
            notice = Notice("raised", alert, self._labels(alert))
            self.firing[alert.id] = notice
            for worker in self.workers:
                worker.announced[alert.id] = now

    def alert_changed(self, alert: AlertInfo, raised: bool) -> None:
        """An alert was stored and published: queue what it means for each receiver.

        Never awaits, never raises (the fleet calls it on its ingest path).
        """
        try:
            notice = self._notice(alert, raised)
            if notice is not None:
                for worker in self.workers:
                    worker.offer(notice)
        except Exception:
            log.exception("notifier: could not queue the change of alert %s", alert.id)

    def _labels(self, alert: AlertInfo) -> dict[str, str]:
        try:
            return self.labels(alert)
        except Exception:
            log.exception("notifier: no labels for %s", alert.target)
            return {"target": alert.target}

    def _notice(self, alert: AlertInfo, raised: bool) -> Notice | None:
        before = self.firing.get(alert.id)
        if not raised:
            self.firing.pop(alert.id, None)
            labels = before.labels if before is not None else self._labels(alert)
            return Notice("resolved", alert, labels)
        if before is None:
            notice = Notice("raised", alert, self._labels(alert))
            self.firing[alert.id] = notice
            return notice
        self.firing[alert.id] = Notice("raised", alert, before.labels)
        old = before.alert.severity
        if _RANK.get(alert.severity, 0) > _RANK.get(old, 0):
            return Notice("escalated", alert, before.labels, previous_severity=old)
        if old != alert.severity:
            # Down, not up: nobody is paged for it, but Alertmanager must drop the
            # alert under its old labels (an escalation to it does both).
            return Notice("escalated", alert, before.labels, previous_severity=old)
        return None  # a flap: the same alert goes on

    # ------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        if not self.workers:
            return
        self._client = httpx.AsyncClient(
            timeout=self.settings.notify_timeout_s,
            transport=self._transport,
            follow_redirects=False,
            trust_env=False,
        )
        for worker in self.workers:
            self._tasks.append(
                asyncio.create_task(self._run(worker), name=f"notify:{worker.receiver.name}")
            )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("notifier task failed")
        self._tasks.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def stats(self) -> list[ReceiverStats]:
        """Every configured receiver, in config order."""
        return [
            ReceiverStats(
                name=w.receiver.name,
                kind=w.receiver.kind,
                queued=len(w.queue),
                delivered=w.counters.delivered,
                failed=w.counters.failed,
                dropped=w.counters.dropped,
                last_success_at=w.counters.last_success_at,
                last_error=w.counters.last_error,
                last_error_at=w.counters.last_error_at,
                held=w.counters.held,
            )
            for w in self.workers
        ]

    # ------------------------------------------------------------- delivery

    async def _run(self, worker: _Worker) -> None:
        period = self.settings.notify_resend_s
        next_pass = time.monotonic() + period
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for drops a cancel that lands
            # as the wake-up does, and stop() then waited a whole resend period.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(0.0, next_pass - time.monotonic())):
                    await worker.wake.wait()
            worker.wake.clear()
            try:
                if time.monotonic() >= next_pass:
                    next_pass = time.monotonic() + period
                    self._periodic(worker)
                while worker.queue:
                    await self._deliver(worker)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("notifier: receiver %s failed", worker.receiver.name)

    def _periodic(self, worker: _Worker) -> None:
        """The periodic pass: what a receiver should hear again, or hear at last."""
        pending = worker.queued_ids()
        now = time.time()
        if worker.receiver.kind == "alertmanager":
            for key, (_, since) in list(worker.resolved.items()):
                if now - since > RESOLVED_RETENTION_S:
                    del worker.resolved[key]
            if self.firing or worker.resolved:
                # Everything at once, as Alertmanager expects: one request.
                worker.queue.append(Notice("raised", _RESEND, {}, repeat=True))
            return
        repeat_s = self.settings.notify_repeat_s
        for alert_id, notice in list(self.firing.items()):
            if alert_id in pending:
                continue
            last = worker.announced.get(alert_id)
            if last is None:
                worker.offer(notice)  # held, dropped or failed before: announce it now
            elif repeat_s > 0 and now - last >= repeat_s and self.ack(notice.alert) is None:
                worker.offer(Notice("raised", notice.alert, notice.labels, repeat=True))

    def _held(self, worker: _Worker, notice: Notice, sending: Iterable[str] = ()) -> bool:
        """Whether to hold ``notice`` back from ``worker`` (counted); ``sending``: the
        alerts whose raise goes in the same request."""
        alert_id = notice.alert.id
        if notice.event == "resolved":
            worker.held_ids.discard(alert_id)
            if alert_id not in worker.announced and alert_id not in sending:
                worker.counters.held += 1
                return True
            return False
        reason = self.hold(notice.alert)
        if reason is None:
            worker.held_ids.discard(alert_id)
            return False
        if alert_id not in worker.held_ids:
            worker.held_ids.add(alert_id)
            worker.counters.held += 1
            log.info(
                "notifier: %s of alert %s held back from %s: %s",
                notice.event,
                alert_id,
                worker.receiver.name,
                reason,
            )
        return True

    async def _deliver(self, worker: _Worker) -> None:
        if worker.receiver.kind == "alertmanager":
            await self._deliver_alertmanager(worker)
            return
        notice = worker.queue.popleft()
        if _downgrade(notice):
            return  # nobody is paged for a severity going down
        if self._held(worker, notice):
            return
        if notice.event == "resolved":
            worker.announced.pop(notice.alert.id, None)
        # A raise resolved while it waited is still sent: the receiver hears both.
        if await self._send(worker, notice) and notice.event != "resolved":
            worker.announced[notice.alert.id] = time.time()

    async def _send(self, worker: _Worker, notice: Notice) -> bool:
        receiver = worker.receiver
        runbook = self.settings.runbook_url
        if receiver.kind == "webhook":

            def request() -> tuple[bytes, dict[str, str]]:
                now = time.time()
                body = webhook_body(notice, now, runbook)
                stamp = str(int(now))
                return body, {
                    "Content-Type": "application/json",
                    TIMESTAMP_HEADER: stamp,
                    SIGNATURE_HEADER: sign(worker.secret, stamp, body),
                }

            return await self._post(worker, receiver.url, request)
        payload = slack_body(notice, runbook)
        return await self._post(worker, receiver.url, lambda: _json(payload))

    async def _deliver_alertmanager(self, worker: _Worker) -> None:
        # Every notice waiting goes in one request, with a full re-send if one is due.
        batch: list[dict[str, Any]] = []
        now = time.time()
        resend = False
        announce: list[str] = []
        seen: set[str] = set()
        while worker.queue and len(batch) < _BATCH:
            notice = worker.queue.popleft()
            if notice.alert is _RESEND:
                resend = True
                continue
            if self._held(worker, notice, seen):
                continue
            if notice.event == "resolved":
                worker.announced.pop(notice.alert.id, None)
                worker.resolved[notice.alert.id] = (notice, now)
                batch.append(self._am(notice, ends_at=notice.alert.cleared_at or now))
            else:
                seen.add(notice.alert.id)
                if notice.previous_severity is not None:
                    batch.append(self._am(notice, severity=notice.previous_severity, ends_at=now))
                if notice.alert.id in self.firing:  # else its resolve follows in this batch
                    batch.append(self._am(notice))
                    announce.append(notice.alert.id)
        if resend:
            listed = {a["annotations"]["alert_id"] for a in batch}
            for notice in list(self.firing.values()):
                if notice.alert.id not in listed and not self._held(worker, notice):
                    batch.append(self._am(notice))
                    announce.append(notice.alert.id)
            for notice, _ in worker.resolved.values():
                if notice.alert.id not in listed:
                    batch.append(self._am(notice, ends_at=notice.alert.cleared_at or now))
        if not batch:
            return
        url = worker.receiver.url.rstrip("/") + "/api/v2/alerts"
        if await self._post(worker, url, lambda: _json(batch)):
            for alert_id in announce:
                worker.announced[alert_id] = time.time()

    def _am(
        self, notice: Notice, *, severity: str | None = None, ends_at: float | None = None
    ) -> dict[str, Any]:
        base = (self.settings.public_url or self.base_url()).rstrip("/")
        return alertmanager_alert(
            notice,
            instance=self.settings.notify_instance,
            runbook_url=self.settings.runbook_url,
            generator_url=f"{base}/v1/alerts" if base else "",
            severity=severity,
            ends_at=ends_at,
            acked_by=self.ack(notice.alert) if ends_at is None else None,
        )

    async def _post(
        self, worker: _Worker, url: str, request: Callable[[], tuple[bytes, dict[str, str]]]
    ) -> bool:
        """POST with retries; True when accepted.  Never raises (but cancellation)."""
        assert self._client is not None
        s = self.settings
        counters = worker.counters
        for attempt in range(s.notify_retries + 1):
            if attempt:
                delay = retry_delay(attempt, s.notify_backoff_s, s.notify_backoff_max_s, self._rng)
                await asyncio.sleep(delay)
            body, headers = request()  # fresh each time: a webhook's timestamp moves on
            try:
                response = await self._client.post(url, content=body, headers=headers)
                if 200 <= response.status_code < 300:
                    counters.delivered += 1
                    counters.last_success_at = time.time()
                    return True
                error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
                permanent = 400 <= response.status_code < 500 and response.status_code not in (
                    408,
                    425,
                    429,
                )
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                permanent = False
            counters.failed += 1
            counters.last_error = error
            counters.last_error_at = time.time()
            log.warning(
                "notifier: %s (%s) attempt %d failed: %s",
                worker.receiver.name,
                worker.receiver.shown_url,
                attempt + 1,
                error,
            )
            if permanent:
                break
        return False


def _downgrade(notice: Notice) -> bool:
    before = _RANK.get(notice.previous_severity or "", 0)
    return before > _RANK.get(notice.alert.severity, 0)


def _json(payload: Any) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return body, {"Content-Type": "application/json"}


_RESEND = AlertInfo(id="", kind="", severity="warning", target="", message="", raised_at=0.0)
"""A marker in an Alertmanager queue: re-send every firing alert now."""
