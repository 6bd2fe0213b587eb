"""Patterns in an agent's disconnect history, said as a cause and a fix.

Pure: records in, hints out, no clock and no I/O, so every rule is unit-tested
with made-up histories (tests/controlplane/test_disconnect_patterns.py).  The
rules are the ones an on-call engineer applies by eye:

* **same age**: three or more channels that ended after the same time open
  (within 10 %) point at a middlebox (a load balancer, proxy or NAT) that cuts
  connections at that idle time or age;
* **same time of day**: ends within a few minutes of the same UTC time on three
  or more days point at a patch window or a scheduled reboot;
* **changed TLS issuer**: the certificate the agent saw changed issuer, the
  mark of an SSL-inspecting proxy;
* **host sleep**: the agent's host slept (a laptop, a suspended VM).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from fleet.protocol import Disconnect, DisconnectHint

from .alerts import _human

__all__ = ["AGE_TOLERANCE", "MIN_OCCURRENCES", "read_patterns"]

MIN_OCCURRENCES = 3
"""A pattern needs at least this many records (or days)."""

AGE_TOLERANCE = 0.10
"""Ages within 10 % of each other count as "the same"."""

MIN_AGE_S = 5.0
"""Channels that ended sooner say nothing about a middlebox's timeout (a refusal
right after the welcome, a flapping network)."""

TIME_TOLERANCE_MIN = 3
"""Ends within this many minutes of the same UTC time of day count as "the same"."""

_DAY_MIN = 24 * 60


def read_patterns(
    records: Sequence[Disconnect], ping_interval_s: float = 20.0
) -> list[DisconnectHint]:
    """The patterns in ``records`` (any order), strongest evidence first.

    Args:
        records: one agent's disconnect history.
        ping_interval_s: how often the agent pings, for the idle-timeout fix.
    """
    ordered = sorted(records, key=lambda r: r.ended_at)
    hints = [
        hint
        for hint in (
            _same_age(ordered, ping_interval_s),
            _same_time(ordered),
            _tls_issuer(ordered),
            _sleep(ordered),
        )
        if hint is not None
    ]
    return sorted(hints, key=lambda h: -h.count)


def _same_age(records: Sequence[Disconnect], ping_interval_s: float) -> DisconnectHint | None:
    ages = [
        r.age_s
        for r in records
        if r.age_s is not None and r.age_s >= MIN_AGE_S and r.cause not in ("stopped", "sleep")
    ]
    best: list[float] = []
    for centre in ages:
        near = [a for a in ages if abs(a - centre) <= AGE_TOLERANCE * centre]
        if len(near) > len(best):
            best = near
    if len(best) < MIN_OCCURRENCES:
        return None
    seconds = statistics.median(best)
    return DisconnectHint(
        kind="same_age",
        count=len(best),
        message=(
            f"closed after ~{seconds:.0f} s each time ({len(best)} of the last {len(ages)} "
            "channels): a load balancer, proxy or NAT between the agent and the control "
            f"plane ends connections at that idle time or age; set its idle timeout above "
            f"the agent's ping interval ({ping_interval_s:g} s), or the control plane's "
            f"channel_keepalive_s below {seconds:.0f} s, and any maximum connection "
            f"lifetime well above {seconds:.0f} s, or exempt the agent channel from it"
        ),
    )


def _minute_of_day(ts: float) -> int:
    t = time.gmtime(ts)
    return t.tm_hour * 60 + t.tm_min


def _circular(a: int, b: int) -> int:
    d = abs(a - b) % _DAY_MIN
    return min(d, _DAY_MIN - d)


def _same_time(records: Sequence[Disconnect]) -> DisconnectHint | None:
    ends = [
        (_minute_of_day(r.ended_at), time.strftime("%Y-%m-%d", time.gmtime(r.ended_at)))
        for r in records
    ]
    best: list[tuple[int, str]] = []
    best_days = 0
    for centre, _ in ends:
        near = [(m, d) for m, d in ends if _circular(m, centre) <= TIME_TOLERANCE_MIN]
        days = len({d for _, d in near})
        if days > best_days:
            best, best_days = near, days
    if best_days < MIN_OCCURRENCES:
        return None
    minute = best[len(best) // 2][0]
    last = max(d for _, d in best)
    return DisconnectHint(
        kind="same_time",
        count=best_days,
        message=(
            f"closed at about {minute // 60:02d}:{minute % 60:02d} UTC on {best_days} days "
            f"(last {last}): a patch window, a scheduled reboot or a nightly job at that "
            "time; declare a maintenance window for it so it is not alerted, or move the job"
        ),
    )


def _tls_issuer(records: Sequence[Disconnect]) -> DisconnectHint | None:
    seen = [r for r in records if r.tls_issuer]
    if len({r.tls_issuer for r in seen}) < 2:
        return None
    latest = seen[-1].tls_issuer
    since = len(seen) - 1
    while since > 0 and seen[since - 1].tls_issuer == latest:
        since -= 1
    before = (
        seen[since - 1].tls_issuer
        if since > 0
        else next(r.tls_issuer for r in seen if r.tls_issuer != latest)
    )
    at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(seen[since].ended_at))
    return DisconnectHint(
        kind="tls_issuer",
        count=len(seen) - since,
        message=(
            f"the control plane's certificate, as the agent saw it, changed issuer from "
            f"{before!r} to {latest!r} (around {at}): an SSL-inspecting proxy or firewall "
            "is intercepting the channel; exempt the control plane's address from "
            "inspection (the agent trusts only its pinned CA)"
        ),
    )


def _sleep(records: Sequence[Disconnect]) -> DisconnectHint | None:
    slept = [r for r in records if r.cause == "sleep" or r.slept_s]
    if not slept:
        return None
    last = slept[-1]
    took = f" for {_human(last.slept_s)}" if last.slept_s else ""
    at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(last.ended_at))
    times = "once" if len(slept) == 1 else f"{len(slept)} times"
    return DisconnectHint(
        kind="sleep",
        count=len(slept),
        message=(
            f"the agent's host slept {times} (last{took}, woke around {at}): its channel "
            "ends while a laptop or VM is suspended; expected on a laptop, on a server "
            "check its power settings or the hypervisor's"
        ),
    )
