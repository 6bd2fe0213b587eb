"""The agent's disconnect records: classification, sleep detection, the log."""

from __future__ import annotations

import socket
import ssl

from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidProxyStatus
from websockets.frames import Close

from agent.disconnects import DisconnectLog, SleepWatch, classify
from fleet.protocol import Disconnect


class Clock:
    """A wall and a monotonic clock moved by hand."""

    def __init__(self) -> None:
        self.wall = 1_800_000_000.0
        self.mono = 1000.0

    def run(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def suspend(self, seconds: float) -> None:
        self.wall += seconds  # the monotonic clock stands still in a suspend


def watch(clock: Clock) -> SleepWatch:
    return SleepWatch(wall=lambda: clock.wall, mono=lambda: clock.mono)


def test_a_wall_clock_jump_ahead_of_the_monotonic_clock_is_a_sleep():
    clock = Clock()
    w = watch(clock)
    clock.run(5)
    assert w.check() is None
    clock.run(2)
    clock.suspend(3600)
    clock.run(1)
    assert w.check() == 3600
    clock.run(30)
    assert w.check() is None  # reported once


def test_time_passing_normally_or_a_small_step_is_not_a_sleep():
    clock = Clock()
    w = watch(clock)
    clock.run(600)
    assert w.check() is None
    clock.suspend(4)  # an NTP step of a few seconds
    assert w.check() is None
    clock.wall -= 3600  # the clock set back is not a sleep either
    assert w.check() is None


def test_a_server_close_names_its_code_and_meaning():
    exc = ConnectionClosedOK(Close(4009, "no heartbeat"), Close(4009, "no heartbeat"), True)
    cause, code, detail = classify(exc)
    assert (cause, code) == ("server_close", 4009)
    assert "4009 closed by the server after heartbeats stopped arriving" in detail
    assert detail.endswith(": no heartbeat")


def test_a_ping_timeout_and_a_reset_are_told_apart():
    ping = ConnectionClosedError(None, Close(1011, "keepalive ping timeout"), None)
    assert classify(ping)[0] == "ping_timeout"
    reset = ConnectionClosedError(None, None, None)
    reset.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    cause, code, detail = classify(reset)
    assert (cause, code) == ("reset", None)
    assert "ConnectionResetError" in detail


def test_failures_before_a_channel_opened():
    assert classify(socket.gaierror(-2, "Name or service not known"))[0] == "dns"
    assert classify(ConnectionRefusedError(111, "refused"))[0] == "refused"
    assert classify(TimeoutError())[0] == "timeout"
    tls = ssl.SSLCertVerificationError(1, "certificate verify failed")
    tls.verify_message = "unable to get local issuer certificate"
    cause, _, detail = classify(tls)
    assert cause == "tls" and "unable to get local issuer certificate" in detail
    assert classify(InvalidProxyStatus(_response(407)))[0] == "proxy"
    assert classify(RuntimeError("odd"))[:2] == ("other", None)


def _response(status: int):  # type: ignore[no-untyped-def]
    from websockets.datastructures import Headers
    from websockets.http11 import Response

    return Response(status, "Proxy Authentication Required", Headers())


def failure(at: float, cause: str = "dns", detail: str = "no such host") -> Disconnect:
    return Disconnect(cause=cause, detail=detail, ended_at=at)  # type: ignore[arg-type]


def test_a_run_of_the_same_failure_is_one_record_with_its_attempts():
    log = DisconnectLog()
    log.add(Disconnect(cause="reset", ended_at=1.0, connected_at=0.5, age_s=0.5))
    for i in range(5):
        log.add(failure(10.0 + i))
    log.add(failure(20.0, "refused", "refused"))
    records = log.records()
    assert [(r.cause, r.attempts) for r in records] == [("reset", 1), ("dns", 5), ("refused", 1)]
    assert records[1].ended_at == 14.0


def test_records_are_reported_once_and_the_log_keeps_the_newest():
    log = DisconnectLog(limit=3)
    for i in range(4):
        log.add(Disconnect(cause="reset", ended_at=float(i), connected_at=0.0))
    assert [r.ended_at for r in log.unreported()] == [1.0, 2.0, 3.0]
    sent = log.unreported()
    log.mark_reported(sent)
    assert log.unreported() == []
    log.add(failure(9.0))
    log.add(failure(10.0))  # folded into the unreported one, not into a reported one
    assert [(r.cause, r.attempts) for r in log.unreported()] == [("dns", 2)]
    assert len(log) == 3
