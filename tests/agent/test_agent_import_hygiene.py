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


def test_the_supervisor_imports_the_standard_library_only_and_little_of_it():
    # It is the service's main process for as long as the host runs: no asyncio
    # (ssl comes with it), no websockets or msgspec, and not even dataclasses
    # (inspect, ast, tokenize) or tempfile: 13 MiB of RSS, where `fleet` holds 23.
    loaded = {m.split(".")[0] for m in _modules("import agent.supervisor")}
    assert loaded & {"asyncio", "ssl", "websockets", "msgspec", "cryptography", "psutil"} == set()
    assert loaded & {"dataclasses", "inspect", "tempfile", "shutil", "logging"} == set()


def test_the_upgrade_code_stays_out_of_the_idle_agent():
    # The download and install code loads on the first upgrade command.
    loaded = _modules("import agent.cli, agent.channel")
    assert not {"agent.upgrader", "agent.download", "fleet.wheels"} & set(loaded)
