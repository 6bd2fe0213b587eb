"""Silences and maintenance hold notifications back, end to end: a real control plane
with a webhook receiver, a real agent process that stops heartbeating (SIGSTOP)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.agent.agents import AgentProcess, enroll
from tests.helpers.receiver import Receiver
from tests.helpers.server import FAST, RunningServer, wait_for

pytestmark = pytest.mark.timeout(180)


def _server(tmp_path: Path, hook: Receiver) -> RunningServer:
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret-0123456789abcdef\n")
    secret.chmod(0o600)
    config = tmp_path / "server.toml"
    config.write_text(
        f'[[receivers]]\nname = "hook"\nkind = "webhook"\nurl = "{hook.url}/fleet"\n'
        f'secret_file = "{secret}"\n'
    )
    settings = {**FAST, "offline_after_stale_s": "120", "notify_resend_s": "1"}
    return RunningServer(
        tmp_path / "cp", settings=settings, extra_args=["--config", str(config)]
    ).start()


@pytest.mark.parametrize("hold", ["silence", "maintenance"])
def test_a_held_alert_is_shown_but_not_sent_until_the_hold_ends(tmp_path, hold):
    hook = Receiver().start()
    server = _server(tmp_path, hook)
    agent = AgentProcess(tmp_path / "agent")
    try:
        assert enroll(server, agent.state_dir, name="etl-07").returncode == 0
        agent.start()
        with server.api() as api:
            wait_for(
                lambda: (
                    api.get(f"/v1/agents/{agent.agent_id}").json()["agent"]["state"]
                    in ("connected", "degraded")
                ),
                30,
                0.1,
                "agent connected",
            )
            path = "/v1/silences" if hold == "silence" else "/v1/maintenance"
            made = api.post(path, json={"pool": "default", "duration_s": 600, "reason": "patch"})
            assert made.status_code in (200, 201), made.text
            frozen = agent.child_pid  # the agent itself, not its supervisor
            os.kill(frozen, signal.SIGSTOP)
            try:
                held = wait_for(
                    lambda: [
                        a
                        for a in api.get("/v1/alerts").json()
                        if a["kind"] == "stale" and a["suppressed"]
                    ],
                    30,
                    0.2,
                    "the stale alert, shown as held",
                )
                assert held[0]["suppressed"].endswith(": patch")
                wait_for(
                    lambda: api.get("/v1/notifications").json()[0]["held"] >= 1,
                    15,
                    0.2,
                    "the held notification counted",
                )
                # The same count for Prometheus.
                metrics = api.get("/metrics").text
                held = 'fleet_notifications_held_total{kind="webhook",receiver="hook"} 1.0'
                assert held in metrics, [m for m in metrics.splitlines() if "held" in m]
                time.sleep(2 * float(FAST["heartbeat_interval_s"]))  # resends would come
                assert hook.bodies("/fleet") == [], "a held alert reached the receiver"
                # The hold ends early: the still-firing alert is announced.
                api.delete(f"{path}/{made.json()['id']}").raise_for_status()
                events = wait_for(
                    lambda: [b["event"] for b in hook.bodies("/fleet")],
                    20,
                    0.2,
                    "the alert announced once the hold ended",
                )
                assert events[0] == "raised"
            finally:
                os.kill(frozen, signal.SIGCONT)
    finally:
        agent.stop()
        server.stop()
        hook.stop()
