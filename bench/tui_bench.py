"""Dashboard figures: first render of 10,000 agents, CPU under 2,000 updates/s,
key-press latency, and bytes written to the terminal.

The dashboard runs for real, in a pseudo-terminal of 160x50 (Textual's own
driver, the same output an SSH session gets); this process reads the terminal
and counts bytes, while the dashboard process measures its own CPU time.
Updates are real wire frames (JSON), parsed by the dashboard as it would parse
them from the event stream.

    .venv/bin/python bench/tui_bench.py            # every figure, medians
    .venv/bin/python bench/tui_bench.py --quick    # fewer repetitions
    .venv/bin/python bench/tui_bench.py --agents 100000   # the 100,000-agent fleet

Targets (issue 4): first render within 1 s of the snapshot; 2,000 updates/s at
most 15 % of one core; a key press redraws within 50 ms; under 5 KiB/s at
160x50 when only visible rows change, and nothing when nothing visible changed.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import resource
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

AGENTS = int(os.environ.get("FLEET_TUI_BENCH_AGENTS", "10000"))
"""Agents in the snapshot (``--agents``; the dashboard process reads it from here)."""
RATE = 2_000
COLS, ROWS = 160, 50


# --------------------------------------------------------------------------
# The dashboard side (runs in the pseudo-terminal)


def _child(scenario: str, result_path: Path, seconds: float) -> None:
    from fleet.protocol import AgentUpdate, dump, parse_stream_message, replace
    from fleet_tui.app import FleetApp
    from fleet_tui.sample import sample_snapshot
    from fleet_tui.screens.fleet import FleetScreen

    now = time.time()
    frame = dump(sample_snapshot(AGENTS, now=now, role="admin"))
    results: dict[str, object] = {"snapshot_bytes": len(frame)}
    app = FleetApp(tick=1.0)

    def write() -> None:
        result_path.write_text(json.dumps(results))

    async def run_scenario() -> None:
        await asyncio.sleep(0.5)  # the empty screen is up
        t0 = time.perf_counter()
        msg = parse_stream_message(frame)
        t1 = time.perf_counter()
        app.feed(msg)
        t2 = time.perf_counter()
        rendered = asyncio.Event()
        app.call_after_refresh(rendered.set)
        await rendered.wait()
        # The tick the snapshot scheduled has run and the screen was written.
        rendered.clear()
        app.call_after_refresh(rendered.set)
        await rendered.wait()
        t3 = time.perf_counter()
        results.update(parse_s=t1 - t0, apply_s=t2 - t1, first_render_s=t3 - t0)
        results["max_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        screen = app.screen
        assert isinstance(screen, FleetScreen)
        if scenario != "render" and screen.query_one("#alerts").display:
            # The harder case: the alerts panel closed, the table full width,
            # with CPU and memory sparklines that move on every sample.
            screen.action_alerts()
            await asyncio.sleep(0.5)
        table = screen.table
        rows = app.model.rows()
        top = round(table.scroll_offset.y)
        visible = [r for r in rows[top : top + table.body_height] if isinstance(r, str)]
        offscreen = [r for r in rows if isinstance(r, str) and r not in set(visible)]
        results["visible_rows"] = len(visible)
        if scenario == "render":
            write()
            return
        # Frames prepared beforehand: three variants per agent, metrics only,
        # so the health order does not move (as in a steady fleet).
        agents = app.model.agents
        variants: dict[str, list[str]] = {}
        # Heartbeat times a little ahead of the clock, so that every agent stays
        # on time ("<8s") for the whole run, as in a healthy fleet; stale ages
        # ticking would be visible changes of their own.
        fresh = time.time() + 10
        for k in range(3):
            for agent_id, agent in agents.items():
                update = replace(
                    agent,
                    cpu_percent=(hash((agent_id, k)) % 900) / 10,
                    mem_host_percent=(hash((k, agent_id)) % 600) / 10 + 20,
                    last_heartbeat_at=fresh + k,
                )
                frame_k = dump(AgentUpdate(seq=1000 + k, agent=update))
                variants.setdefault(agent_id, []).append(frame_k)
        keepalive: dict[str, str] = {}
        if scenario == "offscreen":
            targets = offscreen
            # On-screen agents keep heartbeating, with unchanged values: their
            # rows must not be redrawn.  Their history is made flat so that a
            # new (equal) sample leaves the sparkline as it is.
            for agent_id in visible:
                agent = agents[agent_id]
                hist = app.model.history[agent_id]
                for series, value in (
                    (hist.cpu, agent.cpu_percent),
                    (hist.mem, agent.mem_host_percent),
                ):
                    if value is not None:
                        series.extend([value] * series.maxlen)  # type: ignore[operator]
                keepalive[agent_id] = agent_id
        elif scenario == "fleet":
            targets = [r for r in rows if isinstance(r, str)]
        else:  # "visible": every visible row changes every second, the rest off screen
            targets = offscreen
        results["marker_at"] = time.time()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent = 0
        background = 0
        rounds = 0
        next_visible = time.perf_counter()
        while time.perf_counter() - wall0 < seconds:
            if keepalive and time.perf_counter() >= next_visible:
                next_visible += 2.0
                rounds += 1
                for agent_id in visible:
                    same = replace(agents[agent_id], last_heartbeat_at=time.time() + rounds * 1e-3)
                    app.feed(parse_stream_message(dump(AgentUpdate(seq=5000, agent=same))))
                    sent += 1
            if scenario == "visible" and time.perf_counter() >= next_visible:
                next_visible += 1.0
                rounds += 1
                for agent_id in visible:
                    app.feed(parse_stream_message(variants[agent_id][rounds % 3]))
                    sent += 1
            due = int((time.perf_counter() - wall0) * RATE)
            while sent < due:
                agent_id = targets[background % len(targets)]
                turn = background // len(targets)
                app.feed(parse_stream_message(variants[agent_id][turn % 3]))
                background += 1
                sent += 1
            await asyncio.sleep(0.005)
        cpu1, wall1 = time.process_time(), time.perf_counter()
        results.update(updates=sent, cpu_s=cpu1 - cpu0, wall_s=wall1 - wall0)
        write()

    async def keys() -> None:
        # Latency is measured by the parent; here we only keep the fleet loaded.
        await asyncio.sleep(0.5)
        app.feed(parse_stream_message(frame))
        results["ready"] = True
        write()

    def start() -> None:
        if scenario == "keys":
            app.run_worker(keys())
        else:
            app.run_worker(run_scenario())

    app.call_later(start)
    app.run()


# --------------------------------------------------------------------------
# The terminal side


class Terminal:
    """A dashboard process on a pseudo-terminal whose output we count."""

    def __init__(self, scenario: str, seconds: float) -> None:
        self.result = Path(tempfile.mkstemp(suffix=".json")[1])
        self.result.write_text("{}")
        master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        env = dict(os.environ, TERM="xterm-256color", COLUMNS=str(COLS), LINES=str(ROWS))
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", scenario, str(self.result), str(seconds)],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
            cwd=REPO,
        )
        os.close(slave)
        self.master = master
        self.log: list[tuple[float, int]] = []

    def read(self, timeout: float) -> int:
        """Read what the app wrote within ``timeout`` seconds; returns bytes read."""
        got = 0
        end = time.monotonic() + timeout
        while (left := end - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], left)
            if not ready:
                break
            try:
                data = os.read(self.master, 65536)
            except OSError:
                break
            if not data:
                break
            self.log.append((time.time(), len(data)))
            got += len(data)
            self._answer(data)
        return got

    def _answer(self, data: bytes) -> None:
        # Textual asks the terminal for things (e.g. cursor position); answer
        # nothing, as a plain terminal may.
        return

    def results(self) -> dict[str, object]:
        try:
            return dict(json.loads(self.result.read_text() or "{}"))
        except ValueError:
            return {}

    def wait_for(self, key: str, timeout: float) -> dict[str, object]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.read(0.1)
            res = self.results()
            if key in res:
                return res
        raise RuntimeError(f"the dashboard did not report {key!r} in time")

    def close(self) -> None:
        try:
            os.write(self.master, b"q")
            self.read(1.0)
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)
        os.close(self.master)
        self.result.unlink(missing_ok=True)


def bytes_per_second(term: Terminal, start: float, end: float) -> float:
    total = sum(n for at, n in term.log if start <= at <= end)
    return total / (end - start)


def measure_render(reps: int) -> dict[str, float]:
    figures: dict[str, list[float]] = {
        "parse_s": [],
        "apply_s": [],
        "first_render_s": [],
        "max_rss_mib": [],
    }
    size = 0
    for _ in range(reps):
        term = Terminal("render", 0)
        try:
            res = term.wait_for("first_render_s", 120)
            for key in figures:
                figures[key].append(float(res[key]))  # type: ignore[arg-type]
            size = int(res["snapshot_bytes"])  # type: ignore[call-overload]
        finally:
            term.close()
    out = {k: statistics.median(v) for k, v in figures.items()}
    out["snapshot_mib"] = size / 2**20
    return out


def measure_updates(scenario: str, seconds: float) -> dict[str, float]:
    term = Terminal(scenario, seconds)
    try:
        res = term.wait_for("marker_at", 180)
        start = float(res["marker_at"])  # type: ignore[arg-type]
        res = term.wait_for("cpu_s", seconds + 60)
        end = start + float(res["wall_s"])  # type: ignore[arg-type]
        warm = start + 2.0  # skip the first seconds: the first ticks after loading
        per_sec = [bytes_per_second(term, t, t + 1.0) for t in _seconds(warm, end)]
        return {
            "updates_per_s": float(res["updates"]) / float(res["wall_s"]),  # type: ignore[arg-type]
            "cpu_percent": 100 * float(res["cpu_s"]) / float(res["wall_s"]),  # type: ignore[arg-type]
            "bytes_per_s_median": statistics.median(per_sec) if per_sec else 0.0,
            "bytes_per_s_mean": bytes_per_second(term, warm, end),
            "visible_rows": float(res["visible_rows"]),  # type: ignore[arg-type]
        }
    finally:
        term.close()


def _seconds(start: float, end: float) -> list[float]:
    out = []
    t = start
    while t + 1.0 <= end:
        out.append(t)
        t += 1.0
    return out


def measure_keys(presses: int) -> dict[str, float]:
    term = Terminal("keys", 0)
    latencies: list[float] = []
    try:
        term.wait_for("ready", 120)
        term.read(2.5)  # let the first render and a tick or two pass
        for i in range(presses):
            term.read(0.3)  # drain
            key = b"j" if i % 2 == 0 else b"k"
            sent = time.perf_counter()
            os.write(term.master, key)
            ready, _, _ = select.select([term.master], [], [], 2.0)
            if ready:
                latencies.append(time.perf_counter() - sent)
                term.read(0.05)
    finally:
        term.close()
    latencies.sort()
    return {
        "median_ms": 1000 * statistics.median(latencies),
        "p90_ms": 1000 * latencies[int(0.9 * (len(latencies) - 1))],
        "presses": float(len(latencies)),
    }


def main() -> int:
    global AGENTS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--agents", type=int, help=f"agents in the snapshot (default {AGENTS:,})")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agents:
        AGENTS = args.agents
        os.environ["FLEET_TUI_BENCH_AGENTS"] = str(args.agents)  # for the dashboard process
    if args.child:
        scenario, result, seconds = args.child
        _child(scenario, Path(result), float(seconds))
        return 0
    reps = 3 if args.quick else 5
    seconds = 6.0 if args.quick else 12.0
    print(f"fleet dashboard benchmark: {AGENTS:,} agents, terminal {COLS}x{ROWS}, pty")
    print("(update runs: alerts panel closed, full-width table with cpu and mem sparklines)")
    r = measure_render(reps)
    print(
        f"first render after the snapshot (median of {reps}): {r['first_render_s'] * 1000:.0f} ms"
        f"  [parse {r['parse_s'] * 1000:.0f} ms, apply {r['apply_s'] * 1000:.0f} ms;"
        f" snapshot frame {r['snapshot_mib']:.1f} MiB]   target <= 1000 ms"
    )
    print(f"dashboard memory after the first render: {r['max_rss_mib']:.0f} MiB (max RSS)")
    for scenario, what in (
        ("fleet", "round robin over the whole fleet (each agent every 5 s, as heartbeats)"),
        ("visible", "every visible row changes every second, the rest off screen"),
        (
            "offscreen",
            "only off-screen agents change; on-screen ones heartbeat with equal values",
        ),
    ):
        u = measure_updates(scenario, seconds)
        print(
            f"{RATE:,} updates/s, {what}:\n"
            f"    cpu {u['cpu_percent']:.1f} % of one core (parse + apply + redraw;"
            f" target <= 15 %)\n"
            f"    terminal {u['bytes_per_s_median'] / 1024:.2f} KiB/s median per second,"
            f" {u['bytes_per_s_mean'] / 1024:.2f} KiB/s mean"
            f" ({u['updates_per_s']:.0f} updates/s delivered, {u['visible_rows']:.0f} rows"
            " on screen)"
        )
    k = measure_keys(20 if args.quick else 40)
    print(
        f"key press to first redraw byte: median {k['median_ms']:.1f} ms,"
        f" p90 {k['p90_ms']:.1f} ms over {k['presses']:.0f} presses   target <= 50 ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
