"""What one ``/metrics`` scrape costs the control plane, for N live agents.

The collector reads the fleet at scrape time, on the event loop, so a scrape
holds up heartbeats for as long as it takes: it should stay well under 100 ms
at 10,000 agents. This builds N in-process agents (connected, degraded, stale
and offline, in 20 pools, with skews, queues and certificates), a command and a
flush observed, and times rendering the text exposition, as the route does.
The process collector (``/proc`` reads) is timed with it, as served.

    .venv/bin/python bench/metrics_bench.py [--agents 10000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    from controlplane.config import Settings
    from controlplane.fleet import Fleet
    from controlplane.instruments import Instruments
    from controlplane.live import LiveAgent
    from controlplane.metrics import make_registry, render
    from controlplane.store.base import AgentRecord
    from controlplane.store.sqlite import SQLiteStore
    from fleet.protocol import Presence

    states = [Presence.CONNECTED] * 7 + [Presence.DEGRADED, Presence.STALE, Presence.OFFLINE]
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Settings(), SQLiteStore(Path(tmp) / "fleet.db"))
        for i in range(args.agents):
            rec = AgentRecord(f"ag_{i:06d}", f"agent-{i}", f"pool-{i % 20}", {}, now, "01", now)
            agent = LiveAgent(rec, 60)
            agent.state = states[i % len(states)]
            agent.skew_ms = ((i * 37) % 2000) - 1000.0
            agent.queue_depth = (i * 13) % 150
            agent.cert_not_after = now + 3600 + i
            fleet._index(agent)
        fleet.heartbeats = 123_456
        instruments = Instruments()
        instruments.command("agent.probe", "ok", 0.02)
        instruments.flush(True, 0.01)
        cp = SimpleNamespace(fleet=fleet, channels={}, instruments=instruments)
        registry = make_registry(cp)  # type: ignore[arg-type]
        body = render(registry)
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            render(registry)
            times.append(time.perf_counter() - t0)
    figures = {
        "agents": args.agents,
        "scrape_bytes": len(body),
        "scrape_ms_median": round(statistics.median(times) * 1e3, 2),
        "scrape_ms_max": round(max(times) * 1e3, 2),
    }
    for key, value in figures.items():
        print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
