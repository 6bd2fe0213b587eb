"""A real Prometheus scrapes a real control plane; promtool checks the shipped rules.

The Prometheus config is the shipped example (``deploy/prometheus/prometheus.yml``)
with its paths and target pointed at the test's server, loading the shipped rules:
what the docs tell operators to run is what is tested.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fleet.files import write_private
from tests.agent.agents import AgentProcess, enroll
from tests.helpers.binaries import require_binary
from tests.helpers.server import REPO, RunningServer, wait_for

pytestmark = pytest.mark.timeout(180)

DEPLOY = REPO / "deploy" / "prometheus"
RULES = DEPLOY / "fleet-rules.yml"
RULE_TESTS = Path(__file__).parent / "fixtures" / "fleet-rules.test.yml"
SCRAPE_TOKEN = "prometheus-" + "0123456789abcdef" * 3
RUNBOOKS = {
    "agent-stale",
    "agent-offline",
    "certificate-expiring",
    "fleet-silent",
    "notifications-failing",
    "control-plane-down",
}
"""The anchors of docs/oncall.md the rules link to."""


def promtool() -> str:
    return require_binary("promtool", "prometheus")


def test_the_shipped_rules_pass_promtool_and_their_unit_tests():
    check = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 7 rules found" in check.stdout
    # Each alert fires on the series that should raise it, and not before.
    unit = subprocess.run(
        [promtool(), "test", "rules", RULE_TESTS.name],
        cwd=RULE_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prometheus_config(server: RunningServer, token: Path) -> str:
    """The shipped example, pointed at ``server``, scraping every second; plus a job
    whose token is wrong, which must show as down."""
    text = (DEPLOY / "prometheus.yml").read_text()
    for old, new in (
        ("scrape_interval: 30s", "scrape_interval: 1s"),
        ("evaluation_interval: 30s", "evaluation_interval: 1s"),
        ("- fleet-rules.yml", f"- {RULES}"),
        ("/etc/prometheus/fleet-ca.pem", str(server.ca_file)),
        ("/etc/prometheus/fleet-scrape.token", str(token)),
        ('"cp.example:8443"', f'"127.0.0.1:{server.port}"'),
    ):
        assert old in text, f"deploy/prometheus/prometheus.yml no longer has {old!r}"
        text = text.replace(old, new)
    wrong = token.with_name("wrong.token")
    write_private(wrong, b"not-the-scrape-token-at-all\n")
    bad_job = {
        "job_name": "fleet-wrong-token",
        "scheme": "https",
        "tls_config": {"ca_file": str(server.ca_file)},
        "authorization": {"type": "Bearer", "credentials_file": str(wrong)},
        "static_configs": [{"targets": [f"127.0.0.1:{server.port}"]}],
    }
    # YAML takes JSON: one more item of scrape_configs.
    return text + f"  - {json.dumps(bad_job)}\n"


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[tuple[RunningServer, AgentProcess, httpx.Client]]:
    binary = require_binary("prometheus", "prometheus")
    token = tmp_path / "scrape.token"
    write_private(token, (SCRAPE_TOKEN + "\n").encode())
    server = RunningServer(tmp_path / "cp")
    server.settings["metrics_token_file"] = str(token)
    server.start()
    agent = proc = None
    log = tmp_path / "prometheus.log"
    try:
        state = tmp_path / "agent"
        done = enroll(server, state, name="edge-1", token=server.enrollment_token("db-east"))
        assert done.returncode == 0, done.stderr
        agent = AgentProcess(state).start()
        config = tmp_path / "prometheus.yml"
        config.write_text(prometheus_config(server, token))
        port = _free_port()
        with log.open("wb") as out:
            args = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'tsdb'}"]
            proc = subprocess.Popen(
                [*args, f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                stdout=out,
                stderr=out,
            )
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:

            def ready() -> bool:
                assert proc is not None and proc.poll() is None, log.read_text()
                try:
                    return api.get("/-/ready").status_code == 200
                except httpx.TransportError:
                    return False

            wait_for(ready, 30, 0.2, "Prometheus ready")
            yield server, agent, api
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if agent is not None:
            agent.stop()
        server.stop()


def query(api: httpx.Client, promql: str) -> list[dict[str, Any]]:
    response = api.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def targets(api: httpx.Client) -> dict[str, dict[str, Any]]:
    active = api.get("/api/v1/targets").json()["data"]["activeTargets"]
    return {t["labels"]["job"]: t for t in active}


def test_a_real_prometheus_scrapes_the_fleet_and_evaluates_the_rules(prometheus):
    server, agent, api = prometheus

    def up() -> dict[str, dict[str, Any]] | None:
        found = targets(api)
        done = {"fleet-control-plane", "fleet-wrong-token"} <= set(found) and all(
            t["health"] != "unknown" for t in found.values()
        )
        return found if done else None

    found = wait_for(up, 30, 0.2, "both targets scraped once")
    assert found["fleet-control-plane"]["health"] == "up", found["fleet-control-plane"]
    assert found["fleet-control-plane"]["scrapeUrl"] == f"{server.url}/metrics"
    # A token that is neither the scrape token nor an API token: refused, so down.
    assert found["fleet-wrong-token"]["health"] == "down"
    assert "401" in found["fleet-wrong-token"]["lastError"]

    def connected() -> list[dict[str, Any]] | None:
        result = query(api, 'fleet_agents{state="connected"}')
        return result if any(r["value"][1] == "1" for r in result) else None

    result = wait_for(connected, 30, 0.3, "fleet_agents{state=connected} == 1 in Prometheus")
    assert [(r["metric"]["pool"], r["value"][1]) for r in result] == [("db-east", "1")]
    assert result[0]["metric"]["job"] == "fleet-control-plane"
    assert wait_for(lambda: query(api, "rate(fleet_heartbeats_total[5s]) > 0"), 30, 0.3)

    # The shipped rules load, evaluate without error on real data, and link runbooks.
    def evaluated() -> list[dict[str, Any]] | None:
        groups = api.get("/api/v1/rules").json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        return rules if rules and all(r["health"] == "ok" for r in rules) else None

    rules = wait_for(evaluated, 30, 0.3, "every shipped rule evaluated")
    anchors = {r["annotations"]["runbook_url"].split("#", 1)[1] for r in rules}
    assert anchors == RUNBOOKS
    for rule in rules:
        assert rule["annotations"]["runbook_url"].startswith("docs/oncall.md#"), rule["name"]
        assert rule["state"] == "inactive", rule  # a healthy fleet raises nothing

    # The agent is stopped on purpose (SIGTERM: it says goodbye): Prometheus sees it
    # stopped, not offline, so the offline rule stays quiet.
    agent.stop()
    stopped = 'fleet_agents{state="stopped",pool="db-east"} == 1'
    assert wait_for(lambda: query(api, stopped), 30, 0.3, "the agent stopped in Prometheus")
