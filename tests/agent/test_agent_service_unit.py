"""The systemd unit: restart on failure, a dedicated user, no token inside."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.server import REPO

UNIT = REPO / "deploy" / "fleet-agent.service"


def _settings() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    text = UNIT.read_text().replace("\\\n", " ")
    for line in text.splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(" ".join(value.split()))
    return out


def test_unit_restarts_on_failure_but_not_when_revoked():
    unit = _settings()
    assert unit["Restart"] == ["on-failure"]
    assert set(unit["RestartPreventExitStatus"][0].split()) >= {"3", "4"}
    assert unit["User"] == ["fleet-agent"] and unit["Group"] == ["fleet-agent"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["ExecStart"][0].endswith(
        "fleet agent run --state-dir /var/lib/fleet-agent --config /etc/fleet-agent/agent.toml"
    )


def test_token_comes_from_a_credential_never_from_the_unit():
    unit = _settings()
    assert unit["LoadCredential"] == ["enroll-token:/etc/fleet-agent/enroll-token"]
    assert "--token-file %d/enroll-token" in unit["ExecStartPre"][0]
    assert "--if-needed" in unit["ExecStartPre"][0]
    text = UNIT.read_text()
    assert "flte_" not in text and "FLEET_ENROLL_TOKEN" not in text


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path):
    fleet = Path(sys.executable).parent / "fleet"
    unit = tmp_path / "fleet-agent.service"
    unit.write_text(UNIT.read_text().replace("/opt/fleet/bin/fleet", str(fleet)))
    done = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == ""


def test_enroll_if_needed_skips_an_enrolled_state_dir_without_reading_a_token(
    tmp_path, capsys, monkeypatch
):
    from agent.cli import main

    monkeypatch.delenv("FLEET_ENROLL_TOKEN", raising=False)
    (tmp_path / "agent.json").write_text("{}")
    args = [
        "enroll",
        "--if-needed",
        "--server",
        "https://127.0.0.1:1",
        "--ca-pin",
        "sha256:" + "0" * 64,
        "--token-file",
        str(tmp_path / "missing"),
        "--state-dir",
        str(tmp_path),
    ]
    assert main(args) == 0
    assert "nothing to do" in capsys.readouterr().out
    # Without --if-needed, the same state dir is refused rather than overwritten.
    (tmp_path / "missing").write_text("flte_x")
    assert main(args[:1] + args[2:]) == 1
    assert "already holds an enrolled agent" in capsys.readouterr().err
