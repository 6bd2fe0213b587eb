"""A real Alertmanager gets the control plane's alerts: stop an agent (SIGSTOP), see
its alert there with the right labels, resume it, see the alert resolved.

Alertmanager (Debian package ``prometheus-alertmanager``) is started here on a
loopback port with a temporary config and storage and no cluster; it routes to a
webhook on the test's own HTTP receiver.  The control plane also has a webhook and
a Slack receiver, whose delivery state ``GET /v1/notifications`` shows.

Alertmanager resolves an alert its client stops sending after ``resolve_timeout``
(5 min by default): here it is :data:`RESOLVE_TIMEOUT_S`, so an alert that stays
active well past it shows that the control plane re-sends it while it fires.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.agents import AgentProcess, enroll
from tests.helpers.binaries import require_binary
from tests.helpers.receiver import Receiver
from tests.helpers.server import FAST, RunningServer, wait_for

pytestmark = pytest.mark.timeout(180)

PACKAGE = "prometheus-alertmanager"

RESOLVE_TIMEOUT_S = 3.0
"""Alertmanager's ``resolve_timeout`` in these tests (its default is 5 min)."""


def _binary() -> str:
    return require_binary("prometheus-alertmanager", PACKAGE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def hook() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def alertmanager(tmp_path: Path, hook: Receiver) -> Iterator[str]:
    binary = _binary()
    port = _free_port()
    config = tmp_path / "alertmanager.yml"
    config.write_text(
        "global:\n"
        f"  resolve_timeout: {RESOLVE_TIMEOUT_S:.0f}s\n"
        "route:\n"
        "  receiver: test\n"
        "  group_by: [alertname, agent]\n"
        "  group_wait: 1s\n"
        "  group_interval: 1s\n"
        "  repeat_interval: 1h\n"
        "receivers:\n"
        "  - name: test\n"
        "    webhook_configs:\n"
        f"      - url: {hook.url}/alertmanager\n"
        "        send_resolved: true\n"
    )
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"alertmanager exited: {(tmp_path / 'alertmanager.log').read_text()}"
            )
        try:
            return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, 30, 0.1, "alertmanager ready")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


