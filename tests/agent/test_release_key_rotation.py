"""Rotating the release key: the old key endorses the new, agents follow the chain
from the key they keep (no enrollment again), and the stored releases are signed
again with the new key. A chain link the kept key never endorsed is not followed."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from agent.keys import follow_release_key, follow_release_key_isolated
from controlplane.release_key import CHAIN_FILE, ReleaseKey
from fleet.protocol import KeyEndorsement, release_message
from tests.agent.agents import AgentProcess, enroll
from tests.helpers.releases import release_wheel
from tests.helpers.server import REPO, RunningServer, wait_for

pytestmark = pytest.mark.timeout(180)


def test_each_rotation_is_endorsed_by_the_key_before_it(tmp_path: Path) -> None:
    first = ReleaseKey.load_or_create(tmp_path)
    _, second = ReleaseKey.rotate(tmp_path)
    _, third = ReleaseKey.rotate(tmp_path)
    loaded = ReleaseKey.load_or_create(tmp_path)
    assert loaded.public == third.public and [e.key for e in loaded.chain] == [
        second.public,
        third.public,
    ]
    assert (tmp_path / "release.pub").read_text().strip() == third.public
    # From any key the agent may keep, the chain leads to the newest.
    assert follow_release_key(first.public, loaded.chain) == third.public
    assert follow_release_key(second.public, loaded.chain) == third.public
    assert follow_release_key(third.public, loaded.chain) == third.public
    # A key the chain never endorsed leads nowhere; nor does a forged link.
    (tmp_path / "elsewhere").mkdir()
    stranger = ReleaseKey.load_or_create(tmp_path / "elsewhere").public
    assert follow_release_key(stranger, loaded.chain) == stranger
    forged = [loaded.chain[0], KeyEndorsement(key=stranger, signature=loaded.chain[1].signature)]
    assert follow_release_key(first.public, forged) == second.public


async def test_the_agent_follows_the_chain_in_a_child_process(tmp_path: Path) -> None:
    first = ReleaseKey.load_or_create(tmp_path)
    _, new = ReleaseKey.rotate(tmp_path)
    assert await follow_release_key_isolated(first.public, new.chain) == new.public


def test_a_rotation_cut_short_is_refused_at_start_saying_what_to_do(tmp_path: Path) -> None:
    ReleaseKey.load_or_create(tmp_path)
    ReleaseKey.rotate(tmp_path)
    chain = json.loads((tmp_path / CHAIN_FILE).read_text())
    (tmp_path / "other").mkdir()
    chain[-1]["key"] = ReleaseKey.load_or_create(tmp_path / "other").public
    (tmp_path / CHAIN_FILE).write_text(json.dumps(chain))
    with pytest.raises(ValueError, match="does not end with the key"):
        ReleaseKey.load_or_create(tmp_path)


def test_a_real_agent_follows_a_rotation_and_the_release_is_signed_again(tmp_path: Path) -> None:
    cp = RunningServer(tmp_path / "cp").start()
    agent = None
    try:
        wheel = release_wheel(tmp_path, "0.9.0")
        with cp.api() as api:
            api.put("/v1/releases/0.9.0", content=wheel.read_bytes()).raise_for_status()
            before = api.get("/v1/releases/0.9.0").json()
        state = tmp_path / "agent"
        assert enroll(cp, state, name="keeper").returncode == 0
        old_key = (state / "release.pub").read_text().strip()
        agent = AgentProcess(state).start()
        with cp.api() as api:
            wait_for(
                lambda: any(a["state"] == "connected" for a in api.get("/v1/agents").json()),
                30,
                0.2,
                "the agent connected",
            )
        cp.stop()
        rotated = subprocess.run(
            [
                sys.executable,
                "-m",
                "fleet",
                "server",
                "--data-dir",
                str(cp.data_dir),
                "--rotate-release-key",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert rotated.returncode == 0, rotated.stderr
        new_key = (cp.data_dir / "pki" / "release.pub").read_text().strip()
        assert new_key != old_key and f"now: {new_key}" in rotated.stdout
        cp.start()
        wait_for(
            lambda: (state / "release.pub").read_text().strip() == new_key,
            60,  # the agent's reconnect backoff grew while the server was down
            0.2,
            "the agent keeping the new key",
        )
        assert "the release key was rotated" in agent.output()
        with cp.api() as api:
            after = api.get("/v1/releases/0.9.0").json()
        assert after["signature"] != before["signature"]
        raw = base64.b64decode(new_key.removeprefix("ed25519:"))
        Ed25519PublicKey.from_public_bytes(raw).verify(
            base64.b64decode(after["signature"]),
            release_message("0.9.0", after["sha256"], after["size"]),
        )
    finally:
        if agent is not None:
            agent.stop()
        cp.stop()


def test_the_server_refuses_a_broken_chain_in_one_line(tmp_path: Path) -> None:
    cp = RunningServer(tmp_path / "cp").start()
    cp.stop()
    (cp.data_dir / "pki" / CHAIN_FILE).write_text('[{"key": "ed25519:AAAA", "signature": "x"}]')
    done = subprocess.run(
        [sys.executable, "-m", "fleet", "server", "--data-dir", str(cp.data_dir), "--port", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "does not end with the key" in done.stderr and "restore both" in done.stderr
