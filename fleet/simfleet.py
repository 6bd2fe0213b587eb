"""A simulated fleet: many agents in one process, speaking the real protocol.

Used by ``fleet demo`` (about 50 agents with varied health) and by benchmarks.
Each agent enrolls with a real CSR and holds its own wss channel; what it reports
follows a small script (see :func:`demo_fleet`).

Run on its own: ``python -m fleet.simfleet --server URL --ca-file F --admin-token-file T``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import ssl
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from .protocol import CommandFinished, CommandRequest, LogsCommand, LogsResult
from .simagent import SimAgent, default_handler, enroll

__all__ = ["SimSpec", "demo_fleet", "main", "run_fleet"]

DEMO_VERSION = "1.4.0"


@dataclass
class SimSpec:
    name: str
    pool: str
    version: str = DEMO_VERSION
    clock_offset_s: float = 0.0
    queue_depth: int = 0
    cert_expires_in_s: float | None = None
    stop_heartbeats_after_s: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    base_cpu: float = 10.0
    base_mem: float = 40.0


def demo_fleet(count: int = 50, seed: int = 7) -> list[SimSpec]:
    """The demo's fleet: most healthy, and one of each kind of trouble."""
    rng = random.Random(seed)
    pools = [("db-east", 0.3), ("db-west", 0.3), ("etl", 0.24), ("edge", 0.16)]
    specs: list[SimSpec] = []
    for pool, share in pools:
        for i in range(1, max(1, round(count * share)) + 1):
            specs.append(
                SimSpec(
                    name=f"{pool}-{i:02d}",
                    pool=pool,
                    labels={"region": "eu" if "east" in pool else "us"},
                    base_cpu=rng.uniform(3, 35),
                    base_mem=rng.uniform(25, 70),
                )
            )
    specs = specs[:count]
    by_name = {s.name: s for s in specs}

    def tweak(name: str, **changes: Any) -> None:
        spec = by_name.get(name)
        if spec is not None:
            for key, value in changes.items():
                setattr(spec, key, value)

    tweak("etl-07", stop_heartbeats_after_s=3.0)
    tweak("db-west-04", clock_offset_s=47.3)
    tweak("edge-02", cert_expires_in_s=3 * 3600.0)
    tweak("db-east-09", version="1.3.2")
    tweak("etl-03", queue_depth=480, base_cpu=88.0)
    return specs


async def _make_tokens(api: httpx.AsyncClient, pools: set[str], uses: int) -> dict[str, str]:
    tokens = {}
    for pool in sorted(pools):
        r = await api.post("/v1/tokens", json={"pool": pool, "uses": uses, "ttl_s": 600})
        r.raise_for_status()
        tokens[pool] = r.json()["token"]
    return tokens


DEMO_LOG = [
    "INFO agent starting version={version} pool={pool}",
    "INFO connected to control plane rtt=1.9ms",
    "INFO probe tcp orders-db.internal:5432 ok connect=2.4ms",
    "WARN job 8812 retrying: connection reset by peer (db.internal:5432)",
    "INFO using DSN postgres://etl:[REDACTED]@db.internal:5432/orders",
    "INFO heartbeat seq={seq} queue={queue}",
]


def _handler(agent: SimAgent, spec: SimSpec) -> Any:
    async def handle(req: CommandRequest) -> CommandFinished:
        command = req.command
        if isinstance(command, LogsCommand):
            lines = [
                f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(time.time() - 60 + i))} "
                + DEMO_LOG[i % len(DEMO_LOG)].format(
                    version=agent.version, pool=spec.pool, seq=i, queue=agent.queue_depth
                )
                for i in range(60)
            ]
            return CommandFinished(
                request_id=req.request_id, result=LogsResult(lines=lines[-command.lines :])
            )
        # Upgrades and rollbacks as a current agent (the demo rolls a release out).
        return agent.lifecycle(req) or await default_handler(req)

    return handle


async def _wiggle(agent: SimAgent, spec: SimSpec, rng: random.Random) -> None:
    start = time.monotonic()
    while True:
        agent.cpu_percent = max(0.0, min(100.0, spec.base_cpu + rng.gauss(0, 4)))
        agent.mem_host_percent = max(0.0, min(100.0, spec.base_mem + rng.gauss(0, 1.5)))
        if spec.queue_depth:
            agent.queue_depth = max(0, spec.queue_depth + rng.randint(-15, 15))
        else:
            agent.queue_depth = rng.choice([0, 0, 0, 1, 2])
        if (
            spec.stop_heartbeats_after_s is not None
            and time.monotonic() - start > spec.stop_heartbeats_after_s
        ):
            agent.heartbeating = False
        await asyncio.sleep(1.0)


async def run_fleet(
    server: str, ca_file: Path, admin_token: str, specs: list[SimSpec], seed: int = 7
) -> None:
    """Enroll every spec and hold all channels until cancelled."""
    ctx = ssl.create_default_context(cafile=str(ca_file))
    headers = {"Authorization": f"Bearer {admin_token}"}
    async with httpx.AsyncClient(base_url=server, verify=ctx, headers=headers, timeout=30) as api:
        tokens = await _make_tokens(api, {s.pool for s in specs}, uses=len(specs))
        agents: list[tuple[SimAgent, SimSpec]] = []
        for spec in specs:
            identity = await enroll(api, tokens[spec.pool], spec.name, spec.version)
            agent = SimAgent(
                identity=identity,
                ws_url=server.replace("https://", "wss://", 1).replace("http://", "ws://", 1),
                ca_file=ca_file,
                version=spec.version,
                clock_offset_s=spec.clock_offset_s,
                queue_depth=spec.queue_depth,
                cert_not_after=(
                    time.time() + spec.cert_expires_in_s if spec.cert_expires_in_s else None
                ),
                obeys_actions=True,
            )
            agent.handler = _handler(agent, spec)
            agents.append((agent, spec))
    rng = random.Random(seed)
    tasks = []
    for agent, spec in agents:
        tasks.append(asyncio.create_task(agent.run()))
        tasks.append(asyncio.create_task(_wiggle(agent, spec, rng)))
        await asyncio.sleep(0.02)  # spread the connects
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleet.simfleet")
    parser.add_argument("--server", required=True)
    parser.add_argument("--ca-file", type=Path, required=True)
    parser.add_argument("--admin-token-file", type=Path, required=True)
    parser.add_argument("--count", type=int, default=50)
    args = parser.parse_args(argv)
    token = args.admin_token_file.read_text().strip()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_fleet(args.server, args.ca_file, token, demo_fleet(args.count)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
