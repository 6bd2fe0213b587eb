"""Scale out: 1, 2 and 3 control-plane replicas on one PostgreSQL behind HAProxy
(issue 11, point 7).

For each count, a fresh database; the first replica makes the data directory and the
others start on copies of it with the same ``--store``; HAProxy (TCP passthrough)
balances the API and the agents' channels (``leastconn``).  ``--agents`` simulated
agents (the real protocol over real wss, each with its own certificate) enroll and
connect through HAProxy.  Prints, and writes as JSON with ``--json``:

* each replica's CPU (% of one core) and agents held, over ``--window`` seconds;
  CPU per 1,000 agents per replica, and the replicas' total CPU as a ratio to one
  replica's (what sharing the fleet through the outbox costs);
* heartbeat-to-dashboard latency on a subscriber of the first replica, p50 and p99,
  for the agents it holds (local) and for those other replicas hold (cross-replica);
* after a SIGKILL of the last replica: seconds until every agent is connected to a
  survivor again, and how many agents the subscriber saw leave ``connected`` (stale,
  offline) meanwhile: the failover grace at work when that is 0; then a SIGKILL of
  the leader, and the seconds until another replica leads.

    .venv/bin/python bench/scale_out.py [--agents 3000] [--interval 5] [--window 20]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, trust) and ``haproxy``.  All
traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from controlplane_load import start_load  # noqa: E402

from fleet.protocol import (  # noqa: E402
    MAX_STREAM_FRAME_BYTES,
    PROTOCOL_VERSION,
    AgentUpdate,
    Snapshot,
    Subscribe,
    dump,
    parse_stream_message,
)
from tests.helpers.haproxy import Backend, HAProxy  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def admin_sql(sql: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(ADMIN_DSN)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(run())


def start_replica(
    data: Path, store: str, interval: float, agent_port: int
) -> tuple[subprocess.Popen[bytes], str]:
    endpoint = data / "endpoint"
    endpoint.unlink(missing_ok=True)
    settings = {
        "heartbeat_interval_s": interval,
        "restart_grace_s": 60,
        "pending_connections": 1_000_000,
        "auth_failures": 1_000_000,
        "public_agent_port": agent_port,
        "channel_keepalive_s": 20,
    }
    args = [sys.executable, "-m", "fleet", "server", "--data-dir", str(data), "--port", "0"]
    args += ["--store", store]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    log = (data.parent / f"{data.name}.log").open("ab")
    proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=log)
    while not (endpoint.exists() and endpoint.read_text().endswith("\n")):
        if proc.poll() is not None:
            raise SystemExit(f"replica {data.name} exited; see {data.parent / data.name}.log")
        time.sleep(0.05)
    return proc, endpoint.read_text().strip()


def health(url: str, ctx: ssl.SSLContext) -> dict[str, Any]:
    return dict(httpx.get(url + "/healthz", verify=ctx, timeout=10).json())


async def watch(
    url: str, ctx: ssl.SSLContext, token: str, seconds: float, out: dict[str, Any]
) -> None:
    """Latencies (local, remote) and agents seen leaving ``connected`` on one replica."""
    local: list[float] = []
    remote: list[float] = []
    seen: dict[str, float] = {}
    left: set[str] = set()
    me = out.get("replica")
    async with websockets.connect(
        url.replace("https", "wss") + "/v1/events",
        ssl=ctx,
        max_size=MAX_STREAM_FRAME_BYTES,
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(dump(Subscribe(protocol_version=PROTOCOL_VERSION)))
        end = time.time() + seconds
        while time.time() < end:
            try:
                async with asyncio.timeout(1):
                    raw = await ws.recv()
            except TimeoutError:
                continue
            now = time.time()
            msg = parse_stream_message(raw)
            if isinstance(msg, Snapshot):
                seen.update({a.id: a.last_heartbeat_at or 0.0 for a in msg.agents})
            elif isinstance(msg, AgentUpdate):
                agent = msg.agent
                if agent.state.value not in ("connected", "degraded"):
                    left.add(agent.id)
                at = agent.last_heartbeat_at
                if at and seen.get(agent.id) != at:
                    seen[agent.id] = at
                    (local if agent.replica == me else remote).append(now - at)
    out["local"], out["remote"], out["left"] = local, remote, left


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return round(values[min(int(len(values) * q), len(values) - 1)] * 1000, 1)


def run(count: int, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    name = f"fleet_bench_{uuid.uuid4().hex[:12]}"
    admin_sql(f'CREATE DATABASE "{name}"')
    store = f"postgresql://postgres@127.0.0.1:5432/{name}"
    work = tmp / f"r{count}"
    work.mkdir()
    lb = HAProxy(work / "haproxy", maxconn=max(4000, args.agents + 500))
    procs: list[subprocess.Popen[bytes]] = []
    urls: list[str] = []
    load = None
    result: dict[str, Any] = {"replicas": count}
    try:
        first = work / "cp0"
        proc, url = start_replica(first, store, args.interval, lb.agent_port)
        procs.append(proc)
        urls.append(url)
        for i in range(1, count):
            copy = work / f"cp{i}"
            shutil.copytree(first, copy, symlinks=True)
            (copy / "agent.port").unlink()
            proc, url = start_replica(copy, store, args.interval, lb.agent_port)
            procs.append(proc)
            urls.append(url)
        ports = [
            Backend(int(u.rsplit(":", 1)[1]), int((work / f"cp{i}" / "agent.port").read_text()))
            for i, u in enumerate(urls)
        ]
        lb.backends = ports
        lb.start()
        ctx = ssl.create_default_context(cafile=str(first / "ca.pem"))
        token = (first / "admin.token").read_text().strip()
        t0 = time.monotonic()
        load = start_load(lb.url, first, args.agents)
        while sum(health(u, ctx)["connected"] for u in urls) < args.agents:
            if time.monotonic() - t0 > args.connect_timeout:
                raise SystemExit("the agents did not all connect in time")
            time.sleep(0.5)
        result["connect_s"] = round(time.monotonic() - t0, 1)
        say(f"{count} replica(s): {args.agents:,} agents up in {result['connect_s']} s")
        time.sleep(2 * args.interval)  # every agent heard since, through every outbox

        watched: dict[str, Any] = {"replica": health(urls[0], ctx)["replica"]}
        loop = asyncio.new_event_loop()
        thread = threading.Thread(
            target=lambda: loop.run_until_complete(watch(urls[0], ctx, token, args.window, watched))
        )
        thread.start()
        ps = [psutil.Process(p.pid) for p in procs]
        c0 = [sum(p.cpu_times()[:2]) for p in ps]
        w0 = time.monotonic()
        time.sleep(args.window)
        c1 = [sum(p.cpu_times()[:2]) for p in ps]
        wall = time.monotonic() - w0
        thread.join()
        held = [health(u, ctx)["connected"] for u in urls]
        cpu = [100 * (b - a) / wall for a, b in zip(c0, c1, strict=True)]
        result.update(
            held=held,
            cpu_percent=[round(c, 1) for c in cpu],
            cpu_total_percent=round(sum(cpu), 1),
            cpu_per_1k_agents_per_replica=[
                round(c / (h / 1000), 2) if h else None for c, h in zip(cpu, held, strict=True)
            ],
            rss_mib=[round(p.memory_info().rss / 2**20) for p in ps],
            latency_local_p50_ms=pct(watched["local"], 0.5),
            latency_local_p99_ms=pct(watched["local"], 0.99),
            latency_cross_p50_ms=pct(watched["remote"], 0.5),
            latency_cross_p99_ms=pct(watched["remote"], 0.99),
            latency_samples=[len(watched["local"]), len(watched["remote"])],
        )
        say(json.dumps(result))

        if count > 1:
            watched = {"replica": watched["replica"]}
            span = args.interval * 6
            thread = threading.Thread(
                target=lambda: asyncio.new_event_loop().run_until_complete(
                    watch(urls[0], ctx, token, span, watched)
                )
            )
            thread.start()
            time.sleep(1.0)
            victim = procs[-1]
            lost = held[-1]
            t_kill = time.monotonic()
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            back = None
            while time.monotonic() - t_kill < span - 2:
                if sum(health(u, ctx)["connected"] for u in urls[:-1]) >= args.agents:
                    back = round(time.monotonic() - t_kill, 1)
                    break
                time.sleep(0.2)
            thread.join()
            result.update(
                failover_agents=lost,
                failover_back_s=back,
                failover_left_connected=len(watched["left"]),
            )
            say(
                f"SIGKILL of a replica holding {lost:,}: all back after {back} s; "
                f"{len(watched['left'])} seen leaving connected"
            )
            # Then the leader: how long until another replica leads (with one left).
            leader = next(i for i, u in enumerate(urls[:-1]) if health(u, ctx)["leader"])
            others = [u for i, u in enumerate(urls[:-1]) if i != leader]
            if not others:
                return result
            t_kill = time.monotonic()
            procs[leader].send_signal(signal.SIGKILL)
            procs[leader].wait()
            lead = None
            while time.monotonic() - t_kill < 30:
                if any(health(u, ctx)["leader"] for u in others):
                    lead = round(time.monotonic() - t_kill, 2)
                    break
                time.sleep(0.05)
            result["lead_takeover_s"] = lead
            say(f"SIGKILL of the leader: another leads after {lead} s")
    finally:
        for p in ([load] if load is not None else []) + procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in ([load] if load is not None else []) + procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        lb.stop()
        admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--counts", default="1,2,3")
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fleet-scale-out-"))
    results = [run(int(n), args, tmp) for n in args.counts.split(",")]
    base = results[0]["cpu_total_percent"] if results[0]["replicas"] == 1 else None
    for r in results:
        if base:
            r["cpu_total_ratio_to_one"] = round(r["cpu_total_percent"] / base, 2)
    out = {"agents": args.agents, "interval_s": args.interval, "window_s": args.window}
    out["runs"] = results
    print(json.dumps(out, indent=2))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
