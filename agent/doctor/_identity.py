"""Steps 5 and 6: the agent's certificate validity, and the clock against the server.

The agent renews its certificate at two thirds of its life; less than a third
left (with a few minutes' grace) means renewal is not happening: the agent is
not running, or its renewals fail (its log says ``certificate renewal failed``).

The clock is best measured on the channel (the control plane's own clock probe,
good to half a round trip); without the channel, from the HTTP ``Date`` header,
which only has whole seconds, so it fails only when the offset is certainly
over the limit.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from agent._der import cert_info, pem_to_der
from agent.state import Identity

from ._channel import ChannelClock
from ._report import Report
from ._tls import HttpDate

__all__ = ["MAX_SKEW_S", "check_certificate", "check_clock"]

MAX_SKEW_S = 1.0
"""A clock further than this from the control plane's fails the check."""

_RENEW_GRACE_S = 300.0
"""Renewal may lag its due time this much (or a twentieth of a short life) before it fails."""
_CLOCK_FIX = (
    "synchronise this host's clock: `timedatectl status` should say 'System clock "
    "synchronized: yes'; enable chrony or ntpd (`systemctl enable --now chronyd`), and "
    "check the control plane host's clock too"
)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"


def check_certificate(report: Report, identity: Identity, *, now: float | None = None) -> None:
    """Report the validity of ``cert.pem``."""
    now = time.time() if now is None else now
    try:
        info = cert_info(pem_to_der(identity.cert_path.read_text(encoding="ascii")))
    except (OSError, ValueError) as exc:
        report.fail(
            "cert",
            f"{identity.cert_path} is unreadable: {exc}",
            "enroll again: `fleet agent enroll --force --state-dir DIR ...`",
        )
        return
    life = info.not_after - info.not_before
    left = info.not_after - now
    span = f"not before {_iso(info.not_before)}, not after {_iso(info.not_after)}"
    if now < info.not_before:
        report.fail(
            "cert",
            f"the agent's certificate is not valid yet ({span})",
            "this host's clock is behind: " + _CLOCK_FIX,
        )
    elif left <= 0:
        report.fail(
            "cert",
            f"the agent's certificate expired {_span(left)} ago ({span})",
            "enroll again with a new token (`fleet agent enroll --force ...`); then read the "
            "agent's log for 'certificate renewal failed'",
        )
    elif left < life / 3 - min(_RENEW_GRACE_S, life / 20):
        report.fail(
            "cert",
            f"the agent's certificate has {_span(left)} left of {_span(life)}: renewal "
            f"(due at two thirds of its life) seems stuck ({span})",
            "check that `fleet agent run` is running and connected, and read its log for "
            "'certificate renewal failed'; if it expires, enroll again",
        )
    else:
        report.ok("cert", f"the agent's certificate is valid for {_span(left)} more ({span})")


def check_clock(report: Report, channel: ChannelClock | None, date: HttpDate | None) -> None:
    """Judge the clock offset, from the channel's probe or else the ``Date`` header."""
    if channel is not None:
        offset, margin = channel.offset_s, channel.rtt_s / 2
        where = f"{abs(offset) * 1000:.0f} ms {'ahead of' if offset > 0 else 'behind'}"
        seen = f"{where} the control plane's (clock probe, +/- {margin * 1000:.0f} ms)"
        if abs(offset) - margin > MAX_SKEW_S:
            report.fail("clock", f"this host's clock is {seen}", _CLOCK_FIX)
        else:
            report.ok("clock", f"this host's clock is {seen}")
        return
    if date is None:
        report.skip("clock", "no measurement: neither the channel nor /v1/ca answered")
        return
    # The server's time lay in [Date, Date + 1) when it answered, between sent and received.
    low = date.sent - (date.server + 1.0)
    high = date.received - date.server
    middle = (low + high) / 2
    side = "ahead of" if middle > 0 else "behind"
    seen = f"about {abs(middle):.1f} s {side} the server's (HTTP Date)"
    if low > MAX_SKEW_S or high < -MAX_SKEW_S:
        report.fail("clock", f"this host's clock is {seen}", _CLOCK_FIX)
    else:
        report.ok("clock", "this host's clock is within about 1 s of the server's (HTTP Date)")
