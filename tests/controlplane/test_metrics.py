"""``GET /metrics``: who may scrape, what it says, and that promtool accepts it."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families

from controlplane.config import Settings
from controlplane.events import EventBus
from controlplane.fleet import Fleet
from controlplane.instruments import Instruments
from controlplane.live import LiveAgent
from controlplane.metrics import make_registry, render
from controlplane.notify.stats import ReceiverStats
from controlplane.store.base import AgentRecord
from controlplane.store.sqlite import SQLiteStore
from fleet.files import write_private
from fleet.protocol import Presence
from tests.agent.agents import AgentProcess, enroll
from tests.helpers.binaries import require_binary
from tests.helpers.server import REPO, RunningServer, wait_for

pytestmark = pytest.mark.timeout(120)

SCRAPE_TOKEN = "scrape-" + "s3cr3t" * 6


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels), parsed by prometheus_client."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "scrape.token"
    write_private(path, (SCRAPE_TOKEN + "\n").encode())
    return path


@pytest.fixture
def scraped(tmp_path: Path):
    """A control plane with a scrape token file, and one real agent connected."""
    server = RunningServer(tmp_path / "cp")
    server.settings["metrics_token_file"] = str(token_file(tmp_path))
    server.start()
    agent = None
    try:
        state = tmp_path / "agent"
        done = enroll(server, state, name="edge-1", token=server.enrollment_token("db-east"))
        assert done.returncode == 0, done.stderr
        agent = AgentProcess(state).start()
        yield server, agent
    finally:
        if agent is not None:
            agent.stop()
        server.stop()


def scrape(server: RunningServer, token: str) -> str:
    with server.api(token) as api:
        response = api.get("/metrics")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/plain; version=")
        return response.text


def test_only_the_scrape_token_or_an_api_token_may_scrape(scraped):
    server, _ = scraped
    viewer = server.user("wall", "viewer")
    for token in (SCRAPE_TOKEN, viewer, server.admin_token):
        assert "fleet_agents" in scrape(server, token)
    with server.api() as api:
        for header, why in (
            ("", "no API token"),
            ("Bearer " + SCRAPE_TOKEN[:-1], "scrape token of the server's metrics_token_file"),
            ("Bearer flta_" + "x" * 40, "unknown API token"),
            ("Basic " + SCRAPE_TOKEN, "must be 'Bearer <token>'"),
        ):
            response = api.get("/metrics", headers={"Authorization": header})
            assert response.status_code == 401, header
            assert response.headers["content-type"] == "application/json"
            assert why in response.json()["detail"]
            # The refusal never echoes the token it was sent.
            assert SCRAPE_TOKEN[:-1] not in response.text
        # Refusals are audited (one row per source and window).
        audit = api.get("/v1/audit", params={"actor": "anonymous"}).json()
        assert any(e["action"] == "http.auth" for e in audit)
    assert SCRAPE_TOKEN not in server.log_path.read_text()


def test_a_scrape_shows_the_live_fleet_and_promtool_accepts_it(scraped):
    server, agent = scraped
    promtool = require_binary("promtool", "prometheus")

    def connected():
        values = samples(scrape(server, SCRAPE_TOKEN))
        key = ("fleet_agents", (("pool", "db-east"), ("state", "connected")))
        hb = values.get(("fleet_heartbeats_total", ()), 0)
        return values if values.get(key) == 1 and hb >= 2 else None

    values = wait_for(connected, 20, 0.2, "the agent connected, with heartbeats, in /metrics")
    assert values[("fleet_agents", (("pool", "db-east"), ("state", "offline")))] == 0
    assert values[("fleet_agent_channels", ())] == 1
    assert values[("fleet_agent_queue_depth_bucket", (("le", "+Inf"),))] == 1
    soonest = values[("fleet_agent_certificate_soonest_expiry_timestamp_seconds", ())]
    assert time.time() < soonest < time.time() + 25 * 3600
    # A command (the agent's effective config, which a viewer may read) is timed.
    with server.api() as api:
        api.get(f"/v1/agents/{agent.agent_id}/config").raise_for_status()
    text = scrape(server, SCRAPE_TOKEN)
    values = samples(text)
    key = ("fleet_command_duration_seconds_count", (("command", "config"), ("result", "ok")))
    assert values[key] == 1
    # The write-behind flush runs every 0.5 s in tests.
    flushes = ("fleet_store_flush_duration_seconds_count", (("result", "ok"),))
    assert wait_for(lambda: samples(scrape(server, SCRAPE_TOKEN)).get(flushes), 10)

    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_a_token_file_others_may_read_is_refused_at_start(tmp_path):
    path = token_file(tmp_path)
    path.chmod(0o644)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    args = [sys.executable, "-m", "fleet", "server", "--data-dir", str(tmp_path / "cp")]
    run = subprocess.run(
        [*args, "--port", "0", "--set", f"metrics_token_file={path}"],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr
    assert f"run `chmod 600 {path}`" in run.stderr
    path.chmod(0o600)
    path.write_text("short\n")
    with pytest.raises(ValueError, match="at least 16 characters"):
        Settings(metrics_token_file=path)


def test_a_rotated_token_file_is_read_again(tmp_path):
    from controlplane.scrape_token import ScrapeToken

    path = token_file(tmp_path)
    token = ScrapeToken(path)
    assert token.matches(SCRAPE_TOKEN) and not token.matches(SCRAPE_TOKEN + "x")
    write_private(path, b"another-token-of-enough-length\n")
    assert token.matches("another-token-of-enough-length")
    assert not token.matches(SCRAPE_TOKEN)
    path.chmod(0o640)  # now readable by the group: refused until fixed
    assert not token.matches("another-token-of-enough-length")
    path.unlink()
    assert not token.matches("another-token-of-enough-length")


# ------------------------------------------------------------ in-process


def fleet_of(tmp_path: Path, n: int) -> Fleet:
    fleet = Fleet(Settings(), SQLiteStore(tmp_path / "fleet.db"))
    states = [Presence.CONNECTED, Presence.DEGRADED, Presence.STALE, Presence.OFFLINE]
    for i in range(n):
        rec = AgentRecord(f"ag_{i}", f"a{i}", f"p{i % 2}", {}, 0.0, "01", 2e9 + i)
        agent = LiveAgent(rec, 10)
        agent.state = states[i % 4]
        agent.skew_ms = (-1) ** i * 40.0 * i
        agent.queue_depth = i
        fleet._index(agent)
    return fleet


class Notifier:
    """What the notifier offers /metrics: its receivers' stats."""

    def stats(self) -> list[ReceiverStats]:
        return [
            ReceiverStats(
                "pager", "alertmanager", queued=2, delivered=7, failed=3, dropped=1, held=5
            ),
            ReceiverStats("chat", "slack", 0, 4, 0, 0, last_success_at=1.8e9),
        ]


