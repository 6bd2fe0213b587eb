"""Protocol figures: what the wire definition costs each side.

* the dashboard: parse a 10,000-agent snapshot (bytes, milliseconds), as the
  dashboard does (``fleet.protocol.parse_stream_message``; before issue 8 the
  dashboard parsed with pydantic's ``validate_json``, its fastest path);
* the control plane: dump that snapshot, decode one heartbeat, dump one update;
* the agent: resident memory and time its channel modules add to a fresh
  interpreter (``import agent.channel``), against a bare interpreter.

Every timing is the median of ``--repeat`` runs in this process; memory is read
from fresh interpreters, median of five.

    .venv/bin/python bench/protocol_bench.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

HEARTBEAT = (
    b'{"type":"heartbeat","seq":41,"sent_at":1790000000.25,"version":"0.1.0",'
    b'"uptime_s":3600.5,"cpu_percent":3.5,"mem_rss_bytes":31000000,'
    b'"mem_host_percent":42.0,"queue_depth":2,"cert_not_after":1797776000.0,'
    b'"config_hash":"sha256:0f1e2d3c4b5a69788796a5b4c3d2e1f0"}'
)

_RSS_PROBE = """
import resource, sys, time
t0 = time.perf_counter()
{code}
t1 = time.perf_counter()
with open('/proc/self/status') as f:
    rss = next(int(l.split()[1]) for l in f if l.startswith('VmRSS:'))
print(rss, t1 - t0)
"""


def _median_s(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _per_call_us(fn: Callable[[], object], calls: int, repeat: int) -> float:
    def batch() -> None:
        for _ in range(calls):
            fn()

    return _median_s(batch, repeat) / calls * 1e6


def _fresh(code: str) -> tuple[float, float]:
    """Median (RSS MB, seconds) of five fresh interpreters running ``code``."""
    rss, secs = [], []
    for _ in range(5):
        out = subprocess.run(
            [sys.executable, "-c", _RSS_PROBE.format(code=code)],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        rss.append(int(out[0]) / 1024)
        secs.append(float(out[1]))
    return statistics.median(rss), statistics.median(secs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    from fleet import protocol
    from fleet_tui.sample import sample_snapshot

    snapshot = sample_snapshot(args.agents, role="admin")
    frame = protocol.dump(snapshot)
    raw = frame.encode()
    parsed = protocol.parse_stream_message(frame)
    assert isinstance(parsed, protocol.Snapshot) and len(parsed.agents) == args.agents
    update = protocol.AgentUpdate(seq=1, agent=snapshot.agents[0])

    figures = {
        "snapshot_agents": args.agents,
        "snapshot_mib": round(len(raw) / (1 << 20), 2),
        "snapshot_parse_ms": round(
            _median_s(lambda: protocol.parse_stream_message(frame), args.repeat) * 1e3, 1
        ),
        "snapshot_dump_ms": round(_median_s(lambda: protocol.dump(snapshot), args.repeat) * 1e3, 1),
        "heartbeat_decode_us": round(
            _per_call_us(lambda: protocol.parse_agent_message(HEARTBEAT), 20_000, args.repeat), 2
        ),
        "update_dump_us": round(
            _per_call_us(lambda: protocol.dump(update), 20_000, args.repeat), 2
        ),
        "json_loads_heartbeat_us": round(
            _per_call_us(lambda: json.loads(HEARTBEAT), 20_000, args.repeat), 2
        ),
    }
    bare_mb, _ = _fresh("pass")
    agent_mb, agent_s = _fresh("import agent.channel")
    figures["agent_channel_import_mb"] = round(agent_mb - bare_mb, 1)
    figures["agent_channel_import_ms"] = round(agent_s * 1e3, 1)
    figures["bare_interpreter_mb"] = round(bare_mb, 1)
    for key, value in figures.items():
        print(f"{key:28} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
