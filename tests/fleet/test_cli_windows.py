"""``fleet pools windows`` and ``fleet pools unpin --part``, against a real server."""

from __future__ import annotations

import json
import time

import pytest

from fleet.ctl.windows import parse_spec
from tests.fleet.run import fleet


@pytest.mark.parametrize(
    ("text", "kind", "body"),
    [
        (
            "nightly mon-fri 02:00 2h Europe/Berlin",
            "maintenance",
            {
                "name": "nightly",
                "weekdays": ["mon", "tue", "wed", "thu", "fri"],
                "start": "02:00",
                "duration_s": 7200.0,
                "timezone": "Europe/Berlin",
            },
        ),
        (
            "late fri-mon 23:30 90m",
            "maintenance",
            {
                "name": "late",
                "weekdays": ["fri", "sat", "sun", "mon"],
                "start": "23:30",
                "duration_s": 5400.0,
                "timezone": "UTC",
            },
        ),
        (
            "bf 2026-11-27T00:00 2026-11-30T00:00 Europe/Berlin",
            "freeze",
            {
                "name": "bf",
                "from": "2026-11-27T00:00",
                "until": "2026-11-30T00:00",
                "timezone": "Europe/Berlin",
            },
        ),
    ],
)
def test_window_specs(text, kind, body):
    assert parse_spec(text, "UTC", kind) == body


def test_bad_specs_say_how_to_write_them():
    with pytest.raises(ValueError, match="write NAME DAYS HH:MM DURATION"):
        parse_spec("nightly 02:00", "UTC", "maintenance")
    with pytest.raises(ValueError, match="is not a set of days"):
        parse_spec("nightly someday 02:00 1h", "UTC", "maintenance")


def test_set_show_and_clear_windows_and_unpin_one_part(shared_cp, env):
    assert fleet("login", "--data-dir", str(shared_cp.data_dir), env=env).returncode == 0
    now = time.time()
    since = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now - 60))
    until = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(now + 3600))
    out = fleet(
        "pools", "windows", "cli-win",
        "--maintenance", "nightly daily 02:00 2h Europe/Berlin",
        "--freeze", f"launch {since} {until}",
        env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "nightly  maintenance  mon,tue,wed,thu,fri,sat,sun 02:00 for 2h" in out.stdout
    assert "frozen by:" in out.stdout and "launch until" in out.stdout
    assert "rollouts:" in out.stdout and "wait: frozen by launch until" in out.stdout

    shown = json.loads(fleet("pools", "windows", "cli-win", "-o", "json", env=env).stdout)
    assert shown["frozen_by"] == "launch" and shown["maintenance"][0]["timezone"] == "Europe/Berlin"

    # The freeze refuses a pin: exit 4 (conflict) with the server's reason.
    out = fleet("pools", "pin", "cli-win", "--version", "1.0.0", env=env)
    assert out.returncode == 4 and "frozen by launch" in out.stderr, out.stderr

    out = fleet("pools", "windows", "cli-win", "--maintenance", "bad", env=env)
    assert out.returncode == 2 and "write NAME DAYS HH:MM DURATION" in out.stderr
    out = fleet("pools", "windows", "cli-win", "--clear", env=env)
    assert out.returncode == 2 and "pass --yes" in out.stderr
    out = fleet("pools", "windows", "cli-win", "--clear", "--yes", env=env)
    assert out.returncode == 0 and "has no windows" in out.stdout

    assert fleet("pools", "pin", "cli-win", "--version", "1.0.0", env=env).returncode == 0
    config = ["--config-file", "-"]
    out = fleet("pools", "pin", "cli-win", *config, env=env, stdin='{"a": 1}')
    assert out.returncode == 0 and "version 1.0.0, config pinned" in out.stdout, out.stdout
    out = fleet("pools", "unpin", "cli-win", "--part", "version", env=env)
    assert out.returncode == 0 and "removed the version pin of pool cli-win" in out.stdout
    pin = json.loads(fleet("pools", "show", "cli-win", "-o", "json", env=env).stdout)["pin"]
    assert pin["version"] is None and pin["config"] == {"a": 1}
