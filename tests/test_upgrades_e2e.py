"""Issue 10, point 6, end to end with real parts only: two real releases built from
this repository, a real control plane, three real agent processes (each under its
supervisor) in one pool.

One story, as an SRE would live it: a broken release halts after its canary, which
rolls back by itself; a good one waits for the pool's maintenance window, then a
rollout with one canary upgrades all three, each reporting the new version on its
channel; a freeze refuses a pin; a remediation policy restarts a wedged agent within
its budget and queues the next restart for approval.
"""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleet import __version__ as BASE
from tests.agent.agents import AgentProcess, enroll
from tests.helpers.releases import build_release
from tests.helpers.server import FAST, RunningServer, wait_for

pytestmark = pytest.mark.timeout(400)

GOOD = "0.1.1"
BROKEN = "0.1.2"
POOL = "etl"
SETTINGS = {
    **FAST,
    "rollout_tick_s": "0.2",
    "upgrade_deadline_s": "60",
    "upgrade_margin_s": "30",
    "remediation_min_check_s": "0.5",
}
# Agents may probe loopback only, one command at a time with a backlog of one: a
# probe that hangs wedges the agent (queue depth 1, further commands refused busy).
AGENT_TOML = (
    '[agent]\nallow_cidrs = ["127.0.0.1/32"]\nallow_ports = ["1024-65535"]\n'
    "max_concurrency = 1\nmax_queue = 1\n"
)


@pytest.fixture
def cp(tmp_path: Path) -> Iterator[RunningServer]:
    server = RunningServer(tmp_path / "cp", settings=dict(SETTINGS)).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pool(cp: RunningServer, tmp_path: Path) -> Iterator[list[AgentProcess]]:
    token = cp.enrollment_token(pool=POOL, uses=3)
    started: list[AgentProcess] = []
    try:
        for i in (1, 2, 3):
            state = tmp_path / f"{POOL}-{i}"
            done = enroll(cp, state, token=token, name=f"{POOL}-{i}")
            assert done.returncode == 0, done.stderr
            (state / "agent.toml").write_text(AGENT_TOML)
            started.append(AgentProcess(state).start())
        for agent in started:
            wait_for(lambda a=agent: running(cp, a, BASE), 30, 0.1, "the pool connected")
        yield started
    finally:
        for agent in started:
            agent.stop()


def get(cp: RunningServer, path: str, **params: Any) -> Any:
    with cp.api() as api:
        response = api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def send(cp: RunningServer, method: str, path: str, body: Any = None) -> Any:
    with cp.api() as api:
        return api.request(method, path, json=body)


def row(cp: RunningServer, agent: AgentProcess) -> dict[str, Any]:
    return dict(get(cp, f"/v1/agents/{agent.agent_id}")["agent"])


def running(cp: RunningServer, agent: AgentProcess, version: str) -> dict[str, Any] | None:
    """The agent's row once it is connected and its heartbeats carry ``version``."""
    r = row(cp, agent)
    live = r["state"] in ("connected", "degraded") and r.get("uptime_s") is not None
    return r if live and r.get("version") == version else None


def rollout_reaches(cp: RunningServer, rollout_id: str, *states: str, timeout: float = 120):
    def check() -> dict[str, Any] | None:
        r = get(cp, f"/v1/rollouts/{rollout_id}")
        return r if r["state"] in states else None

    return wait_for(check, timeout, 0.2, f"rollout {rollout_id} {'/'.join(states)}")


