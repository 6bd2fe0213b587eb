"""Control-plane load benchmark: N agents heartbeating over real wss, one dashboard.

Prints, for the control plane and for a bare websockets+json server in the same
run (the floor DESIGN.md measures against):

* heartbeats per CPU-second of the server process, and their ratio;
* the server's CPU % of one core and RSS with N agents connected;
* heartbeat-to-dashboard latency (p50, p99) seen by an event-stream subscriber;
* how long the fleet took to come back after a SIGKILL and restart.

Usage: ``python bench/controlplane_load.py --agents 2000 --window 20``.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx
import psutil
import websockets

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fleet.protocol import (  # noqa: E402
    MAX_STREAM_FRAME_BYTES,
    PROTOCOL_VERSION,
    AgentUpdate,
    Snapshot,
    Subscribe,
    dump,
    parse_stream_message,
)


def start_server(data: Path, interval: float, port: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    endpoint = data / "endpoint"
    endpoint.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "fleet",
            "server",
            "--data-dir",
            str(data),
            "--port",
            str(port),
            "--set",
            f"heartbeat_interval_s={interval}",
            "--set",
            "restart_grace_s=60",
            # Every simulated agent dials from 127.0.0.1: one address holding what
            # would be thousands of hosts' connections in production.
            "--set",
            "pending_connections=1000000",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while not endpoint.exists():
        time.sleep(0.05)
    return proc, endpoint.read_text().strip()


def start_load(
    url: str,
    data: Path,
    agents: int,
    sources: Sequence[str] = (),
    stdout: int = subprocess.DEVNULL,
    prefix: str = "bench",
) -> subprocess.Popen[bytes]:
    """``bench/_load.py``: ``agents`` simulated agents named ``PREFIX-00001``..., dialing
    from ``sources`` (loopback addresses) when given; ``stdout=subprocess.PIPE`` to
    read its ``enrolled N``."""
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / "_load.py"),
            url,
            str(data / "ca.pem"),
            str(data / "admin.token"),
            str(agents),
            ",".join(sources),
            prefix,
        ],
        cwd=REPO,
        stdout=stdout,
        stderr=subprocess.DEVNULL,
    )


def health(url: str, ctx: ssl.SSLContext) -> dict[str, int]:
    return httpx.get(url + "/healthz", verify=ctx, timeout=10).json()


def wait_connected(url: str, ctx: ssl.SSLContext, n: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if health(url, ctx)["connected"] >= n:
                return time.monotonic() - start
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"only {health(url, ctx)['connected']} of {n} agents connected in {timeout} s")


async def subscriber_latency(
    url: str, ctx: ssl.SSLContext, token: str, window: float
) -> list[float]:
    lat: list[float] = []
    seen: dict[str, float] = {}
    async with websockets.connect(
        url.replace("https", "wss") + "/v1/events",
        ssl=ctx,
        max_size=MAX_STREAM_FRAME_BYTES,
        additional_headers={"Authorization": f"Bearer {token}"},
    ) as ws:
        await ws.send(dump(Subscribe(protocol_version=PROTOCOL_VERSION)))
        end = time.time() + window
        while time.time() < end:
            try:
                raw = await asyncio.wait_for(ws.recv(), 1)
            except TimeoutError:
                continue
            now = time.time()
            msg = parse_stream_message(raw)
            if isinstance(msg, AgentUpdate) and msg.agent.last_heartbeat_at:
                # Only updates caused by a new heartbeat (not by clock probes).
                if seen.get(msg.agent.id) != msg.agent.last_heartbeat_at:
                    seen[msg.agent.id] = msg.agent.last_heartbeat_at
                    lat.append(now - msg.agent.last_heartbeat_at)
            elif isinstance(msg, Snapshot):
                seen.update({a.id: a.last_heartbeat_at or 0.0 for a in msg.agents})
    return lat


def measure(proc_pid: int, window: float, count: callable) -> tuple[float, float, int, float]:  # type: ignore[valid-type]
    p = psutil.Process(proc_pid)
    c0, h0, t0 = sum(p.cpu_times()[:2]), count(), time.monotonic()
    time.sleep(window)
    c1, h1, t1 = sum(p.cpu_times()[:2]), count(), time.monotonic()
    cpu = c1 - c0
    return (
        (h1 - h0) / cpu if cpu else 0.0,
        100 * cpu / (t1 - t0),
        p.memory_info().rss,
        (h1 - h0) / (t1 - t0),
    )


def run_bare(args: argparse.Namespace, tmp: Path) -> tuple[float, float, int, float]:
    data = tmp / "cp"  # reuse the CA made by the control plane run
    counter = tmp / "bare.count"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "bench" / "_bare_server.py"),
            str(data / "pki" / "server.pem"),
            str(data / "pki" / "server.key"),
            str(counter),
            str(args.interval),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    load = start_load(url, data, -args.agents)  # negative: skip enrollment, reuse identities
    try:
        ctx = ssl.create_default_context(cafile=str(data / "ca.pem"))
        del ctx
        deadline = time.monotonic() + args.connect_timeout
        while time.monotonic() < deadline:
            if counter.exists() and json.loads(counter.read_text())["connected"] >= args.agents:
                break
            time.sleep(0.2)
        time.sleep(args.interval)
        return measure(proc.pid, args.window, lambda: json.loads(counter.read_text())["heartbeats"])
    finally:
        load.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        load.wait(10)
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument("--connect-timeout", type=float, default=300.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fleet-bench-"))
    data = tmp / "cp"
    server, url = start_server(data, args.interval)
    ctx = ssl.create_default_context(cafile=str(data / "ca.pem"))
    token = (data / "admin.token").read_text().strip()
    load = start_load(url, data, args.agents)
    try:
        took = wait_connected(url, ctx, args.agents, args.connect_timeout)
        print(f"agents={args.agents} interval={args.interval}s: all connected after {took:.1f} s")
        time.sleep(args.interval)
        lat_task = asyncio.new_event_loop()
        import threading

        lat: list[float] = []
        t = threading.Thread(
            target=lambda: lat.extend(
                lat_task.run_until_complete(subscriber_latency(url, ctx, token, args.window))
            )
        )
        t.start()
        hb_per_cpu, cpu_pct, rss, rate = measure(
            server.pid, args.window, lambda: health(url, ctx)["heartbeats"]
        )
        t.join()
        lat.sort()
        p50 = lat[len(lat) // 2] * 1000 if lat else float("nan")
        p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else float("nan")
        print(
            f"control plane: {rate:.0f} heartbeats/s, {cpu_pct:.1f}% of one core, "
            f"RSS {rss / 2**20:.0f} MiB, {hb_per_cpu:.0f} heartbeats per CPU-second"
        )
        print(
            f"heartbeat-to-dashboard latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms "
            f"({len(lat)} updates)"
        )

        # Restart: SIGKILL, start on the same port, time until every agent is back.
        server.send_signal(signal.SIGKILL)
        server.wait()
        port = int(url.rsplit(":", 1)[1])
        t0 = time.monotonic()
        server, url = start_server(data, args.interval, port)
        back = wait_connected(url, ctx, args.agents, args.connect_timeout)
        print(
            f"restart: all {args.agents} agents back {back:.1f} s after the server listened "
            f"({time.monotonic() - t0:.1f} s after SIGKILL)"
        )
    finally:
        load.send_signal(signal.SIGTERM)
        load.wait(30)
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    bare_hb_per_cpu, bare_cpu, bare_rss, bare_rate = run_bare(args, tmp)
    print(
        f"bare websockets+json: {bare_rate:.0f} heartbeats/s, {bare_cpu:.1f}% of one core, "
        f"RSS {bare_rss / 2**20:.0f} MiB, {bare_hb_per_cpu:.0f} heartbeats per CPU-second"
    )
    ratio = hb_per_cpu / bare_hb_per_cpu if bare_hb_per_cpu else float("nan")
    print(f"ratio control plane / bare: {ratio:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
