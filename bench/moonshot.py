"""The moonshot: one control-plane process with 100,000 agents (issue 11, point 7).

Simulated agents (the real protocol over real wss, each with its own enrolled
certificate) heartbeat every 30 s from one load-generator process, spread over
several loopback source addresses (one address has about 28,000 ephemeral ports
toward one port).  Prints, as it goes and as JSON at the end:

* how long enrollment of every agent took, and how long until all were connected;
* the server's CPU (% of one core), RSS and RSS per agent with all connected, over
  a window of two heartbeat intervals;
* heartbeat-to-dashboard latency seen by an event-stream subscriber, and the
  size and time of its first snapshot;
* after a SIGKILL and a restart on the same port: time until all are back.

If it stops (agents not all connected within ``--connect-timeout``), it says
where: how many connected, the server's RSS and CPU then.

    .venv/bin/python bench/moonshot.py [--agents 100000] [--interval 30] [--sources 6]
        [--generators 4]

Needs about 6 GiB for the server and as much for the load generator at 100,000.
All traffic stays on 127.0.0.0/8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from controlplane_load import (  # noqa: E402
    health,
    measure,
    start_load,
    start_server,
    subscriber_latency,
)

from fleet.protocol import (  # noqa: E402
    MAX_STREAM_FRAME_BYTES,
    PROTOCOL_VERSION,
    Subscribe,
    dump,
)


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)


def server_figures(pid: int) -> dict[str, float]:
    p = psutil.Process(pid)
    return {"rss_mib": p.memory_info().rss / 2**20, "cpu_s": sum(p.cpu_times()[:2])}


def wait_all(
    url: str, ctx: ssl.SSLContext, n: int, timeout: float, pid: int, what: str
) -> tuple[float | None, int]:
    """Seconds until ``n`` are connected (None: they were not, within ``timeout``)
    and the last count; progress every 30 s."""
    start = last_said = time.monotonic()
    connected = 0
    while time.monotonic() - start < timeout:
        with contextlib.suppress(httpx.HTTPError, OSError):
            connected = health(url, ctx)["connected"]
        if connected >= n:
            return time.monotonic() - start, connected
        if time.monotonic() - last_said >= 30:
            last_said = time.monotonic()
            f = server_figures(pid)
            say(f"{what}: {connected:,} connected; server RSS {f['rss_mib']:.0f} MiB")
        time.sleep(1.0)
    return None, connected


async def first_snapshot(url: str, ctx: ssl.SSLContext, token: str) -> dict[str, float]:
    t0 = time.perf_counter()
    async with websockets.connect(
        url.replace("https", "wss") + "/v1/events",
        ssl=ctx,
        max_size=MAX_STREAM_FRAME_BYTES,
        additional_headers={"Authorization": f"Bearer {token}"},
        open_timeout=60,
    ) as ws:
        await ws.send(dump(Subscribe(protocol_version=PROTOCOL_VERSION)))
        raw = await ws.recv()
        # Timed here: leaving the block waits for the close handshake, behind the
        # deltas the server sends meanwhile (up to websockets' 10 s close timeout).
        took = time.perf_counter() - t0
    return {"snapshot_mib": len(raw) / 2**20, "snapshot_s": took}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=100_000)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--sources", type=int, default=6, help="127.0.0.2 … 127.0.0.N+1")
    parser.add_argument("--connect-timeout", type=float, default=2400.0)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument(
        "--no-restart", action="store_true", help="skip the SIGKILL and the restart"
    )
    parser.add_argument(
        "--generators",
        type=int,
        default=1,
        help="load-generator processes (the agents and source addresses split between "
        "them): one process redoing 19,000 TLS handshakes after a restart never caught up",
    )
    args = parser.parse_args()
    sources = [f"127.0.0.{i + 2}" for i in range(args.sources)]
    out: dict[str, Any] = {"agents": args.agents, "interval_s": args.interval, "sources": sources}
    tmp = Path(tempfile.mkdtemp(prefix="fleet-moonshot-"))
    data = tmp / "cp"
    server, url = start_server(data, args.interval)
    ctx = ssl.create_default_context(cafile=str(data / "ca.pem"))
    token = (data / "admin.token").read_text().strip()
    say(f"server {url} (pid {server.pid}); {args.agents:,} agents from {len(sources)} addresses")
    t0 = time.monotonic()
    g = max(1, args.generators)
    loads = [
        start_load(
            url,
            data,
            args.agents // g + (1 if i < args.agents % g else 0),
            sources[i::g] or sources,
            stdout=subprocess.PIPE,
            prefix=f"bench{i}",
        )
        for i in range(g)
    ]
    out["generators"] = g
    try:
        for each in loads:
            assert each.stdout is not None
            line = each.stdout.readline().decode().strip()
            if not line.startswith("enrolled"):
                say(f"a load generator stopped before enrolling all: {line!r}")
                return 1
        out["enroll_s"] = round(time.monotonic() - t0, 1)
        say(f"enrolled {args.agents:,} in {out['enroll_s']} s ({g} generators)")
        took, connected = wait_all(url, ctx, args.agents, args.connect_timeout, server.pid, "up")
        f = server_figures(server.pid)
        if took is None:
            out["stopped"] = (
                f"only {connected:,} of {args.agents:,} connected after "
                f"{args.connect_timeout:.0f} s; server RSS {f['rss_mib']:.0f} MiB"
            )
            say(out["stopped"])
            return 2
        out["connect_s"] = round(took, 1)
        say(f"all {args.agents:,} connected {took:.1f} s after enrollment")
        time.sleep(args.interval)  # every agent has sent a heartbeat since

        lat: list[float] = []
        loop = asyncio.new_event_loop()
        window = 2 * args.interval
        thread = threading.Thread(
            target=lambda: lat.extend(
                loop.run_until_complete(subscriber_latency(url, ctx, token, window))
            )
        )
        thread.start()
        hb_per_cpu, cpu_pct, rss, rate = measure(
            server.pid, window, lambda: health(url, ctx)["heartbeats"]
        )
        thread.join()
        lat.sort()
        out.update(
            heartbeats_per_s=round(rate, 1),
            cpu_percent=round(cpu_pct, 1),
            rss_mib=round(rss / 2**20),
            rss_kib_per_agent=round(rss / 1024 / args.agents, 1),
            heartbeats_per_cpu_s=round(hb_per_cpu),
            latency_p50_ms=round(lat[len(lat) // 2] * 1000, 1) if lat else None,
            latency_p99_ms=round(lat[int(len(lat) * 0.99)] * 1000, 1) if lat else None,
            latency_updates=len(lat),
        )
        out.update(asyncio.run(first_snapshot(url, ctx, token)))
        out["load_generator_rss_mib"] = round(
            sum(psutil.Process(each.pid).memory_info().rss for each in loads) / 2**20
        )
        say(json.dumps(out))

        if args.no_restart:
            return 0
        server.send_signal(signal.SIGKILL)
        server.wait()
        port = int(url.rsplit(":", 1)[1])
        server, url = start_server(data, args.interval, port)
        back, connected = wait_all(
            url, ctx, args.agents, args.connect_timeout, server.pid, "restart"
        )
        out["back_after_restart_s"] = None if back is None else round(back, 1)
        if back is None:
            out["stopped"] = f"after the restart only {connected:,} came back"
        say(f"restart: back after {out['back_after_restart_s']} s")
    finally:
        for proc in (*loads, server):
            proc.send_signal(signal.SIGTERM)
        for proc in (*loads, server):
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        print(json.dumps(out, indent=2))
        if args.json:
            args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
