"""Real agents upgrade themselves: real release wheels built from this repository,
a real control plane, real agent processes under their supervisor (issue 10, point 2).

Every test starts from an agent running the base install (this checkout, version
``fleet.__version__``) and looks at what a user sees: the steps on
``GET /v1/agents/{id}`` and in the audit, the version in the heartbeats, the
state directory, and the processes.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fleet import __version__ as BASE
from tests.agent.agents import AgentProcess, enroll
from tests.helpers.proxies import ConnectProxy
from tests.helpers.releases import BROKEN_MARK, build_release
from tests.helpers.server import RunningServer, wait_for

pytestmark = pytest.mark.timeout(180)

GOOD = "0.1.1"
BROKEN = "0.1.2"
HANGS = "0.1.3"


@pytest.fixture
def agents() -> Iterator[list[AgentProcess]]:
    started: list[AgentProcess] = []
    yield started
    for agent in started:
        agent.stop()


def start_agent(
    server: RunningServer,
    tmp_path: Path,
    agents: list[AgentProcess],
    name: str,
    toml: str = "",
    args: list[str] | None = None,
    release_key: str | None = None,
) -> AgentProcess:
    state_dir = tmp_path / name
    done = enroll(server, state_dir, name=name)
    assert done.returncode == 0, done.stderr
    if toml:
        (state_dir / "agent.toml").write_text(toml)
    if release_key is not None:
        (state_dir / "release.pub").write_text(release_key + "\n")
    agent = AgentProcess(state_dir, args=args or []).start()
    agents.append(agent)
    wait_for(lambda: heartbeating(server, agent, BASE), 30, 0.1, f"{name} connected")
    return agent


def detail(server: RunningServer, agent_id: str) -> dict:
    with server.api() as api:
        response = api.get(f"/v1/agents/{agent_id}")
        response.raise_for_status()
        return dict(response.json()["agent"])


def heartbeating(server: RunningServer, agent: AgentProcess, version: str) -> dict | None:
    """The agent's row once it is connected and heartbeats as ``version``."""
    row = detail(server, agent.agent_id)
    ok = row["state"] in ("connected", "degraded") and row.get("uptime_s") is not None
    return row if ok and row.get("version") == version else None


def add_release(server: RunningServer, version: str, wheel: Path) -> dict:
    with server.api() as api:
        response = api.put(f"/v1/releases/{version}", content=wheel.read_bytes())
    assert response.status_code in (200, 201), response.text
    return dict(response.json())


def post(server: RunningServer, agent: AgentProcess, action: str, body: dict):
    with server.api() as api:
        return api.post(f"/v1/agents/{agent.agent_id}/{action}", json=body)


def upgrade(server: RunningServer, agent: AgentProcess, version: str, deadline_s: float = 90):
    return post(server, agent, "upgrade", {"version": version, "deadline_s": deadline_s})


def step(server: RunningServer, agent: AgentProcess, *wanted: str, version: str) -> dict:
    """Wait until the agent's upgrade shows one of ``wanted`` for ``version``."""

    def shown() -> dict | None:
        info = detail(server, agent.agent_id).get("upgrade") or {}
        return info if info.get("step") in wanted and info.get("version") == version else None

    return dict(wait_for(shown, 90, 0.1, f"upgrade step {wanted} of {version}"))


def audited_steps(server: RunningServer, agent_id: str) -> list[str]:
    with server.api() as api:
        entries = api.get("/v1/audit", params={"actor": agent_id}).json()
    return [e["detail"] for e in entries if e["action"] == "agent.upgrade_step"]


def state_json(agent: AgentProcess) -> dict:
    return dict(json.loads((agent.state_dir / "versions" / "state.json").read_text()))


# --------------------------------------------------------------------------
# The release driver


