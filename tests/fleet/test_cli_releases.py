"""``fleet releases`` and ``fleet agents upgrade|rollback|restart|renew``: the real
CLI against a real control plane (simulated agents for the commands)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path

import pytest

from fleet.protocol import CommandError
from tests.fleet.run import fleet
from tests.helpers.answers import Answers
from tests.helpers.releases import release_wheel
from tests.helpers.server import FAST, RunningServer
from tests.helpers.stream import start_agent, stop_agent


def _login(cp: RunningServer, env: dict[str, str]) -> None:
    out = fleet("login", "--data-dir", str(cp.data_dir), env=env)
    assert out.returncode == 0, out.stderr


def _clean(out) -> None:
    assert "Traceback" not in out.stdout + out.stderr, out.stderr


def test_add_list_and_rm_a_release(shared_cp, env, tmp_path):
    _login(shared_cp, env)
    wheel = release_wheel(tmp_path, "0.2.0", pad_bytes=300_000)
    data = wheel.read_bytes()
    out = fleet("releases", "add", str(wheel), "--version", "0.2.0", env=env)
    assert out.returncode == 0, out.stderr
    with shared_cp.api() as api:
        stored = api.get("/v1/releases/0.2.0").json()
    sha = hashlib.sha256(data).hexdigest()
    assert stored["sha256"] == sha and stored["filename"] == wheel.name
    assert f"sha256:    {sha}" in out.stdout
    assert f"signature: {stored['signature'][:16]}..." in out.stdout
    assert "fleet agents upgrade AGENT --version 0.2.0" in out.stdout
    # The same file again is fine; the table and the JSON.
    again = fleet("releases", "add", str(wheel), "--version", "0.2.0", "-o", "json", env=env)
    assert again.returncode == 0 and json.loads(again.stdout) == stored
    table = fleet("releases", "list", env=env).stdout.splitlines()
    assert table[0].split() == ["VERSION", "SIZE", "SHA256", "ADDED", "BY", "FILE"]
    row = next(line for line in table if line.startswith("0.2.0"))
    assert "293.9 KiB" in row and sha[:12] in row and "admin" in row and wheel.name in row
    listed = json.loads(fleet("releases", "ls", "-o", "json", env=env).stdout)
    assert stored in listed
    # Removing asks on a terminal; without one it needs --yes.
    out = fleet("releases", "rm", "0.2.0", env=env)
    assert out.returncode == 2 and "pass --yes to remove release 0.2.0" in out.stderr
    out = fleet("releases", "rm", "0.2.0", "--yes", env=env)
    assert out.returncode == 0 and "removed release 0.2.0" in out.stdout
    out = fleet("releases", "rm", "0.2.0", "--yes", env=env)
    assert out.returncode == 3 and "no release '0.2.0'" in out.stderr
    _clean(out)


def test_add_refusals_are_clear_and_never_a_traceback(shared_cp, env, tmp_path):
    _login(shared_cp, env)
    missing = tmp_path / "nope.whl"
    out = fleet("releases", "add", str(missing), "--version", "0.4.0", env=env)
    assert out.returncode == 2
    assert f"cannot read {missing}: No such file or directory" in out.stderr
    out = fleet("releases", "add", str(tmp_path), "--version", "0.4.0", env=env)
    assert out.returncode == 2 and "cannot read" in out.stderr  # a directory
    junk = tmp_path / "junk.whl"
    junk.write_bytes(b"not a zip at all")
    out = fleet("releases", "add", str(junk), "--version", "0.4.0", env=env)
    assert out.returncode == 1
    assert "refused (400): junk.whl is not a wheel (not a zip file" in out.stderr
    wheel = release_wheel(tmp_path, "0.4.0")
    out = fleet("releases", "add", str(wheel), "--version", "0.5.0", env=env)
    assert out.returncode == 1 and "it is version 0.4.0, not 0.5.0" in out.stderr
    assert "give --version 0.4.0" in out.stderr
    out = fleet("releases", "add", str(wheel), "--version", "0.4 beta", env=env)
    assert out.returncode == 2 and "version '0.4 beta' is not allowed" in out.stderr
    assert fleet("releases", "add", str(wheel), "--version", "0.4.0", env=env).returncode == 0
    (tmp_path / "other").mkdir()
    other = release_wheel(tmp_path / "other", "0.4.0", pad_bytes=10)
    out = fleet("releases", "add", str(other), "--version", "0.4.0", env=env)
    assert out.returncode == 4 and "stored already with other content" in out.stderr
    viewer = tmp_path / "viewer.token"
    viewer.write_text(shared_cp.user("rel-viewer", "viewer"))
    out = fleet(
        "releases", "add", str(wheel), "--version", "0.4.0", "--token-file", str(viewer), env=env
    )
    assert out.returncode == 5 and "refused (403)" in out.stderr
    _clean(out)


@pytest.fixture
def capped(tmp_path: Path):
    server = RunningServer(
        tmp_path / "capped", settings={**FAST, "release_max_bytes": str(1 << 20)}
    ).start()
    try:
        yield server
    finally:
        server.stop()


def test_an_oversize_release_says_the_cap(capped, env, tmp_path):
    _login(capped, env)
    for size in (2 << 20, 40 << 20):  # one that fits the socket buffers, one that does not
        big = release_wheel(tmp_path, "0.2.0", pad_bytes=size)
        out = fleet("releases", "add", str(big), "--version", "0.2.0", env=env)
        assert out.returncode == 1, out.stderr
        assert "refused (413): the release is over 1048576 bytes (1.0 MiB)" in out.stderr
        assert "release_max_bytes" in out.stderr
        _clean(out)


async def test_agents_upgrade_rollback_restart_and_renew(shared_cp, env, tmp_path):
    _login(shared_cp, env)
    wheel = release_wheel(tmp_path, "0.3.0")
    out = await asyncio.to_thread(
        fleet, "releases", "add", str(wheel), "--version", "0.3.0", env=env
    )
    assert out.returncode == 0, out.stderr
    answers = Answers()
    agent, task = await start_agent(shared_cp, "cli-up-1", version="0.1.0", handler=answers)

    async def run(*args: str):
        done = await asyncio.to_thread(fleet, *args, env=env)
        _clean(done)
        return done

    try:
        out = await run("agents", "upgrade", "cli-up-1", "--version", "0.3.0", "--deadline", "90s")
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == (
            "agent cli-up-1 accepted the upgrade to 0.3.0 (release driver); "
            "follow it with: fleet agents show cli-up-1"
        )
        assert answers.commands[-1].deadline_s == 90
        out = await run("agents", "show", "cli-up-1")
        assert "upgrade:" in out.stdout and "requested 0.3.0 (from 0.1.0)" in out.stdout
        out = await run("agents", "rollback", "cli-up-1", "--reason", "canary is slow")
        assert out.stdout.strip() == "agent cli-up-1 is rolling back to 0.1.0 and restarting"
        assert answers.commands[-1].reason == "canary is slow"
        out = await run("agents", "restart", agent.identity.agent_id)
        assert out.stdout.strip() == "agent cli-up-1 is restarting; it reconnects within seconds"
        assert answers.commands[-1].reason == "asked by admin"
        out = await run("agents", "renew", "cli-up-1", "-o", "json")
        assert json.loads(out.stdout)["kind"] == "renew"
        out = await run("agents", "renew", "cli-up-1")
        assert "renewed its certificate: valid until 2033-05-18" in out.stdout
        # Refusals: the agent's reason (exit 4), no such release (3), a role too low (5).
        answers.refuse = CommandError(code="busy", message="queue depth 500 is over 100")
        out = await run("agents", "upgrade", "cli-up-1", "--version", "0.3.0")
        assert out.returncode == 4
        assert "refused the upgrade (busy): queue depth 500 is over 100" in out.stderr
        out = await run("agents", "upgrade", "cli-up-1", "--version", "9.9.9")
        assert out.returncode == 3 and "no release '9.9.9'" in out.stderr
        operator = tmp_path / "op.token"
        operator.write_text(shared_cp.user("cli-op", "operator"))
        out = await run(
            "agents", "upgrade", "cli-up-1", "--version", "0.3.0", "--token-file", str(operator)
        )
        assert out.returncode == 5 and "refused (403)" in out.stderr
        out = await run("agents", "restart", "nobody-here")
        assert out.returncode == 3
        out = await run("agents", "restart", "cli-up-1", "--reason", "a\x1bb")
        assert out.returncode == 2 and "--reason" in out.stderr
    finally:
        await stop_agent(task)
