"""The agent reports its last upgrade step after a welcome, and confirms a version on
trial after 3 heartbeats, to a scripted control plane: only to one that lists
``upgrade_status`` in its welcome (an older one would close on an unknown type)."""

from __future__ import annotations

import asyncio

from agent.versions import LastStep, Trial, Versions, VersionState
from fleet import __version__
from fleet import protocol as P
from tests.agent.test_agent_channel import handshake, make_agent, recv, scripted_server

NOW = 1_700_000_000.0


async def test_the_last_step_waits_for_a_control_plane_that_listens(tmp_path):
    async with scripted_server(tmp_path) as cp:
        agent = make_agent(cp)
        versions = Versions(cp.state_dir)
        why = "0.9.0 exited (exit code 1) 2 times before it connected and sent 3 heartbeats"
        left = LastStep("0.9.0", "rolled_back", NOW, detail=why)
        versions.update(lambda s: VersionState(last=left))
        task = asyncio.create_task(agent.run(handle_signals=False))

        old = await cp.next()  # an older control plane: no `accepts`
        await handshake(old)
        for _ in range(4):  # heartbeats only, the step kept for later
            await recv(old, P.Heartbeat, skip=())
        assert versions.read().last == left
        await old.close(1011, "")

        new = await cp.next()
        await handshake(new, accepts=P.AGENT_EXTRAS)
        status = await recv(new, P.UpgradeStatus, skip=(P.Heartbeat, P.Disconnects))
        assert (status.version, status.step, status.detail) == ("0.9.0", "rolled_back", why)
        assert status.from_version == __version__  # filled in by the version running again
        assert status.at == NOW
        await recv(new, P.Heartbeat, skip=())
        assert versions.read().last == left._replace(reported=True)
        agent.request_stop()
        async with asyncio.timeout(10):
            await task


async def test_a_version_on_trial_confirms_itself_after_three_heartbeats(tmp_path):
    async with scripted_server(tmp_path) as cp:
        agent = make_agent(cp)
        versions = Versions(cp.state_dir)
        trial = Trial(__version__, "0.0.9", NOW, 120.0, starts=1)
        restarting = LastStep(__version__, "restarting", NOW, from_version="0.0.9", reported=True)
        versions.update(
            lambda s: VersionState(active=__version__, previous=None, trial=trial, last=restarting)
        )
        task = asyncio.create_task(agent.run(handle_signals=False))
        ws = await cp.next()
        await handshake(ws, accepts=P.AGENT_EXTRAS)
        beats = 0
        async with asyncio.timeout(10):
            while True:
                message = P.parse_agent_message(await ws.recv())
                if isinstance(message, P.Heartbeat):
                    beats += 1
                    continue
                assert isinstance(message, P.UpgradeStatus), message
                break
        assert beats == 3  # not before
        assert (message.step, message.version, message.from_version) == (
            "running",
            __version__,
            "0.0.9",
        )
        state = versions.read()
        assert state.trial is None and state.active == __version__
        assert state.last is not None and state.last.step == "running"
        agent.request_stop()
        async with asyncio.timeout(10):
            await task
        last = versions.read().last
        assert last is not None and last.reported  # sent once, marked as such
