"""The agent reports why its channels ended, and says goodbye, to a scripted control
plane: only to one that accepts it (an older one would close on an unknown type)."""

from __future__ import annotations

import asyncio
import time

from agent.disconnects import SleepWatch
from fleet import protocol as P
from tests.agent.test_agent_channel import handshake, make_agent, recv, scripted_server

BOTH = P.AGENT_EXTRAS


async def test_a_sleep_and_a_server_close_are_reported_after_the_welcome(tmp_path):
    async with scripted_server(tmp_path) as cp:
        agent = make_agent(cp)
        slept = [0.0]
        agent.sleep_watch = SleepWatch(wall=lambda: time.time() + slept[0], mono=time.monotonic)
        task = asyncio.create_task(agent.run(handle_signals=False))

        first = await cp.next()  # an older control plane: no `accepts`
        await handshake(first)
        await recv(first, P.Heartbeat, skip=())
        await first.close(P.CloseCode.SILENT, "no heartbeat")

        second = await cp.next()
        await handshake(second)
        # Nothing but heartbeats for a control plane that did not say it accepts more.
        await recv(second, P.Heartbeat, skip=())
        slept[0] = 3600.0  # the host is suspended for an hour and wakes up
        await recv(second, P.Heartbeat, skip=())
        await recv(second, P.Heartbeat, skip=())  # the one after the wake noticed it
        await second.close(1011, "")

        third = await cp.next()
        await handshake(third, accepts=BOTH)
        report = await recv(third, P.Disconnects, skip=())
        closed, woke = report.records
        assert (closed.cause, closed.code) == ("server_close", 4009)
        assert "heartbeats stopped arriving" in closed.detail
        assert closed.connected_at is not None and closed.age_s is not None
        assert closed.tls_issuer == "CN=Scripted CA"
        assert woke.cause == "sleep" and woke.slept_s is not None
        assert 3590 <= woke.slept_s <= 3610
        assert woke.detail.startswith("the host slept for about 3600 s; then closed by")
        assert woke.code == 1011

        agent.request_stop("maintenance: kernel update")
        goodbye = await recv(third, P.Goodbye)
        assert goodbye.reason == "maintenance: kernel update"
        async with asyncio.timeout(10):
            await task
        await third.wait_closed()
        assert third.close_code == 1000
        assert agent.disconnects.unreported() == []


async def test_no_goodbye_to_a_control_plane_that_does_not_accept_it(tmp_path):
    async with scripted_server(tmp_path) as cp:
        agent = make_agent(cp)
        task = asyncio.create_task(agent.run(handle_signals=False))
        ws = await cp.next()
        await handshake(ws)
        await recv(ws, P.Heartbeat, skip=())
        agent.request_stop()
        async with asyncio.timeout(10):
            # Heartbeats only, then the close: no frame an old server would refuse.
            while True:
                try:
                    raw = await ws.recv()
                except Exception:
                    break
                assert isinstance(P.parse_agent_message(raw), P.Heartbeat)
            await task
        assert ws.close_code == 1000
