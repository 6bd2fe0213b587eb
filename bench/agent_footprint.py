"""Agent footprint: RSS, idle CPU at 5 s heartbeats, and time to connected.

Starts a real control plane on loopback (default 5 s heartbeat), enrolls one
agent, starts it as ``python -m agent run`` (a supervisor, agent/supervisor.py,
whose child runs the agent) and measures:

* time to connected: from process start until the control plane reports the
  agent connected with a heartbeat (targets: within 2 s);
* RSS of the agent (the supervisor's child) after it settled (target: at most
  35 MB), and of the supervisor beside it;
* CPU % of one core while idle, over a window of heartbeats, the agent and the
  supervisor together (target: 0.5 %).

Usage: ``python bench/agent_footprint.py [--idle-s 60]``.  Exits 1 if a target
is missed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers.server import RunningServer  # noqa: E402

TARGET_RSS_MB = 35.0
TARGET_CPU_PERCENT = 0.5
TARGET_CONNECT_S = 2.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env["NO_PROXY"] = "127.0.0.1,localhost"
    return env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=60.0, help="CPU measurement window")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp:
        root = Path(tmp)
        (root / "cp").mkdir()
        server = RunningServer(
            root / "cp", settings={"heartbeat_interval_s": "5", "restart_grace_s": "0"}
        ).start()
        agent: subprocess.Popen[bytes] | None = None
        try:
            token_file = root / "token"
            token_file.write_text(server.enrollment_token())
            state = root / "agent"
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "agent",
                    "enroll",
                    "--server",
                    server.url,
                    "--ca-pin",
                    server.ca_pin,
                    "--token-file",
                    str(token_file),
                    "--state-dir",
                    str(state),
                    "--name",
                    "bench",
                ],
                cwd=REPO,
                env=_env(),
                check=True,
                capture_output=True,
                timeout=60,
            )
            agent_id = __import__("json").loads((state / "agent.json").read_text())["agent_id"]
            with server.api() as api:
                started = time.perf_counter()
                agent = subprocess.Popen(
                    [sys.executable, "-m", "agent", "run", "--state-dir", str(state)],
                    cwd=REPO,
                    env=_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                connect_s = None
                while time.perf_counter() - started < 30:
                    doc = api.get(f"/v1/agents/{agent_id}").json()["agent"]
                    if doc["state"] == "connected" and doc["last_heartbeat_at"]:
                        connect_s = time.perf_counter() - started
                        break
                    time.sleep(0.01)
            if connect_s is None:
                print("agent did not connect within 30 s")
                return 1
            supervisor = psutil.Process(agent.pid)
            [proc] = [
                p for p in supervisor.children() if p.cmdline()[1:5] == ["-P", "-m", "agent", "run"]
            ]
            time.sleep(6.0)  # settle: first heartbeats, clock probe
            both = (proc, supervisor)
            cpu_before = [p.cpu_times() for p in both]
            wall_before = time.perf_counter()
            time.sleep(args.idle_s)
            cpu_after = [p.cpu_times() for p in both]
            wall = time.perf_counter() - wall_before
            used = sum(
                (after.user - before.user) + (after.system - before.system)
                for before, after in zip(cpu_before, cpu_after, strict=True)
            )
            cpu_percent = 100.0 * used / wall
            rss_mb = proc.memory_info().rss / 2**20
            uss_mb = proc.memory_full_info().uss / 2**20
            sup_rss_mb = supervisor.memory_info().rss / 2**20
            sup_uss_mb = supervisor.memory_full_info().uss / 2**20
        finally:
            if agent is not None:
                agent.terminate()
                agent.wait(10)
            server.stop()

    rows = [
        (
            "time to connected",
            f"{connect_s:.2f} s",
            f"<= {TARGET_CONNECT_S} s",
            connect_s <= TARGET_CONNECT_S,
        ),
        (
            "RSS of the agent",
            f"{rss_mb:.1f} MB (USS {uss_mb:.1f} MB)",
            f"<= {TARGET_RSS_MB} MB",
            rss_mb <= TARGET_RSS_MB,
        ),
        (
            "RSS of its supervisor",
            f"{sup_rss_mb:.1f} MB (USS {sup_uss_mb:.1f} MB)",
            "(beside it)",
            True,
        ),
        (
            f"idle CPU over {args.idle_s:.0f} s",
            f"{cpu_percent:.3f} % of one core",
            f"<= {TARGET_CPU_PERCENT} %",
            cpu_percent <= TARGET_CPU_PERCENT,
        ),
    ]
    for name, value, target, ok in rows:
        print(f"{name:<22} {value:<28} target {target:<11} {'ok' if ok else 'MISSED'}")
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
