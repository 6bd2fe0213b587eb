"""``fleet remediation`` and the remediations in ``fleet agents show``, on a real server
with a simulated agent (its own event loop, in a thread, while the CLI runs)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fleet.run import fleet
from tests.helpers.server import FAST, RunningServer, wait_for
from tests.helpers.stream import start_agent, stop_agent


class AgentThread:
    """A simulated agent run by an event loop of its own, in a daemon thread."""

    def __init__(self, server: RunningServer, name: str, pool: str, **attrs: object) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started = start_agent(server, name, pool=pool, **attrs)
        self.agent, self.task = asyncio.run_coroutine_threadsafe(started, self.loop).result(30)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(stop_agent(self.task), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[RunningServer]:
    settings = {**FAST, "remediation_min_check_s": "0.2"}
    server = RunningServer(tmp_path / "cp", settings=settings).start()
    try:
        yield server
    finally:
        server.stop()


def _json(out) -> object:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_policy_inbox_approve_reject_and_agent_show(cp, env, tmp_path):
    assert fleet("login", "--data-dir", str(cp.data_dir), env=env).returncode == 0
    sim = AgentThread(cp, "cli-1", "cli", queue_depth=900, obeys_actions=True)
    try:
        policy = tmp_path / "policy.json"
        policy.write_text(
            json.dumps(
                {
                    "check_interval_s": 0.2,
                    "rules": [
                        {
                            "condition": "queue_over",
                            "depth": 100,
                            "checks": 1,
                            "action": "restart",
                            "automatic": False,
                        }
                    ],
                }
            )
        )
        out = fleet("remediation", "policy", "cli", "--file", str(policy), env=env)
        assert out.returncode == 0, out.stderr
        assert "queue_over 100" in out.stdout and "restart" in out.stdout
        assert "1 per agent, 5 per pool per hour" in out.stdout
        shown = fleet("remediation", "policy", "cli", env=env).stdout
        assert "set by:" in shown and "admin" in shown

        def pending() -> list[dict]:
            found = _json(
                fleet("remediation", "list", "--state", "pending_approval", "-o", "json", env=env)
            )
            return found  # type: ignore[return-value]

        first = wait_for(pending, 15, 0.2, "a queued restart")[0]
        table = fleet("remediation", "list", env=env).stdout
        assert first["id"] in table and "the policy asks for approval" in table

        out = fleet("remediation", "approve", first["id"], "--note", "go ahead", env=env)
        assert out.returncode == 0, out.stderr
        assert f"approved {first['id']} (restart of cli-1): running" in out.stdout
        wait_for(lambda: sim.agent.restarts == 1, 15, 0.1, "the restart")
        out = fleet("remediation", "approve", first["id"], env=env)
        assert out.returncode == 4 and "not waiting for approval" in out.stderr

        second = wait_for(
            lambda: [p for p in pending() if p["id"] != first["id"]], 15, 0.2, "queued again"
        )[0]
        out = fleet("remediation", "reject", second["id"], "--note", "looking", env=env)
        assert out.returncode == 0 and f"rejected {second['id']}" in out.stdout
        shown = fleet("remediation", "show", second["id"], env=env).stdout
        assert "rejected" in shown and "looking" in shown and "admin" in shown

        detail = fleet("agents", "show", "cli-1", env=env).stdout
        assert "remediations (newest" in detail
        assert f"{second['id']}  rejected  restart (admin)" in detail

        assert fleet("remediation", "policy", "cli", "--clear", env=env).returncode == 0
        out = fleet("remediation", "policy", "cli", env=env)
        assert out.returncode == 3 and "remediation is off in pool 'cli'" in out.stderr
        policy.write_text(json.dumps({"rules": [{"condition": "disk_full", "action": "restart"}]}))
        out = fleet("remediation", "policy", "cli", "--file", str(policy), env=env)
        assert out.returncode == 1 and "expected tags: 'stale_or_offline'" in out.stderr
        policy.write_text("{")
        out = fleet("remediation", "policy", "cli", "--file", str(policy), env=env)
        assert out.returncode == 2 and "is not JSON" in out.stderr
        out = fleet("remediation", "revert", first["id"], env=env)
        assert out.returncode == 4 and "only a done move_connections" in out.stderr
    finally:
        sim.stop()