def test_the_collector_reads_state_pools_skew_queues_certificates_and_notifications(tmp_path):
    fleet = fleet_of(tmp_path, 8)
    fleet.heartbeats = 41
    cp = SimpleNamespace(fleet=fleet, channels={}, instruments=Instruments(), notifier=Notifier())
    values = samples(render(make_registry(cp, process=False)).decode())  # type: ignore[arg-type]
    # p0 holds agents 0, 2, 4, 6: connected, stale, connected, stale.
    assert values[("fleet_agents", (("pool", "p0"), ("state", "connected")))] == 2
    assert values[("fleet_agents", (("pool", "p0"), ("state", "stale")))] == 2
    assert values[("fleet_agents", (("pool", "p0"), ("state", "revoked")))] == 0
    assert values[("fleet_agents", (("pool", "p1"), ("state", "degraded")))] == 2
    assert values[("fleet_heartbeats_total", ())] == 41
    # Live (connected, degraded, stale) agents only: 0, 1, 2, 4, 5, 6.
    assert values[("fleet_agent_queue_depth_gcount", ())] == 6
    assert values[("fleet_agent_queue_depth_gsum", ())] == 0 + 1 + 2 + 4 + 5 + 6
    assert values[("fleet_agent_queue_depth_bucket", (("le", "0.0"),))] == 1
    assert values[("fleet_agent_queue_depth_bucket", (("le", "5.0"),))] == 5
    # |skew| 0, 0.04, 0.08, 0.16, 0.2, 0.24 s.
    assert values[("fleet_agent_clock_skew_seconds_bucket", (("le", "0.1"),))] == 3
    assert values[("fleet_agent_clock_skew_seconds_bucket", (("le", "0.25"),))] == 6
    assert values[("fleet_agent_clock_skew_seconds_gsum", ())] == pytest.approx(0.72)
    assert values[("fleet_agent_certificate_soonest_expiry_timestamp_seconds", ())] == 2e9
    pager = (("kind", "alertmanager"), ("receiver", "pager"))
    assert values[("fleet_notifications_delivered_total", pager)] == 7
    assert values[("fleet_notifications_failed_total", pager)] == 3
    assert values[("fleet_notifications_dropped_total", pager)] == 1
    assert values[("fleet_notifications_held_total", pager)] == 5
    assert values[("fleet_notifications_queued", pager)] == 2
    chat = (("kind", "slack"), ("receiver", "chat"))
    assert values[("fleet_notifications_held_total", chat)] == 0
    assert values[("fleet_notifications_last_success_timestamp_seconds", chat)] == 1.8e9
    assert ("fleet_notifications_last_success_timestamp_seconds", pager) not in values


