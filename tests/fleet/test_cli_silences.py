"""``fleet alerts ack|unack``, ``fleet silences`` and ``fleet maintenance`` on a real server."""

from __future__ import annotations

import datetime as dt
import json
import time

from tests.fleet.run import fleet
from tests.helpers.server import wait_for


def _login(cp, env):
    out = fleet("login", "--data-dir", str(cp.data_dir), env=env)
    assert out.returncode == 0, out.stderr


def test_silences_add_list_and_rm(shared_cp, env):
    _login(shared_cp, env)
    out = fleet("silences", "add", "--pool", "cli-etl", "--kind", "stale", "--for", "2h",
                "--reason", "patching", "-o", "json", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert (made["pool"], made["kind"], made["reason"]) == ("cli-etl", "stale", "patching")
    assert 7190 < made["ends_at"] - made["starts_at"] <= 7200
    listed = fleet("silences", "list", env=env).stdout
    assert made["id"] in listed and "pool=cli-etl kind=stale" in listed
    out = fleet("silences", "rm", made["id"], "--yes", env=env)
    assert out.returncode == 0 and f"ended silence {made['id']}" in out.stdout
    assert made["id"] not in fleet("silences", "list", env=env).stdout


def test_silences_refuse_nothing_to_match_a_bare_number_and_too_long(shared_cp, env):
    _login(shared_cp, env)
    out = fleet("silences", "add", "--for", "1h", env=env)
    assert out.returncode != 0 and "--agent, --pool, --connection and/or --kind" in out.stderr
    out = fleet("silences", "add", "--pool", "x", "--for", "30", env=env)
    assert out.returncode != 0 and "has no unit" in out.stderr
    out = fleet("silences", "add", "--pool", "x", "--for", "30d", env=env)
    assert out.returncode != 0 and "silence_max_s" in out.stderr
    assert "Traceback" not in out.stderr


def test_maintenance_of_a_pool_holds_its_minimum_alert(shared_cp, env):
    _login(shared_cp, env)
    assert fleet("pools", "policy", "cli-mnt", "--allow-port", "5432", "--min-healthy", "1",
                 env=env).returncode == 0  # fmt: skip

    def below() -> dict | None:
        alerts = json.loads(fleet("alerts", "list", "-o", "json", env=env).stdout)
        return next((a for a in alerts if a["target"] == "pool:cli-mnt"), None)

    alert = wait_for(below, what="pool minimum alert")
    out = fleet("maintenance", "add", "--pool", "cli-mnt", "--for", "1h", "--reason", "move",
                "-o", "json", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    window = json.loads(out.stdout)
    assert "cli-mnt" in fleet("maintenance", "list", env=env).stdout
    listed = fleet("alerts", "list", env=env).stdout
    assert "maintenance of pool cli-mnt until" in listed

    out = fleet("alerts", "ack", alert["id"], "--note", "known cause", env=env)
    assert out.returncode == 0, out.stderr
    assert "acked by admin: known cause" in fleet("alerts", "list", env=env).stdout
    assert fleet("alerts", "unack", alert["id"], env=env).returncode == 0
    out = fleet("alerts", "unack", alert["id"], env=env)
    assert out.returncode != 0 and "is not acknowledged" in out.stderr

    assert fleet("maintenance", "rm", window["id"], "--yes", env=env).returncode == 0
    assert "maintenance of pool" not in fleet("alerts", "list", env=env).stdout
    audit = fleet("audit", env=env).stdout
    for action in ("maintenance.add", "maintenance.delete", "alert.ack", "alert.unack"):
        assert action in audit


def test_silences_and_maintenance_start_later_with_start(shared_cp, env):
    _login(shared_cp, env)
    before = time.time()
    out = fleet("silences", "add", "--pool", "cli-later", "--start", "+30m", "--for", "1h",
                "-o", "json", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["state"] == "pending"
    assert before + 1800 <= made["starts_at"] <= time.time() + 1800
    assert made["ends_at"] - made["starts_at"] == 3600
    listed = fleet("silences", "list", env=env).stdout
    [row] = [line for line in listed.splitlines() if made["id"] in line]
    assert "pending" in row and ("in 29m" in row or "in 30m" in row), listed

    # An ISO 8601 time without a zone is local; with Z it is UTC: the same instant.
    at = dt.datetime.now().replace(second=0, microsecond=0) + dt.timedelta(hours=2)
    out = fleet("maintenance", "add", "--pool", "cli-later", "--start", at.isoformat(),
                "--for", "30m", "--reason", "switch swap", env=env)  # fmt: skip
    assert out.returncode == 0, out.stderr
    utc = dt.datetime.fromtimestamp(at.timestamp(), dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    assert out.stdout.startswith("maintenance mnt_")
    assert f"pool cli-later from {utc} (in " in out.stdout and ") until 20" in out.stdout
    [window] = [
        w for w in json.loads(fleet("maintenance", "list", "-o", "json", env=env).stdout)
        if w["target"] == "cli-later"
    ]  # fmt: skip
    assert window["starts_at"] == at.timestamp() and window["state"] == "pending"
    out = fleet("maintenance", "add", "--pool", "cli-later", "--start",
                utc.replace(" ", "T"), "--for", "10m", env=env)  # fmt: skip
    assert out.returncode == 4 and f"already has maintenance {window['id']}" in out.stderr


def test_a_bad_start_says_what_to_write(shared_cp, env):
    _login(shared_cp, env)
    for start, says in (
        ("14:00", "has no date: write "),
        ("30m", "is a duration: write +30m"),
        ("tomorrow", "not a start time: write now, +30m, 2026-05-01T14:00 (local time)"),
        ("2020-01-01T00:00Z", "is in the past (2020-01-01 00:00Z"),
    ):
        out = fleet("silences", "add", "--pool", "x", "--start", start, env=env)
        assert out.returncode == 2, (start, out.stderr)
        assert "argument --start" in out.stderr and says in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    out = fleet("maintenance", "add", "--pool", "x", "--start", "+8d", env=env)
    assert out.returncode == 1, out.stderr
    assert "start more than 604800 s from now (silence_max_s)" in out.stderr
    assert "Traceback" not in out.stderr
