"""``fleet connections add/edit --schedule`` and the NEXT RUN column, against a real server."""

from __future__ import annotations

import json

import pytest

from fleet.ctl.connections import schedule_arg
from tests.fleet.run import fleet


@pytest.mark.parametrize(
    ("text", "body"),
    [
        ("0 14 * * *@Europe/Berlin", {"cron": "0 14 * * *", "timezone": "Europe/Berlin"}),
        ("0 14 * * *", {"cron": "0 14 * * *", "timezone": "UTC"}),
        ("@daily", {"cron": "@daily", "timezone": "UTC"}),
        ("@hourly@America/New_York", {"cron": "@hourly", "timezone": "America/New_York"}),
        (
            "nightly=30 2 * * 1-5@Europe/Berlin",
            {"cron": "30 2 * * 1-5", "timezone": "Europe/Berlin", "name": "nightly"},
        ),
    ],
)
def test_schedule_flag_shapes(text, body):
    assert schedule_arg(text) == {"name": None, **body}


def test_add_edit_and_list_schedules(shared_cp, env):
    out = fleet("login", "--data-dir", str(shared_cp.data_dir), env=env)
    assert out.returncode == 0, out.stderr
    out = fleet(
        "connections", "add", "sched-pg", "--host", "127.0.0.1", "--port", "5432",
        "--pool", "sched-db", "--schedule", "0 14 * * *@Europe/Berlin", env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    header, *rows = fleet("connections", "list", env=env).stdout.splitlines()
    assert "NEXT RUN" in header
    row = next(r for r in rows if r.startswith("sched-pg"))
    assert "14:00 Europe/Berlin" in row[header.index("NEXT RUN") :]

    out = fleet(
        "connections", "edit", "sched-pg", "--schedule", "0 6 * * *@UTC",
        "--schedule", "etl=0 18 * * *@Asia/Tokyo", "-o", "json", env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert [s["cron"] for s in json.loads(out.stdout)["schedules"]] == ["0 6 * * *", "0 18 * * *"]

    out = fleet("connections", "edit", "sched-pg", "--schedule", "0 25 * * *", env=env)
    assert out.returncode == 1 and "not a valid expression" in out.stderr, out.stderr
    out = fleet("connections", "edit", "sched-pg", "--schedule", "0 1 * * *@Mars/Base", env=env)
    assert out.returncode == 1 and "time zone 'Mars/Base' is unknown" in out.stderr

    out = fleet("connections", "edit", "sched-pg", "--no-schedules", "-o", "json", env=env)
    assert out.returncode == 0 and json.loads(out.stdout)["schedules"] == []
    assert json.loads(out.stdout)["next_run"] is None
