"""The systemd unit and ``fleet agent install-service``: restart on failure, a dedicated
user, the token only in a root-only credential file, and a unit systemd accepts."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agent.service import render_unit
from tests.agent.agents import agent_env
from tests.helpers.server import REPO

TOKEN = "flte_not-a-real-token-0123456789"
PIN = "sha256:" + "ab" * 32
ME = pwd.getpwuid(os.getuid()).pw_name


def _settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.replace("\\\n", " ").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            out.setdefault(key.strip(), []).append(" ".join(value.split()))
    return out


def _default_unit() -> dict[str, list[str]]:
    return _settings(
        render_unit(
            fleet=["/opt/fleet/bin/fleet"],
            user="fleet-agent",
            group="fleet-agent",
            state_dir=Path("/var/lib/fleet-agent"),
            config_dir=Path("/etc/fleet-agent"),
        )
    )


def _install(tmp_path: Path, *extra: str, enroll: bool = True) -> subprocess.CompletedProcess[str]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    args = [sys.executable, "-m", "fleet", "agent", "install-service", "--user", ME]
    args += ["--unit-dir", str(tmp_path / "units"), "--config-dir", str(tmp_path / "etc")]
    if enroll:
        args += ["--server", "https://cp.example:8443", "--ca-pin", PIN]
        args += ["--token-file", str(token_file)]
    return subprocess.run(
        args + list(extra), cwd=REPO, env=agent_env(), capture_output=True, text=True, timeout=60
    )


def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        message = "systemd-analyze is missing: install the Debian package 'systemd'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found


def test_unit_restarts_on_failure_but_not_when_revoked():
    unit = _default_unit()
    assert unit["Restart"] == ["on-failure"]
    # A stop signals the supervisor only; it passes SIGTERM on (the agent says goodbye).
    assert unit["KillMode"] == ["mixed"]
    assert set(unit["RestartPreventExitStatus"][0].split()) >= {"2", "3", "4"}
    assert unit["User"] == ["fleet-agent"] and unit["Group"] == ["fleet-agent"]
    assert unit["NoNewPrivileges"] == ["yes"]
    assert unit["StateDirectory"] == ["fleet-agent"]
    assert unit["ExecStart"] == [
        "/opt/fleet/bin/fleet agent run --state-dir /var/lib/fleet-agent "
        "--config /etc/fleet-agent/agent.toml"
    ]


def test_token_comes_from_a_credential_never_from_the_unit():
    unit = _default_unit()
    assert unit["LoadCredential"] == ["enroll-token:/etc/fleet-agent/enroll-token"]
    assert "--token-file %d/enroll-token" in unit["ExecStartPre"][0]
    assert "--if-needed" in unit["ExecStartPre"][0]
    assert "FLEET_ENROLL_TOKEN" not in str(unit)


def test_install_service_writes_unit_env_and_a_root_only_token(tmp_path):
    done = _install(tmp_path)
    assert done.returncode == 0, done.stderr
    unit_file = tmp_path / "units" / "fleet-agent.service"
    env_file, token_file = tmp_path / "etc" / "agent.env", tmp_path / "etc" / "enroll-token"
    unit = _settings(unit_file.read_text())

    # ExecStart is this install's own fleet, by absolute path.
    fleet = unit["ExecStart"][0].split()[0]
    assert Path(fleet).is_absolute() and os.access(fleet, os.X_OK)
    beside = Path(sys.executable).parent / "fleet"
    if beside.is_file():  # a virtualenv: its own script, not one found on PATH
        assert fleet == str(beside)
    assert unit["User"] == [ME]
    assert unit["EnvironmentFile"] == [str(env_file)]
    assert unit["LoadCredential"] == [f"enroll-token:{token_file}"]

    assert env_file.read_text().splitlines()[1:] == [
        "FLEET_SERVER=https://cp.example:8443",
        f"FLEET_CA_PIN={PIN}",
    ]
    assert token_file.read_text() == TOKEN + "\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.stat().st_uid == os.getuid()
    assert stat.S_IMODE(unit_file.stat().st_mode) == 0o644
    for where in (unit_file.read_text(), env_file.read_text(), done.stdout, done.stderr):
        assert TOKEN not in where
    assert "systemctl enable --now fleet-agent" in done.stdout


@pytest.mark.timeout(120)
def test_systemd_accepts_the_written_unit(tmp_path):
    analyze = _systemd_analyze()
    done = _install(tmp_path)
    assert done.returncode == 0, done.stderr
    # A unit path of its own (the trailing colon appends systemd's, for the targets):
    # the unit verified is the one written, and ExecStart must name a real program.
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{tmp_path / 'units'}:")
    verify = subprocess.run(
        [analyze, "verify", "fleet-agent.service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert verify.returncode == 0, verify.stderr
    assert verify.stderr.strip() == ""


def test_systemd_analyze_rejects_a_broken_unit(tmp_path):
    # The check above can fail: the same verify refuses a unit whose program is missing.
    analyze = _systemd_analyze()
    assert _install(tmp_path).returncode == 0
    unit_file = tmp_path / "units" / "fleet-agent.service"
    fleet = _settings(unit_file.read_text())["ExecStart"][0].split()[0]
    unit_file.write_text(unit_file.read_text().replace(fleet, str(tmp_path / "no-such-fleet")))
    env = dict(os.environ, SYSTEMD_UNIT_PATH=f"{tmp_path / 'units'}:")
    verify = subprocess.run(
        [analyze, "verify", "fleet-agent.service"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert verify.returncode != 0
    assert "no-such-fleet" in verify.stderr


def test_dry_run_prints_everything_but_the_token_and_touches_nothing(tmp_path):
    done = _install(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "units").exists() and not (tmp_path / "etc").exists()
    assert "ExecStart=" in done.stdout and f"FLEET_CA_PIN={PIN}" in done.stdout
    assert f"{tmp_path / 'etc' / 'enroll-token'} (0600" in done.stdout
    assert TOKEN not in done.stdout + done.stderr


def test_a_second_install_keeps_settings_and_credential(tmp_path):
    assert _install(tmp_path).returncode == 0
    settings = tmp_path / "etc" / "agent.toml"
    settings.write_text('allow_ports = ["443"]\n')
    again = _install(tmp_path, enroll=False)
    assert again.returncode == 0, again.stderr
    assert settings.read_text() == 'allow_ports = ["443"]\n'
    assert (tmp_path / "etc" / "enroll-token").read_text() == TOKEN + "\n"
    assert f"kept {settings}" in again.stdout


@pytest.mark.parametrize(
    ("extra", "enroll", "says"),
    [
        ((), False, "the first install needs --server URL --ca-pin"),
        (("--server", "https://cp.example:8443"), False, "give --server, --ca-pin and"),
        (("--state-dir", "/srv/agent"), True, "--state-dir must be under /var/lib"),
        (("--user", "no-such-user-x"), True, "useradd --system"),
    ],
)
def test_install_service_refuses_with_what_to_do(tmp_path, extra, enroll, says):
    done = _install(tmp_path, *extra, enroll=enroll)
    assert done.returncode == 2
    assert says in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "units").exists()


def test_an_unwritable_unit_dir_is_an_error_not_a_traceback(tmp_path):
    (tmp_path / "units").write_text("a file, not a directory")
    done = _install(tmp_path)
    assert done.returncode == 1
    assert "cannot write" in done.stderr and "Traceback" not in done.stderr


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
