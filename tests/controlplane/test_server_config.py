"""``fleet server`` settings: file < environment < flags, errors that say what is
allowed, ``--print-config`` with sources, and the database's schema at start."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from controlplane.cli import add_server_arguments
from controlplane.config import Settings
from controlplane.config_load import settings_table
from controlplane.store.migrations import latest_version
from controlplane.store.sqlite import MIGRATIONS
from tests.helpers.server import REPO, RunningServer

FIXTURE = Path(__file__).parent / "fixtures" / "schema_v0.db"


def server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m fleet server ARGS``, with no FLEET_* variables but those in ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    return subprocess.run(
        [sys.executable, "-m", "fleet", "server", *args],
        cwd=REPO,
        env=clean | (env or {}),
        capture_output=True,
        text=True,
        timeout=60,
    )


def printed(out: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    """``--print-config`` output as setting -> (value as printed, source)."""
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():
        match = re.fullmatch(r"(?:# )?(\w+) = (.*?)\s+# (.+)", line)
        if match:
            rows[match.group(1)] = (match.group(2), match.group(3))
    return rows


def refused(out: subprocess.CompletedProcess[str]) -> str:
    """The error a refused start printed: exit 2, no traceback."""
    assert out.returncode == 2, (out.returncode, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    return out.stderr


def test_flags_win_over_the_environment_which_wins_over_the_file(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text(
        'port = 9001\ntick_s = 2\nhistory_len = 30\nheartbeat_interval_s = "2s"\n'
        'san = ["cp.example.com", "10.0.0.5"]\n'
    )
    env = {"FLEET_SERVER_PORT": "9002", "FLEET_SERVER_TICK_S": "3"}
    out = server("--data-dir", str(tmp_path), "--port", "9003", "--print-config", env=env)
    rows = printed(out)
    assert rows["port"] == ("9003", "flag --port")
    assert rows["tick_s"] == ("3.0", "env FLEET_SERVER_TICK_S")
    assert rows["history_len"] == ("30", f"file {config}")
    assert rows["heartbeat_interval_s"] == ("2.0", f"file {config}")
    assert rows["san"] == ('["cp.example.com", "10.0.0.5"]', f"file {config}")
    assert rows["queue_warn"] == ("100", "default")
    assert rows["agent_port"] == ("(unset)", "default")
    assert f"config file: {config} (read)" in out.stdout
    assert f"data dir:    {tmp_path} (flag --data-dir)" in out.stdout


def test_printed_config_is_a_config_file(tmp_path):
    out = server(
        "--data-dir",
        str(tmp_path),
        "--set",
        "restart_grace_s=1m",
        "--san",
        "x.example",
        "--print-config",
    )
    saved = tmp_path / "elsewhere.toml"
    saved.write_text(out.stdout)
    assert tomllib.loads(out.stdout)["restart_grace_s"] == 60.0
    again = server("--data-dir", str(tmp_path), "--config", str(saved), "--print-config")
    rows = printed(again)
    assert rows["restart_grace_s"] == ("60.0", f"file {saved}")
    assert rows["san"] == ('["x.example"]', f"file {saved}")
    values = {k: v for k, (v, _) in rows.items()}
    assert values == {k: v for k, (v, _) in printed(out).items()}


def test_the_data_dir_comes_from_the_environment_and_holds_the_file(tmp_path):
    (tmp_path / "server.toml").write_text("queue_warn = 7\n")
    out = server("--print-config", env={"FLEET_DATA_DIR": str(tmp_path)})
    assert printed(out)["queue_warn"] == ("7", f"file {tmp_path / 'server.toml'}")
    assert f"data dir:    {tmp_path} (env FLEET_DATA_DIR)" in out.stdout
    out = server("--data-dir", str(tmp_path / "empty"), "--print-config")
    assert printed(out)["queue_warn"] == ("100", "default")
    assert "config file: none (" in out.stdout


def test_an_unknown_key_is_refused_with_a_suggestion(tmp_path):
    (tmp_path / "server.toml").write_text("hearbeat_interval_s = 1\n")
    err = refused(server("--data-dir", str(tmp_path)))
    assert err == (
        f"fleet server: {tmp_path / 'server.toml'}: unknown setting 'hearbeat_interval_s' "
        "(did you mean heartbeat_interval_s?)\n"
    )
    err = refused(server("--data-dir", str(tmp_path / "x"), "--set", "tick=1s"))
    assert "unknown setting 'tick' (did you mean tick_s?)" in err
    err = refused(server("--print-config", env={"FLEET_SERVER_QUEUE_WARNING": "5"}))
    assert (
        "environment: unknown setting 'FLEET_SERVER_QUEUE_WARNING' "
        "(did you mean FLEET_SERVER_QUEUE_WARN?)"
    ) in err


def test_a_bad_value_names_source_key_value_and_what_is_allowed(tmp_path):
    config = tmp_path / "server.toml"
    config.write_text('heartbeat_interval_s = -1\nlog_level = "loud"\n')
    err = refused(server("--data-dir", str(tmp_path)))
    assert f"fleet server: {config}: heartbeat_interval_s = -1: must be greater than 0\n" in err
    assert f'{config}: log_level = "loud": must be one of critical, error, warning' in err
    err = refused(server("--print-config", env={"FLEET_SERVER_PORT": "http"}))
    assert "environment variable FLEET_SERVER_PORT=http: must be a whole number" in err
    err = refused(server("--print-config", "--san", "not a name"))
    assert "--san not a name: 'not a name' is not a valid DNS name" in err and "IP address" in err
    config.write_text("port = = 1\n")
    err = refused(server("--data-dir", str(tmp_path)))
    assert f"{config}: not valid TOML" in err and "line 1" in err
    err = refused(server("--config", str(tmp_path / "missing.toml")))
    assert "missing.toml: no such file" in err


def test_set_values_are_typed_and_validated_by_the_same_model(tmp_path):
    rows = printed(server("--print-config", "--set", "tls=false", "--set", "skew_warn_ms=2s"))
    assert rows["tls"] == ("false", "flag --set tls")
    assert rows["skew_warn_ms"] == ("2000.0", "flag --set skew_warn_ms")
    rows = printed(server("--print-config", "--no-tls"))
    assert rows["tls"] == ("false", "flag --no-tls")
    assert "--set tls=maybe: must be true or false" in refused(
        server("--print-config", "--set", "tls=maybe")
    )
    err = refused(server("--print-config", "--set", "restart_grace_s=soon"))
    assert "'soon' is not a duration" in err
    err = refused(server("--print-config", "--heartbeat-interval", "30"))
    assert "'30' has no unit: write 30s" in err


def test_every_option_says_its_default():
    parser = argparse.ArgumentParser()
    add_server_arguments(parser)
    for action in parser._actions:
        if action.dest not in ("help", "print_config", "rotate_release_key"):  # actions
            assert action.help and "default" in action.help, action.dest


def test_docs_list_every_setting():
    docs = (REPO / "docs" / "server.md").read_text()
    assert settings_table() in docs, (
        "docs/server.md is out of date: paste the output of python -c 'from "
        "controlplane.config_load import settings_table; print(settings_table())'"
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_real_server_takes_its_listener_from_the_file(tmp_path):
    cp = RunningServer(tmp_path / "cp")
    cp.data_dir.mkdir()
    agent_port = _free_port()
    (cp.data_dir / "server.toml").write_text(f"tls = false\nagent_port = {agent_port}\n")
    cp.start()
    try:
        assert cp.url.startswith("http://127.0.0.1:")
        assert (cp.data_dir / "agent.port").read_text().strip() == str(agent_port)
        assert httpx.get(f"{cp.url}/healthz", timeout=10).json()["status"] == "ok"
    finally:
        cp.stop()


def test_a_real_server_upgrades_a_database_from_before_versions(tmp_path):
    cp = RunningServer(tmp_path / "cp")
    cp.data_dir.mkdir()
    shutil.copyfile(FIXTURE, cp.data_dir / "fleet.db")
    cp.start()
    try:
        health = httpx.get(f"{cp.url}/healthz", verify=cp.ssl_context(), timeout=10).json()
        assert health["agents"] == 2
    finally:
        cp.stop()
    with sqlite3.connect(cp.data_dir / "fleet.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == latest_version(MIGRATIONS)


def test_a_real_server_refuses_a_database_newer_than_itself(tmp_path):
    newer = latest_version(MIGRATIONS) + 1
    with sqlite3.connect(tmp_path / "fleet.db") as db:
        db.execute(f"PRAGMA user_version = {newer}")
    out = server("--data-dir", str(tmp_path), "--port", "0")
    assert out.returncode == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert f"has schema version {newer}" in out.stderr
    assert f"knows versions up to {latest_version(MIGRATIONS)}" in out.stderr
    assert "Upgrade fleet" in out.stderr
    assert not (tmp_path / "endpoint").exists()


def test_the_timers_keep_their_names_and_defaults():
    # The fields and defaults of the frozen dataclass this model replaced.
    before = {
        "heartbeat_interval_s": 5.0,
        "stale_after_intervals": 3.0,
        "offline_after_stale_s": 60.0,
        "restart_grace_s": 30.0,
        "skew_warn_ms": 1_000.0,
        "skew_critical_ms": 30_000.0,
        "cert_warn_s": 6 * 3600.0,
        "queue_warn": 100,
        "cert_lifetime_s": 24 * 3600.0,
        "time_probe_interval_s": 30.0,
        "heap_trim_s": 30.0,
        "auth_timeout_s": 10.0,
        "command_timeout_s": 15.0,
        "history_len": 60,
        "flush_interval_s": 10.0,
        "tick_s": 1.0,
        "subscriber_buffer": 2_000,
        "replay_len": 10_000,
    }
    assert Settings().model_dump(include=set(before)) == before


def test_numbers_are_numbers():
    for bad in ({"tick_s": True}, {"tick_s": "inf"}, {"queue_warn": 1.5}, {"port": -1}):
        with pytest.raises(ValidationError):
            Settings(**bad)
    with pytest.raises(ValidationError, match="at least skew_warn_ms"):
        Settings(skew_warn_ms=5000, skew_critical_ms=1000)
    with pytest.raises(ValidationError, match="tls_cert and tls_key go together"):
        Settings(tls_key=__file__)
    assert Settings(san=["CP.Example.com.", "::1", "cp.example.com"]).san == [
        "cp.example.com",
        "::1",
    ]
