"""A hung control plane (SIGSTOP) is said in the header, not shown as ``live``.

A stopped process keeps its TCP connections open, so nothing closes the stream:
only the server's heartbeats going missing tell the dashboard.  Real processes:
a control plane in a subprocess, the real stream client and app.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleet_tui.app import FleetApp
from fleet_tui.client import ConnectionState
from fleet_tui.client._stream import silence_limit
from fleet_tui.widgets.banner import LinkBanner
from tests.helpers.server import FAST, RunningServer

from .test_live import until

pytestmark = pytest.mark.timeout(90)

BEAT_S = 0.5


@pytest.fixture
def beating_server(tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(
        tmp_path / "cp", settings={**FAST, "stream_heartbeat_s": str(BEAT_S)}
    ).start()
    try:
        yield server
    finally:
        if server.proc is not None:
            os.kill(server.proc.pid, signal.SIGCONT)
        server.stop()


async def test_stopped_server_reads_not_answering_then_live_again(beating_server, tmp_path):
    cp = beating_server
    assert cp.proc is not None
    app = FleetApp(
        server_url=cp.url,
        token=cp.admin_token,
        ca_file=cp.ca_file,
        tick=0.2,
        logs_dir=tmp_path / "logs",
        backoff_cap=1.0,
    )
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.sub_title == "live · admin", what="live header")
        # Beats arrive: the link stays live well past the silence limit.
        assert app.stream is not None
        await until(pilot, lambda: app.stream.beat_interval == BEAT_S, what="a heartbeat")
        await pilot.pause(silence_limit(BEAT_S) + 0.5)
        assert app.link.state is ConnectionState.LIVE

        os.kill(cp.proc.pid, signal.SIGSTOP)
        stopped_at = time.monotonic()
        try:
            await until(
                pilot,
                lambda: app.sub_title == "not answering · admin",
                timeout=silence_limit(BEAT_S) + 5,
                what="not answering header",
            )
            took = time.monotonic() - stopped_at
            # Two missed beats and the slack, plus a loaded machine's lateness.
            assert took < silence_limit(BEAT_S) + 3, took
            banner = app.screen.query_one(LinkBanner)
            await until(pilot, lambda: "not answering" in banner.text, what="banner")
            assert "2 heartbeats missed: the control plane is hung, stopped" in banner.text
            assert app.screen.table.stale
        finally:
            os.kill(cp.proc.pid, signal.SIGCONT)
        await until(pilot, lambda: app.sub_title == "live · admin", what="live again")
        await until(pilot, lambda: not banner.text, what="banner hidden")
