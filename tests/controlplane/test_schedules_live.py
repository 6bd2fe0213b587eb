"""Schedule-aware connections on a real server: a run due soon with no route raises
``connection_at_risk`` (in GET /v1/alerts and on the stream); a real agent process
started in one of its pools clears it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fleet.protocol import AlertCleared, AlertRaised, ConnectionUpdate
from tests.agent.agents import AgentProcess, enroll
from tests.helpers.server import FAST, RunningServer
from tests.helpers.stream import next_event, subscribe

pytestmark = pytest.mark.timeout(120)


def utc_cron(minutes_ahead: int) -> str:
    """A daily cron at a UTC minute ``minutes_ahead`` from now."""
    at = time.gmtime(time.time() + minutes_ahead * 60)
    return f"{at.tm_min} {at.tm_hour} * * *"


async def test_a_due_run_without_a_route_is_at_risk_until_an_agent_comes(tmp_path: Path):
    # Lead 10 min: the run in 5 min is checked, the one in 30 min is not yet.
    cp = RunningServer(tmp_path / "cp", settings={**FAST, "schedule_lead_s": "600"}).start()
    try:
        ws = await subscribe(cp)
        await next_event(ws)
        async with cp.aapi() as api:
            soon = {
                "name": "orders-db",
                "host": "127.0.0.1",
                "port": 5432,
                "pools": ["db-east", "db-west"],
                "schedules": [{"cron": utc_cron(5), "timezone": "UTC", "name": "nightly"}],
            }
            later = {**soon, "name": "later-db", "schedules": [{"cron": utc_cron(30)}]}
            for body in (soon, later):
                created = await api.post("/v1/connections", json=body)
                assert created.status_code == 201, created.text
            info = created.json()
            assert info["schedules"] == [{"cron": utc_cron(30), "timezone": "UTC", "name": None}]
            assert info["at_risk"] is False and info["next_run"].endswith(" UTC")
            assert 25 * 60 < info["next_run_at"] - time.time() < 31 * 60

        msg = await next_event(
            ws,
            lambda m: (
                isinstance(m, AlertRaised)
                and (m.alert.kind, m.alert.target) == ("connection_at_risk", "connection:orders-db")
            ),
        )
        assert isinstance(msg, AlertRaised)
        alert = msg.alert
        assert alert.severity == "critical"
        assert alert.message.startswith("connection at risk: next run ")
        assert alert.message.endswith(
            " UTC (nightly) has no healthy agent in pools db-east, db-west"
        ), alert.message
        assert "[" not in alert.message

        async with cp.aapi() as api:
            alerts = (await api.get("/v1/alerts")).json()
            conns = {c["name"]: c for c in (await api.get("/v1/connections")).json()}
        at_risk = [a for a in alerts if a["kind"] == "connection_at_risk"]
        assert [a["target"] for a in at_risk] == ["connection:orders-db"], "later-db is not due"
        assert conns["orders-db"]["at_risk"] is True
        assert conns["later-db"]["at_risk"] is False
        unroutable = next(
            a for a in alerts if a["target"] == "connection:orders-db" and a["kind"] == "unroutable"
        )
        assert unroutable["message"] == "no healthy agent in pools db-east, db-west"

        # A real agent process, enrolled into one of its pools.
        state = tmp_path / "db-west-1"
        done = enroll(cp, state, token=cp.enrollment_token("db-west"), name="db-west-1")
        assert done.returncode == 0, done.stderr
        agent = AgentProcess(state).start()
        try:
            # Both come, in either order: the alert is stored before it is published.
            seen: dict[str, object] = {}

            def wanted(m: object) -> bool:
                if isinstance(m, AlertCleared) and m.alert.kind == "connection_at_risk":
                    seen["cleared"] = m
                elif (
                    isinstance(m, ConnectionUpdate)
                    and m.connection.name == "orders-db"
                    and m.connection.routable
                    and not m.connection.at_risk
                ):
                    seen["update"] = m
                return len(seen) == 2

            await next_event(ws, wanted)  # type: ignore[arg-type]
            cleared = seen["cleared"]
            assert isinstance(cleared, AlertCleared) and cleared.alert.id == alert.id
            async with cp.aapi() as api:
                alerts = (await api.get("/v1/alerts")).json()
            assert not [a for a in alerts if a["kind"] == "connection_at_risk"]
        finally:
            agent.stop()
        await ws.close()
    finally:
        cp.stop()


async def test_schedules_are_validated_and_edited(tmp_path: Path):
    cp = RunningServer(tmp_path / "cp").start()
    try:
        async with cp.aapi() as api:
            base = {"name": "pg", "host": "127.0.0.1", "port": 5432, "pools": ["db"]}
            for schedule, words in (
                ({"cron": "61 * * * *"}, "not a valid expression"),
                ({"cron": "0 14 * * * *"}, "has 6 fields"),
                ({"cron": "0 14 * * *", "timezone": "Mars/Olympus"}, "time zone 'Mars/Olympus'"),
            ):
                r = await api.post("/v1/connections", json={**base, "schedules": [schedule]})
                assert r.status_code == 422, r.text
                assert words in r.json()["detail"], r.json()["detail"]
            r = await api.post("/v1/connections", json=base)
            assert r.status_code == 201 and r.json()["next_run"] is None

            r = await api.patch(
                "/v1/connections/pg",
                json={"schedules": [{"cron": "0 14 * * *", "timezone": "Europe/Berlin"}]},
            )
            assert r.status_code == 200, r.text
            assert r.json()["next_run"].endswith("14:00 Europe/Berlin")
            r = await api.patch("/v1/connections/pg", json={"host": "127.0.0.2"})
            assert r.json()["schedules"][0]["timezone"] == "Europe/Berlin", "kept"
            audit = (await api.get("/v1/audit")).json()
        assert any("0 14 * * *@Europe/Berlin" in e["detail"] for e in audit), audit

        cp.restart()
        async with cp.aapi() as api:
            [conn] = (await api.get("/v1/connections")).json()
        assert conn["schedules"] == [
            {"cron": "0 14 * * *", "timezone": "Europe/Berlin", "name": None}
        ], "stored"
    finally:
        cp.stop()