def test_a_good_release_upgrades_a_real_agent_in_place(control_plane, tmp_path, agents):
    wheel = build_release(GOOD)
    agent = start_agent(control_plane, tmp_path, agents, "up-1")
    assert (agent.state_dir / "release.pub").read_text().startswith("ed25519:")  # enrollment
    supervisor, old_child = agent.proc.pid, agent.child_pid
    add_release(control_plane, GOOD, wheel)

    answer = upgrade(control_plane, agent, GOOD)
    assert answer.status_code == 200, answer.text
    assert answer.json()["driver"] == "release" and answer.json()["version"] == GOOD

    done = step(control_plane, agent, "running", "failed", "rolled_back", version=GOOD)
    assert done["step"] == "running", done
    assert done["from_version"] == BASE
    row = wait_for(lambda: heartbeating(control_plane, agent, GOOD), 30, 0.1, "heartbeats of 0.1.1")
    assert row["version"] == GOOD
    # Each step reached the control plane: restarting from the old process, running
    # from the new one (the audit keeps those two; GET shows the latest).
    steps = audited_steps(control_plane, agent.agent_id)
    assert f"restarting {GOOD}" in " ".join(steps) and f"running {GOOD}" in steps
    # Installed beside the base install, switched, confirmed; nothing left to resume.
    assert (agent.state_dir / "versions" / GOOD / "agent" / "cli.py").is_file()
    state = state_json(agent)
    assert state["active"] == GOOD and state["previous"] is None and state["trial"] is None
    assert state["last"]["step"] == "running" and state["last"]["reported"] is True
    assert list((agent.state_dir / "downloads").iterdir()) == []
    # The same supervisor; a new agent process, running the release's code.
    assert agent.proc.poll() is None and agent.proc.pid == supervisor
    child = agent.child(other_than=old_child)
    assert child.environ()["PYTHONPATH"].split(os.pathsep)[0] == str(
        agent.state_dir / "versions" / GOOD
    )
    log = agent.output()
    for said in ("upgrade to 0.1.1: downloading", "verifying", "installing", "confirmed after 3"):
        assert said in log, said


def test_a_broken_release_is_rolled_back_by_the_watchdog(control_plane, tmp_path, agents):
    wheel = build_release(BROKEN, broken="exit")
    agent = start_agent(control_plane, tmp_path, agents, "up-2")
    supervisor = agent.proc.pid
    add_release(control_plane, BROKEN, wheel)
    assert upgrade(control_plane, agent, BROKEN).status_code == 200

    done = step(control_plane, agent, "running", "failed", "rolled_back", version=BROKEN)
    assert done["step"] == "rolled_back", done
    assert "exited (exit code 1) 2 times before it connected" in done["detail"]
    assert done["from_version"] == BASE  # the version it runs again
    assert wait_for(lambda: heartbeating(control_plane, agent, BASE), 30, 0.1, "back on base")
    assert agent.output().count(BROKEN_MARK) == 2  # it did run, twice, then never again
    state = state_json(agent)
    assert state["active"] is None and state["trial"] is None
    assert state["last"]["step"] == "rolled_back" and state["last"]["reported"] is True
    assert agent.proc.pid == supervisor and agent.proc.poll() is None
    assert any(f"rolled_back {BROKEN}" in s for s in audited_steps(control_plane, agent.agent_id))


def test_a_release_that_never_connects_is_rolled_back_at_its_deadline(
    control_plane, tmp_path, agents
):
    wheel = build_release(HANGS, broken="hang")
    agent = start_agent(control_plane, tmp_path, agents, "up-3")
    add_release(control_plane, HANGS, wheel)
    assert upgrade(control_plane, agent, HANGS, deadline_s=6).status_code == 200

    done = step(control_plane, agent, "running", "failed", "rolled_back", version=HANGS)
    assert done["step"] == "rolled_back", done
    assert "did not connect and send 3 heartbeats within 6 s" in done["detail"]
    assert wait_for(lambda: heartbeating(control_plane, agent, BASE), 30, 0.1, "back on base")
    assert agent.output().count(BROKEN_MARK) == 1


