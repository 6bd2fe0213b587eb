"""Rollout tests' helpers: a control plane with simulated releases, a pool of simulated agents."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from fleet.simagent import SimAgent, enroll
from fleet.simrelease import sim_wheel
from tests.helpers.server import FAST, RunningServer

ROLLOUT_SETTINGS = {
    **FAST,
    "rollout_tick_s": "0.2",
    "upgrade_deadline_s": "5",
    "upgrade_margin_s": "5",
}
"""Test timings: ticks of 0.2 s; an upgrade not finished within 10 s has failed."""


def release_server(data_dir: Path, *versions: str, **settings: str) -> RunningServer:
    """A control plane, started, with a simulated release of each of ``versions``
    uploaded as an admin does (``PUT /v1/releases/{version}``)."""
    server = RunningServer(data_dir, settings={**ROLLOUT_SETTINGS, **settings}).start()
    try:
        with server.api() as api:
            for version in versions:
                wheel = sim_wheel(data_dir.parent / "wheels", version)
                api.put(f"/v1/releases/{version}", content=wheel.read_bytes()).raise_for_status()
    except BaseException:
        server.stop()
        raise
    return server


async def start_pool(
    server: RunningServer, pool: str, count: int, version: str = "1.0.0", **attrs: object
) -> tuple[list[SimAgent], list[asyncio.Task[None]]]:
    """Enroll ``count`` simulated agents named ``POOL-01``... and wait until each is connected."""
    async with server.aapi() as api:
        r = await api.post("/v1/tokens", json={"pool": pool, "uses": count, "ttl_s": 600})
        r.raise_for_status()
        token = r.json()["token"]
    agents = []
    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context()) as client:
        for i in range(1, count + 1):
            identity = await enroll(client, token, f"{pool}-{i:02d}", version)
            agents.append(
                SimAgent(
                    identity=identity,
                    ws_url=server.ws_url,
                    ca_file=server.ca_file,
                    version=version,
                    obeys_actions=True,
                    **attrs,  # type: ignore[arg-type]
                )
            )
    tasks = [asyncio.create_task(a.run()) for a in agents]
    async with asyncio.timeout(20):
        await asyncio.gather(*(a.connected.wait() for a in agents))
    return agents, tasks


async def stop_all(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
