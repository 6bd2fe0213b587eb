"""The agent stays small: no dashboard, no server, no cryptography while it runs."""

from __future__ import annotations

from tests.helpers.imports import modules_after

FORBIDDEN = ("textual", "fastapi", "uvicorn", "starlette", "controlplane", "fleet_tui")

PROBE = """
import json, sys
import agent.cli, agent.channel, agent.enroll, agent.probe, agent.logs, agent.config
print(json.dumps(sorted(sys.modules)))
"""


_modules = modules_after


def test_agent_imports_neither_dashboard_nor_server():
    loaded = _modules(PROBE)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == []


def test_running_agent_modules_do_not_load_cryptography_pydantic_or_httpx():
    # The long-running process: heavy libraries belong to enrollment and to the
    # short-lived key helper only.
    loaded = _modules(PROBE.replace("agent.enroll, ", ""))
    heavy = sorted({m.split(".")[0] for m in loaded} & {"cryptography", "pydantic", "httpx"})
    assert heavy == []


def test_fleet_agent_never_imports_httpx():
    # The base install on agent hosts has no httpx: enrollment speaks http.client.
    loaded = _modules(
        "import json, sys\n"
        "import fleet.cli, agent.cli, agent.enroll, agent.https, agent.tls, agent.channel\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    assert "httpx" not in {m.split(".")[0] for m in loaded}


def test_the_tls_explanation_loads_cryptography_only_when_called():
    loaded = _modules(
        "import json, sys\nimport agent.tls, agent.https\nprint(json.dumps(sorted(sys.modules)))\n"
    )
    assert "cryptography" not in {m.split(".")[0] for m in loaded}