def test_promtool_accepts_the_notification_metrics(tmp_path):
    # The live scrape above has no receivers: these families are empty there.
    promtool = require_binary("promtool", "prometheus")
    cp = SimpleNamespace(
        fleet=fleet_of(tmp_path, 4), channels={}, instruments=Instruments(), notifier=Notifier()
    )
    text = render(make_registry(cp, process=False)).decode()  # type: ignore[arg-type]
    assert 'fleet_notifications_held_total{kind="alertmanager",receiver="pager"} 5.0' in text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_stream_counters_survive_the_subscribers_that_counted_them():
    bus = EventBus(10, 2, lambda _: None)
    fast, slow = bus.subscribe(), bus.subscribe()
    for _ in range(3):
        bus.publish_agent("ag_1")  # 2 coalesced per subscriber
    bus.drain(fast)
    slow.reset_to_snapshot()  # what a full buffer does
    assert (bus.counts().coalesced, bus.counts().resets, bus.counts().dropped) == (4, 1, 1)
    bus.unsubscribe(slow)
    bus.unsubscribe(slow)  # twice: counted once
    bus.unsubscribe(fast)
    assert (bus.counts().coalesced, bus.counts().resets, bus.counts().dropped) == (4, 1, 1)
    assert bus.subscriber_count == 0


def test_docs_list_every_metric(tmp_path):
    fleet = fleet_of(tmp_path, 4)
    instruments = Instruments()
    instruments.command("agent.probe", "ok", 0.1)
    instruments.flush(True, 0.01)
    cp = SimpleNamespace(fleet=fleet, channels={}, instruments=instruments, notifier=Notifier())
    text = render(make_registry(cp, process=False)).decode()  # type: ignore[arg-type]
    docs = (REPO / "docs" / "api.md").read_text()
    families = list(text_string_to_metric_families(text))
    # The text format carries a gauge histogram's _gcount and _gsum as gauges of their own.
    parts = {f"{f.name}_{end}" for f in families for end in ("gcount", "gsum")}
    for family in families:
        if family.name in parts:
            continue
        name = family.name + ("_total" if family.type == "counter" else "")
        assert f"| `{name}` |" in docs, f"docs/api.md, Metrics, does not list {name}"