def start_rollout(cp: RunningServer, version: str) -> dict[str, Any]:
    body = {"pool": POOL, "version": version, "canaries": 1, "soak_s": 3, "wave": 2, "pause_s": 1}
    response = send(cp, "POST", "/v1/rollouts", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def iso(at: float) -> str:
    return dt.datetime.fromtimestamp(at, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def put_release(cp: RunningServer, version: str, wheel: Path) -> None:
    with cp.api() as api:
        response = api.put(f"/v1/releases/{version}", content=wheel.read_bytes())
    assert response.status_code in (200, 201), response.text


def test_releases_roll_out_halt_wait_freeze_and_remediate(cp, pool, tmp_path):
    good, broken = build_release(GOOD), build_release(BROKEN, broken="exit")
    put_release(cp, GOOD, good)
    put_release(cp, BROKEN, broken)

    # 1. A broken release: its agent exits at start. The canary's supervisor sees it
    #    crash, rolls back by itself and reports why; the rollout halts there.
    halted = rollout_reaches(cp, start_rollout(cp, BROKEN)["id"], "halted", "done")
    assert halted["state"] == "halted", halted
    [canary] = [a for a in halted["agents"] if a["wave"] == 0]
    assert canary["step"] == "rolled_back", canary
    canary_agent = next(a for a in pool if a.agent_id == canary["agent_id"])
    shown = row(cp, canary_agent)["upgrade"]
    assert shown["step"] == "rolled_back" and shown["version"] == BROKEN, shown
    assert shown["detail"], "a rollback says why"
    for agent in pool:  # nobody runs the broken release; the canary is back on the base
        wait_for(lambda a=agent: running(cp, a, BASE), 60, 0.2, "the pool on the base version")
        assert not (agent.state_dir / "versions" / BROKEN).exists() or agent is canary_agent
    assert not any(a["step"] == "upgraded" for a in halted["agents"]), (
        "nothing past the canary was upgraded"
    )

    # 2. A maintenance window that opens in a few seconds holds the good rollout,
    #    then lets it go: one canary, a soak, then the rest.
    opens = time.time() + 8
    slot = {"name": "nightly", "from": iso(opens), "until": iso(opens + 3600)}
    r = send(cp, "PUT", f"/v1/pools/{POOL}/windows", {"maintenance": [slot]})
    assert r.status_code == 200, r.text
    rollout = start_rollout(cp, GOOD)
    waiting = rollout_reaches(cp, rollout["id"], "waiting")
    assert "outside its maintenance windows" in waiting["detail"] and "nightly" in waiting["detail"]
    assert all(running(cp, a, BASE) for a in pool), "nothing moves before the window opens"
    done = rollout_reaches(cp, rollout["id"], "done", "halted", timeout=240)
    assert done["state"] == "done", done
    assert [w["upgraded"] for w in done["waves"]] == [1, 2]
    for agent in pool:  # each reports the new version on its channel, under the same supervisor
        r = wait_for(lambda a=agent: running(cp, a, GOOD), 60, 0.2, "the pool on the new version")
        assert r["upgrade"]["step"] == "running" and r["upgrade"]["version"] == GOOD
        assert agent.proc is not None and agent.proc.poll() is None
        assert (agent.state_dir / "versions" / GOOD).is_dir()
    upgrades = [e for e in get(cp, "/v1/audit", limit=2000) if e["action"] == "agent.upgrade"]
    first = min(e["at"] for e in upgrades if f"rollout:{rollout['id']}" == e["actor"])
    assert first >= int(opens), "the first upgrade waited for the window"
    assert get(cp, f"/v1/pools/{POOL}/pin")["version"] == GOOD

    # 3. A freeze (a critical business period) refuses a pin, naming the window.
    now = time.time()
    freeze = {"name": "quarter-end", "from": iso(now - 60), "until": iso(now + 3600)}
    r = send(cp, "PUT", f"/v1/pools/{POOL}/windows", {"freezes": [freeze]})
    assert r.status_code == 200, r.text
    refused = send(cp, "PUT", f"/v1/pools/{POOL}/pin", {"version": BASE})
    assert refused.status_code == 409, refused.text
    assert "frozen by quarter-end" in refused.json()["detail"]
    assert get(cp, f"/v1/pools/{POOL}/pin")["version"] == GOOD
    assert send(cp, "PUT", f"/v1/pools/{POOL}/windows", {}).status_code == 200

    # 4. A remediation policy restarts a wedged agent by itself, within its budget
    #    (one restart an hour); wedged again, the next restart waits for approval.
    policy = {
        "check_interval_s": 0.5,
        "per_agent_per_hour": 1,
        "rules": [
            {"condition": "queue_over", "depth": 0, "checks": 2, "action": "restart",
             "automatic": True},
        ],
    }  # fmt: skip
    r = send(cp, "PUT", f"/v1/pools/{POOL}/remediation", policy)
    assert r.status_code == 200, r.text
    cp.set_policy(POOL, allow_cidrs=["127.0.0.0/8"], allow_ports=["1-65535"])
    wedged = pool[1]
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers TLS
    try:
        child = wedged.child_pid
        wedge(cp, wedged, silent.getsockname()[1])
        ran = wait_for(
            lambda: remediation(cp, wedged, "done", "failed"), 90, 0.3, "the automatic restart"
        )
        assert ran["state"] == "done" and ran["automatic"] and ran["action"] == "restart", ran
        assert wedged.child(other_than=child).pid != child  # a new agent process
        assert wedged.proc is not None and wedged.proc.poll() is None  # the same supervisor
        wait_for(lambda: running(cp, wedged, GOOD), 60, 0.2, "the restarted agent on its version")

        wedge(cp, wedged, silent.getsockname()[1])
        waits = wait_for(
            lambda: remediation(cp, wedged, "pending_approval"), 90, 0.3, "the next in the inbox"
        )
        assert waits["action"] == "restart" and "budget spent" in waits["why_approval"], waits
    finally:
        silent.close()
    shown_on_agent = get(cp, f"/v1/agents/{wedged.agent_id}")["remediations"]
    assert [r["state"] for r in shown_on_agent][:2] == ["pending_approval", "done"]


def wedge(cp: RunningServer, agent: AgentProcess, port: int) -> None:
    """Hold the agent's only worker with a probe that never finishes."""
    stuck = {"host": "127.0.0.1", "port": port, "tls": True, "timeout_s": 60}
    threading.Thread(
        target=send, args=(cp, "POST", f"/v1/agents/{agent.agent_id}/probe", stuck), daemon=True
    ).start()
    wait_for(lambda: (row(cp, agent).get("queue_depth") or 0) >= 1, 20, 0.1, "a wedged queue")


def remediation(cp: RunningServer, agent: AgentProcess, *states: str) -> dict[str, Any] | None:
    for item in get(cp, "/v1/remediations", agent=agent.agent_id):
        if item["state"] in states:
            return dict(item)
    return None