def _am_alerts(url: str, agent: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v2/alerts", timeout=5)
    response.raise_for_status()
    return [a for a in response.json() if a["labels"].get("agent") == agent]


def _active(alert: dict[str, Any]) -> bool:
    ends = dt.datetime.fromisoformat(alert["endsAt"].replace("Z", "+00:00"))
    return alert["status"]["state"] == "active" and ends > dt.datetime.now(dt.UTC)


def _firing(url: str, agent: str) -> dict[str, dict[str, Any]]:
    """The agent's active alerts in Alertmanager, by severity."""
    return {a["labels"]["severity"]: a for a in _am_alerts(url, agent) if _active(a)}


def _stays_active(url: str, agent: str, severity: str, seconds: float) -> dict[str, Any]:
    """Poll Alertmanager for ``seconds``: the alert must be active at every look.

    Without re-sends Alertmanager would resolve it ``RESOLVE_TIMEOUT_S`` after the
    last one; returns the alert as last seen.
    """
    deadline = time.monotonic() + seconds
    while True:
        firing = _firing(url, agent)
        assert severity in firing, (
            f"the {severity} alert of {agent} stopped being active in Alertmanager "
            f"{seconds - (deadline - time.monotonic()):.1f} s into the watch: {firing}"
        )
        if time.monotonic() >= deadline:
            return firing[severity]
        time.sleep(0.25)


def test_a_stopped_agent_reaches_alertmanager_and_resolves(tmp_path, alertmanager, hook):
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret-0123456789abcdef\n")
    secret.chmod(0o600)
    config = tmp_path / "server.toml"
    config.write_text(
        f'[[receivers]]\nname = "am"\nkind = "alertmanager"\nurl = "{alertmanager}"\n\n'
        f'[[receivers]]\nname = "hook"\nkind = "webhook"\nurl = "{hook.url}/fleet?key=qtoken"\n'
        f'secret_file = "{secret}"\n\n'
        f'[[receivers]]\nname = "chat"\nkind = "slack"\n'
        f'url = "{hook.url.replace("http://", "http://user:pwzz9@")}/services/T0/B0/slacktoken"\n'
    )
    stale_s = 3 * float(FAST["heartbeat_interval_s"])
    settings = {
        **FAST,
        # Resumed while stale, before it goes offline: the same channel goes on.
        "offline_after_stale_s": "120",
        "notify_resend_s": "0.5",
        "notify_instance": "test-fleet",
    }
    server = RunningServer(
        tmp_path / "cp", settings=settings, extra_args=["--config", str(config)]
    ).start()
    agent = AgentProcess(tmp_path / "agent")
    try:
        done = enroll(server, agent.state_dir, name="etl-07")
        assert done.returncode == 0, done.stderr
        agent.start()
        with server.api() as api:

            def connected() -> bool:
                state = api.get(f"/v1/agents/{agent.agent_id}").json()["agent"]
                return state["state"] in ("connected", "degraded") and bool(state["uptime_s"])

            wait_for(connected, 30, 0.1, "agent connected")
            frozen = agent.child_pid  # the agent itself, not its supervisor
            os.kill(frozen, signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                # The wait allows more than the assertion below, so a slow alert
                # fails on the assertion, with the time it took.
                fired = wait_for(
                    lambda: [a for a in _am_alerts(alertmanager, "etl-07") if _active(a)],
                    stale_s + 30,
                    0.2,
                    "the stale alert in Alertmanager",
                )
                took = time.monotonic() - stopped
                assert took < stale_s + 5, f"the alert reached Alertmanager after {took:.1f} s"
                # Re-sent while it fires: still active well past resolve_timeout.
                _stays_active(alertmanager, "etl-07", "warning", 2 * RESOLVE_TIMEOUT_S + 1)
                # Still stopped until Alertmanager has routed it (after its group_wait).
                wait_for(
                    lambda: "firing" in {b["status"] for b in hook.bodies("/alertmanager")},
                    30,
                    0.2,
                    "Alertmanager's own notification of the firing alert",
                )
            finally:
                os.kill(frozen, signal.SIGCONT)
            [am] = fired
            labels = am["labels"]
            assert labels == {
                "alertname": "stale",
                "kind": "stale",
                "severity": "warning",
                "fleet": "test-fleet",
                "agent": "etl-07",
                "agent_id": agent.agent_id,
                "pool": "default",
            }, labels
            assert am["annotations"]["runbook_url"] == "docs/oncall.md#stale"
            assert am["annotations"]["summary"].startswith(
                "agent stale: agent etl-07 (pool default)"
            )
            assert am["generatorURL"] == f"{server.url}/v1/alerts"

            # Resumed: heartbeats flow again, the alert clears, Alertmanager hears it.
            wait_for(
                lambda: not [a for a in _am_alerts(alertmanager, "etl-07") if _active(a)],
                30,
                0.2,
                "the alert resolved in Alertmanager",
            )
            wait_for(
                lambda: "resolved" in {b["status"] for b in hook.bodies("/alertmanager")},
                30,
                0.2,
                "Alertmanager's own notification of the resolve",
            )
            # The webhook and Slack receivers heard the raise and the resolve.
            fleet_events = wait_for(
                lambda: (
                    [b["event"] for b in hook.bodies("/fleet?key=qtoken")]
                    if len(hook.bodies("/fleet?key=qtoken")) >= 2
                    else None
                ),
                30,
                0.2,
                "webhook notifications",
            )
            assert fleet_events == ["raised", "resolved"]
            slack = [b["text"] for b in hook.bodies("/services/T0/B0/slacktoken")]
            assert slack and slack[0].startswith(":large_orange_circle: WARNING agent stale")

            # Delivery state for a viewer: no secret, no secret parts of URLs.
            viewer = server.user("watcher", "viewer")
            with server.api(viewer) as as_viewer:
                response = as_viewer.get("/v1/notifications")
            assert response.status_code == 200, response.text
            rows = {r["name"]: r for r in response.json()}
            assert list(rows) == ["am", "hook", "chat"]
            assert rows["am"]["url"] == alertmanager
            assert rows["hook"]["url"] == f"{hook.url}/fleet"
            assert rows["chat"]["url"] == f"{hook.url}/…"
            text = response.text
            for secret_part in ("qtoken", "slacktoken", "pwzz9", "s3cret"):
                assert secret_part not in text
            assert rows["am"]["delivered"] >= 2 and rows["hook"]["delivered"] == 2
            assert all(r["dropped"] == 0 and r["held"] == 0 for r in rows.values())
            log = server.log_path.read_text()
            assert "s3cret" not in log and "slacktoken" not in log and "qtoken" not in log
    finally:
        agent.stop()
        server.stop()


async def test_an_acknowledged_alert_escalates_and_stays_in_alertmanager(
    tmp_path, alertmanager, hook
):
    """Acknowledging stops the repeats, nothing else: the alert stays active in
    Alertmanager (re-sent, with who acknowledged it), and its escalation is sent."""
    import asyncio

    from tests.helpers.stream import start_agent, stop_agent

    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret-0123456789abcdef\n")
    secret.chmod(0o600)
    config = tmp_path / "server.toml"
    config.write_text(
        f'[[receivers]]\nname = "am"\nkind = "alertmanager"\nurl = "{alertmanager}"\n\n'
        f'[[receivers]]\nname = "hook"\nkind = "webhook"\nurl = "{hook.url}/fleet"\n'
        f'secret_file = "{secret}"\n'
    )
    settings = {**FAST, "notify_resend_s": "0.5", "notify_repeat_s": "1"}
    server = RunningServer(
        tmp_path / "cp", settings=settings, extra_args=["--config", str(config)]
    ).start()
    alice = server.user("alice", "operator")

    def skew_events() -> list[tuple[str, str, bool]]:
        return [
            (b["event"], b["alert"]["severity"], b["repeat"])
            for b in hook.bodies("/fleet")
            if b["alert"]["kind"] == "clock_skew"
        ]

    async def eventually(predicate: Any, what: str, timeout: float = 30) -> Any:
        return await asyncio.to_thread(wait_for, predicate, timeout, 0.2, what)

    # A real protocol client whose clock is 3 s ahead: a clock_skew warning.
    agent, task = await start_agent(server, "db-1", clock_offset_s=3.0)
    try:
        await eventually(
            lambda: ("raised", "warning", True) in skew_events(), "the warning, and a repeat"
        )
        await eventually(lambda: "warning" in _firing(alertmanager, "db-1"), "it in Alertmanager")
        async with server.aapi(alice) as api:
            [open_alert] = [
                a for a in (await api.get("/v1/alerts")).json() if a["kind"] == "clock_skew"
            ]
            acked = await api.post(f"/v1/alerts/{open_alert['id']}/ack", json={"note": "looking"})
            assert acked.status_code == 200, acked.text
        # A repeat already queued may still land; after that, silence on the webhook.
        await asyncio.sleep(1)
        heard = len(skew_events())

        # Acknowledged and still firing: Alertmanager keeps it, past resolve_timeout.
        am = await asyncio.to_thread(
            _stays_active, alertmanager, "db-1", "warning", 2 * RESOLVE_TIMEOUT_S + 1
        )
        assert am["annotations"]["acknowledged_by"] == "alice"
        assert len(skew_events()) == heard, f"repeats after the ack: {skew_events()[heard:]}"

        # The clock runs away: critical, the same alert, a new and worse situation.
        agent.clock_offset_s = 40.0
        await eventually(
            lambda: ("escalated", "critical", False) in skew_events(), "the escalation sent"
        )
        [escalated] = [b for b in hook.bodies("/fleet") if b["event"] == "escalated"]
        assert escalated["previous_severity"] == "warning"
        assert escalated["alert"]["id"] == open_alert["id"]
        assert escalated["alert"]["acked_by"] == "alice"
        await eventually(
            lambda: set(_firing(alertmanager, "db-1")) == {"critical"},
            "the critical alert in Alertmanager, the warning ended",
        )
        am = await asyncio.to_thread(
            _stays_active, alertmanager, "db-1", "critical", 2 * RESOLVE_TIMEOUT_S + 1
        )
        assert am["annotations"]["acknowledged_by"] == "alice"

        # Still shown as acknowledged, not as held back; nothing was held.
        async with server.aapi() as api:
            [shown] = [a for a in (await api.get("/v1/alerts")).json() if a["kind"] == "clock_skew"]
            rows = (await api.get("/v1/notifications")).json()
        assert (shown["acked_by"], shown["ack_note"], shown["suppressed"]) == (
            "alice",
            "looking",
            None,
        )
        assert [r["held"] for r in rows] == [0, 0]
    finally:
        await stop_agent(task)
        server.stop()


def test_a_connection_at_risk_reaches_the_webhook_and_alertmanager(tmp_path, alertmanager, hook):
    """The hour-end failure, announced ahead: a scheduled run due within the lead
    with no agent in its pools reaches the receivers, and the documented regex
    matcher picks it out by one of its pools in Alertmanager."""
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret-0123456789abcdef\n")
    secret.chmod(0o600)
    config = tmp_path / "server.toml"
    config.write_text(
        f'[[receivers]]\nname = "am"\nkind = "alertmanager"\nurl = "{alertmanager}"\n\n'
        f'[[receivers]]\nname = "hook"\nkind = "webhook"\nurl = "{hook.url}/fleet"\n'
        f'secret_file = "{secret}"\n'
    )
    settings = {**FAST, "schedule_lead_s": "600", "notify_resend_s": "0.5"}
    server = RunningServer(
        tmp_path / "cp", settings=settings, extra_args=["--config", str(config)]
    ).start()
    try:
        at = time.gmtime(time.time() + 5 * 60)  # a daily run 5 min from now, in UTC
        with server.api() as api:
            created = api.post(
                "/v1/connections",
                json={
                    "name": "orders-db",
                    "host": "127.0.0.1",
                    "port": 5432,
                    "pools": ["db-east", "db-west"],
                    "schedules": [{"cron": f"{at.tm_min} {at.tm_hour} * * *", "name": "nightly"}],
                },
            )
            assert created.status_code == 201, created.text

        def at_risk() -> list[dict[str, Any]]:
            return [b for b in hook.bodies("/fleet") if b["alert"]["kind"] == "connection_at_risk"]

        [body] = wait_for(at_risk, 30, 0.2, "connection_at_risk at the webhook")
        assert (body["event"], body["alert"]["severity"]) == ("raised", "critical")
        assert body["alert"]["target"] == "connection:orders-db"
        assert body["labels"] == {"connection": "orders-db", "pools": "db-east,db-west"}
        when = f"{at.tm_hour:02d}:{at.tm_min:02d} UTC"
        assert body["summary"] == (
            f"connection at risk: connection orders-db: next run {when} (nightly) "
            "has no healthy agent in pools db-east, db-west"
        ), body["summary"]
        assert body["runbook_url"] == "docs/oncall.md#connection_at_risk"

        def in_alertmanager(matcher: str) -> list[dict[str, Any]]:
            response = httpx.get(
                f"{alertmanager}/api/v2/alerts", params={"filter": matcher}, timeout=5
            )
            response.raise_for_status()
            return [
                a
                for a in response.json()
                if a["labels"]["alertname"] == "connection_at_risk" and _active(a)
            ]

        [am] = wait_for(
            lambda: in_alertmanager('pools=~"(.+,)?db-west(,.+)?"'),
            30,
            0.2,
            "the alert in Alertmanager, matched by one of its pools",
        )
        assert am["labels"] == {
            "alertname": "connection_at_risk",
            "kind": "connection_at_risk",
            "severity": "critical",
            "fleet": "fleet",
            "connection": "orders-db",
            "pools": "db-east,db-west",
        }, am["labels"]
        assert in_alertmanager('pools=~"(.+,)?db-east(,.+)?"')
        # Anchored: a pool whose name merely starts the same does not match.
        assert in_alertmanager('pools=~"(.+,)?db(,.+)?"') == []
        assert in_alertmanager('pools=~"(.+,)?db-wes(,.+)?"') == []
    finally:
        server.stop()


async def test_escalation_and_resolve_in_alertmanager(alertmanager):
    """A warning that becomes critical ends under its old labels and fires under the
    new; its resolve carries endsAt; re-sends keep it firing meanwhile."""
    import asyncio

    from controlplane.config import Settings
    from controlplane.notify.notifier import Notifier
    from fleet.protocol import AlertInfo

    settings = Settings(
        receivers=[{"name": "am", "kind": "alertmanager", "url": alertmanager}],
        notify_resend_s=0.5,
        notify_instance="unit",
    )
    labels = {"agent": "db-1", "agent_id": "ag_9", "pool": "db"}
    notifier = Notifier(settings, lambda a: labels, base_url=lambda: "https://127.0.0.1:1")
    await notifier.start()

    async def until(predicate: Any, what: str) -> Any:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            response = await asyncio.to_thread(_am_alerts, alertmanager, "db-1")
            found = predicate(response)
            if found:
                return found
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}")

    def by_severity(alerts: list[dict[str, Any]]) -> dict[str, bool]:
        return {a["labels"]["severity"]: _active(a) for a in alerts}

    try:
        raised = time.time() - 3
        base = {"id": "al1", "kind": "clock_skew", "target": "ag_9", "raised_at": raised}
        warn = AlertInfo(severity="warning", message="clock is off by +2.0 s", **base)
        notifier.alert_changed(warn, True)
        await until(lambda a: by_severity(a) == {"warning": True}, "the warning")
        crit = AlertInfo(severity="critical", message="clock is off by +40.0 s", **base)
        notifier.alert_changed(crit, True)
        await until(
            lambda a: by_severity(a).get("critical") and not by_severity(a).get("warning"),
            "the escalation",
        )
        notifier.alert_changed(
            AlertInfo(severity="critical", message=crit.message, cleared_at=time.time(), **base),
            False,
        )
        await until(lambda a: not any(by_severity(a).values()), "the resolve")
        [stats] = notifier.stats()
        assert stats.failed == 0 and stats.delivered >= 3
    finally:
        await notifier.stop()
