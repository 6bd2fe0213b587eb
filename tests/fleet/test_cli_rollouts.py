"""``fleet rollouts`` against a real server with simulated agents that upgrade."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from fleet.ctl.rollouts import share
from tests.fleet.run import fleet
from tests.helpers.rollouts import release_server, start_pool, stop_all
from tests.helpers.stream import eventually

pytestmark = pytest.mark.timeout(120)


def test_shares_are_counts_or_percentages():
    assert share("3") == 3 and share("25%") == "25%" and share("12.5%") == "12.5%"
    for bad in ("a", "-1", "25 %", "%"):
        with pytest.raises(Exception, match="neither a count"):
            share(bad)


async def test_start_follow_list_and_refusals(tmp_path: Path, env):
    server = release_server(tmp_path / "cp", "2.0.0")
    try:
        agents, tasks = await start_pool(server, "cli", 4, "1.0.0")

        async def run(*args: str):
            return await asyncio.to_thread(
                fleet, *args, "--data-dir", str(server.data_dir), env=env
            )

        out = await run("rollouts", "start", "cli", "--version", "2.0.0", "--canaries", "abc")
        assert out.returncode == 2 and "neither a count (3) nor a percentage" in out.stderr
        out = await run(
            "rollouts", "start", "cli", "--version", "2.0.0", "--canaries", "50%",
            "--soak", "1s", "--wave", "1", "--pause", "500ms",
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("started rollout ro_")
        rid = out.stdout.split()[2].rstrip(":")
        assert "WAVE      SIZE  UPGRADED  FAILED  STATE" in out.stdout
        assert "canaries  2" in out.stdout and "wave 2    1" in out.stdout

        async def done():
            shown = await run("rollouts", "status", rid, "-o", "json")
            found = json.loads(shown.stdout)
            return found if found["state"] in ("done", "halted") else None

        found = await eventually(done, 60, "the rollout done", 0.5)
        assert found["state"] == "done"
        out = await run("rollouts", "status", "cli", "--all")  # by pool: its newest
        assert out.returncode == 0 and f"rollout:  {rid}" in out.stdout
        assert out.stdout.count("upgraded") >= 4
        out = await run("rollouts", "list")
        row = next(line for line in out.stdout.splitlines() if line.startswith(rid))
        assert "done" in row and "4/4 agents, 3/3 waves" in row
        out = await run("rollouts", "pause", rid)
        assert out.returncode == 4 and f"rollout {rid} is done" in out.stderr
        out = await run("rollouts", "abort", rid)
        assert out.returncode == 2 and "pass --yes" in out.stderr
        out = await run("rollouts", "status", "nowhere")
        assert out.returncode == 3 and "see 'fleet rollouts list'" in out.stderr
        assert [a.version for a in agents] == ["2.0.0"] * 4
        await stop_all(tasks)
    finally:
        server.stop()