@pytest.mark.parametrize("fault", ["hash", "signature"])
def test_a_tampered_release_is_refused_reported_and_never_unpacked(
    control_plane, tmp_path, agents, fault
):
    wheel = build_release(GOOD)
    # For "signature", the agent keeps another release key than the one that signs.
    other = "ed25519:" + "A" * 43 + "=" if fault == "signature" else None
    agent = start_agent(control_plane, tmp_path, agents, f"up-{fault}", release_key=other)
    child = agent.child_pid
    release = add_release(control_plane, GOOD, wheel)
    if fault == "hash":
        # The file on the server changes after it was signed (same size).
        stored = control_plane.data_dir / "releases" / f"{release['sha256']}.whl"
        data = bytearray(stored.read_bytes())
        data[len(data) // 2] ^= 0xFF
        stored.write_bytes(bytes(data))

    assert upgrade(control_plane, agent, GOOD).status_code == 200  # accepted, then...
    done = step(control_plane, agent, "running", "failed", "rolled_back", version=GOOD)
    assert done["step"] == "failed"
    expected = "hash mismatch" if fault == "hash" else "bad signature"
    assert done["detail"].startswith(expected), done
    # Never unpacked, never run: no version directory, no restart, no part file kept.
    assert not (agent.state_dir / "versions" / GOOD).exists()
    assert list((agent.state_dir / "downloads").iterdir()) == []
    assert agent.child_pid == child
    assert heartbeating(control_plane, agent, BASE)
    assert f"failed {GOOD}: {expected}" in " ".join(audited_steps(control_plane, agent.agent_id))
    if fault == "signature":
        # The control plane's key was not taken over the one kept: said, not obeyed.
        assert "but this agent keeps ed25519:AAAA" in agent.output()
        assert (agent.state_dir / "release.pub").read_text().startswith("ed25519:AAAA")


def test_an_agent_without_a_release_key_keeps_the_first_one_it_is_sent(
    control_plane, tmp_path, agents
):
    state_dir = tmp_path / "up-key"
    assert enroll(control_plane, state_dir, name="up-key").returncode == 0
    (state_dir / "release.pub").unlink()  # as if enrolled before releases were signed
    agent = AgentProcess(state_dir).start()
    agents.append(agent)
    wait_for(lambda: heartbeating(control_plane, agent, BASE), 30, 0.1, "connected")
    served = (control_plane.data_dir / "pki" / "release.pub").read_text().strip()
    kept = wait_for(lambda: (state_dir / "release.pub").is_file(), 10, 0.05, "the key kept")
    assert kept and (state_dir / "release.pub").read_text().strip() == served
    assert "kept the release key the control plane sent" in agent.output()


def test_a_download_cut_halfway_resumes_with_range_through_the_proxy(
    control_plane, tmp_path, agents
):
    wheel = build_release(GOOD)
    half = wheel.stat().st_size // 2
    proxy = ConnectProxy(cut=(control_plane.port, half))
    try:
        agent = start_agent(control_plane, tmp_path, agents, "up-cut", args=["--proxy", proxy.url])
        add_release(control_plane, GOOD, wheel)
        assert upgrade(control_plane, agent, GOOD).status_code == 200
        done = step(control_plane, agent, "running", "failed", "rolled_back", version=GOOD)
    finally:
        proxy.close()
    assert done["step"] == "running", done
    assert proxy.cut_at == half  # the first download was cut halfway
    api = f"127.0.0.1:{control_plane.port}"
    assert proxy.targets.count(api) >= 2, proxy.targets  # downloads went through the proxy
    log = agent.output()
    assert "download of 0.1.1 cut" in log
    resumed = [line for line in log.splitlines() if "download of 0.1.1 resumed at byte" in line]
    assert resumed, log[-2000:]
    at = int(resumed[0].split("resumed at byte ")[1].split()[0])
    assert 0 < at <= half  # from the part, not from the start


# --------------------------------------------------------------------------
# The command driver, the busy refusal


RECORDER = """\
import json, sys
with open(sys.argv[1], "a") as out:
    out.write(json.dumps(sys.argv[2:]) + "\\n")
sys.exit(int(sys.argv[2]))
"""


@pytest.mark.parametrize("exit_code", [0, 3])
def test_the_command_driver_runs_its_argv_with_the_version_and_no_shell(
    control_plane, tmp_path, agents, exit_code
):
    script = tmp_path / "upgrade-agent.py"
    script.write_text(RECORDER)
    calls = tmp_path / "calls.jsonl"
    argv = [sys.executable, str(script), str(calls), str(exit_code), "--to", "{version}"]
    argv.append("$(touch pwned); echo")
    toml = f'[agent]\nupgrade_driver = "command"\nupgrade_command = {json.dumps(argv)}\n'
    agent = start_agent(control_plane, tmp_path, agents, f"up-cmd-{exit_code}", toml=toml)
    child = agent.child_pid
    add_release(control_plane, GOOD, build_release(GOOD))

    answer = upgrade(control_plane, agent, GOOD)
    assert answer.status_code == 200 and answer.json()["driver"] == "command", answer.text
    done = step(control_plane, agent, "running", "failed", version=GOOD)
    recorded = [json.loads(line) for line in calls.read_text().splitlines()]
    assert recorded == [[str(exit_code), "--to", GOOD, "$(touch pwned); echo"]]
    assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()  # no shell
    assert done["step"] == "failed"
    if exit_code:
        assert done["detail"] == "the upgrade command exited with code 3"
        assert agent.child_pid == child  # not restarted
    else:
        # It exited 0: the supervisor restarted the agent into what is installed, which
        # (this command changed nothing) still says the base version: reported, not hidden.
        assert "the upgrade command succeeded, but the agent still runs " + BASE in done["detail"]
        assert agent.child(other_than=child).pid != child
        assert "restarting " + GOOD in " ".join(audited_steps(control_plane, agent.agent_id))


def test_an_upgrade_is_refused_while_the_agent_is_busy(control_plane, tmp_path, agents):
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers TLS
    port = silent.getsockname()[1]
    control_plane.set_policy(
        "default", allow_hosts=["localhost"], allow_cidrs=["127.0.0.0/8"], allow_ports=["1-65535"]
    )
    toml = (
        '[agent]\nallow_cidrs = ["127.0.0.1/32"]\nallow_ports = ["1024-65535"]\n'
        "upgrade_busy_queue = 0\n"
    )
    agent = start_agent(control_plane, tmp_path, agents, "up-busy", toml=toml)
    add_release(control_plane, GOOD, build_release(GOOD))
    probe = threading.Thread(
        target=post,
        args=(
            control_plane,
            agent,
            "probe",
            {"host": "127.0.0.1", "port": port, "tls": True, "timeout_s": 20},
        ),
        daemon=True,
    )
    try:
        probe.start()
        wait_for(
            lambda: (detail(control_plane, agent.agent_id).get("queue_depth") or 0) >= 1,
            15,
            0.1,
            "the probe pending on the agent",
        )
        refused = upgrade(control_plane, agent, GOOD)
    finally:
        silent.close()
    assert refused.status_code == 409, refused.text
    said = refused.json()["detail"]
    assert "busy" in said and "over upgrade_busy_queue (0)" in said
    shown = detail(control_plane, agent.agent_id)["upgrade"]
    assert shown["step"] == "refused" and "busy" in shown["detail"]
    assert not (agent.state_dir / "versions" / GOOD).exists()


# --------------------------------------------------------------------------
# rollback, restart, renew


def test_rollback_and_restart_commands(control_plane, tmp_path, agents):
    agent = start_agent(control_plane, tmp_path, agents, "up-rb")
    supervisor = agent.proc.pid
    refused = post(control_plane, agent, "rollback", {"reason": "just in case"})
    assert refused.status_code == 409 and "nothing to roll back to" in refused.text

    add_release(control_plane, GOOD, build_release(GOOD))
    assert upgrade(control_plane, agent, GOOD).status_code == 200
    step(control_plane, agent, "running", version=GOOD)
    wait_for(lambda: heartbeating(control_plane, agent, GOOD), 30, 0.1, "heartbeats of 0.1.1")

    answer = post(control_plane, agent, "rollback", {"reason": "canary looks slow"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "rollback" and answer.json().get("version") is None
    done = step(control_plane, agent, "rolled_back", version=GOOD)
    assert done["detail"] == "canary looks slow" and done["from_version"] == BASE
    wait_for(lambda: heartbeating(control_plane, agent, BASE), 30, 0.1, "back on base")
    assert state_json(agent)["active"] is None

    child = agent.child_pid
    answer = post(control_plane, agent, "restart", {"reason": "wedged"})
    assert answer.status_code == 200 and answer.json()["kind"] == "restart", answer.text
    agent.child(other_than=child)
    wait_for(
        lambda: (r := heartbeating(control_plane, agent, BASE)) and r["uptime_s"] < 5 and r,
        30,
        0.1,
        "the restarted agent heartbeating",
    )
    assert agent.proc.pid == supervisor and agent.proc.poll() is None
    assert "restarting on request: wedged" in agent.output()


def test_a_restart_gets_through_a_queue_full_of_stuck_commands(control_plane, tmp_path, agents):
    # A wedged agent (its one worker and its backlog held by a probe that never ends)
    # is what a restart is for: it must not wait behind the queue, nor be refused busy.
    import socket

    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers TLS
    port = silent.getsockname()[1]
    control_plane.set_policy(
        "default", allow_hosts=["localhost"], allow_cidrs=["127.0.0.0/8"], allow_ports=["1-65535"]
    )
    toml = (
        '[agent]\nallow_cidrs = ["127.0.0.1/32"]\nallow_ports = ["1024-65535"]\n'
        "max_concurrency = 1\nmax_queue = 1\n"
    )
    agent = start_agent(control_plane, tmp_path, agents, "up-wedged", toml=toml)
    stuck = {"host": "127.0.0.1", "port": port, "tls": True, "timeout_s": 30}
    probe = threading.Thread(target=post, args=(control_plane, agent, "probe", stuck), daemon=True)
    try:
        probe.start()
        wait_for(
            lambda: (detail(control_plane, agent.agent_id).get("queue_depth") or 0) >= 1,
            15,
            0.1,
            "the probe holding the agent's only worker",
        )
        assert post(control_plane, agent, "probe", stuck).status_code == 409  # busy: wedged
        child = agent.child_pid
        began = time.monotonic()
        answer = post(control_plane, agent, "restart", {"reason": "wedged queue"})
        assert answer.status_code == 200 and answer.json()["kind"] == "restart", answer.text
        assert time.monotonic() - began < 10, "the restart waited behind the stuck probe"
        agent.child(other_than=child)
        wait_for(
            lambda: (r := heartbeating(control_plane, agent, BASE)) and r["uptime_s"] < 5 and r,
            30,
            0.1,
            "the restarted agent heartbeating",
        )
    finally:
        silent.close()


def test_renew_command_renews_now_and_reconnects_with_the_new_key(control_plane, tmp_path, agents):
    agent = start_agent(control_plane, tmp_path, agents, "up-renew")
    before = detail(control_plane, agent.agent_id)["cert_not_after"]
    old_cert = (agent.state_dir / "cert.pem").read_text()
    # Certificates count whole seconds: renewed within the second of the enrollment,
    # the new one would end when the old one does, and look the same below.
    time.sleep(1.1)
    answer = post(control_plane, agent, "renew", {"reason": "remediation"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["kind"] == "renew" and answer.json()["not_after"] >= before
    assert (agent.state_dir / "cert.pem").read_text() != old_cert
    # Once answered, the agent reconnects with the new key (heartbeats may carry the
    # new expiry a moment before, on the old channel: wait for the reconnect itself).
    wait_for(
        lambda: "reconnecting at once with the new key" in agent.output(),
        30,
        0.1,
        "the reconnect with the new key",
    )
    wait_for(
        lambda: (r := heartbeating(control_plane, agent, BASE)) and r["cert_not_after"] != before,
        30,
        0.1,
        "heartbeats with the renewed certificate",
    )
    with control_plane.api() as api:
        audit = api.get("/v1/audit", params={"action": "cert.supersede"}).json()
    assert any(e["target"] == agent.agent_id for e in audit), audit


# --------------------------------------------------------------------------
# The supervisor's own promises


def test_sigkill_of_the_supervisor_leaves_no_orphan_agent(control_plane, tmp_path, agents):
    agent = start_agent(control_plane, tmp_path, agents, "up-kill")
    child = agent.child()
    os.kill(agent.proc.pid, signal.SIGKILL)
    agent.proc.wait(5)
    gone = wait_for(
        lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE,
        10,
        0.05,
        "the agent child gone after its supervisor",
    )
    assert gone
    # It closed without a goodbye: not a stop on purpose, so not shown as stopped.
    state = wait_for(
        lambda: (s := detail(control_plane, agent.agent_id)["state"]) in ("offline", "stale") and s,
        15,
        0.1,
        "the agent seen gone",
    )
    assert state != "stopped"


def test_a_crashed_agent_is_restarted_by_its_supervisor(control_plane, tmp_path, agents):
    agent = start_agent(control_plane, tmp_path, agents, "up-crash")
    child = agent.child_pid
    os.kill(child, signal.SIGKILL)
    agent.child(other_than=child)
    wait_for(
        lambda: (r := heartbeating(control_plane, agent, BASE)) and r["uptime_s"] < 5 and r,
        30,
        0.1,
        "the agent back after its crash",
    )
    assert agent.proc.poll() is None
    assert "the agent crashed (signal SIGKILL); again in 1 s" in agent.output()
