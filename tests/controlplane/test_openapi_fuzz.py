"""The OpenAPI document is the truth: schemathesis fuzzes a real server with it.

Each role (viewer, operator, admin) gets its own fresh control plane on loopback
and a run of ``st run`` with every check on, bounded examples and a fixed seed;
the run must end with 0 failures. The server has no agent (none can enroll: the
fuzzer has no valid CSR), so every probe is refused before anything is dialled,
and pools have no policy unless the fuzzer sets one on a pool with no agent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.server import FAST, RunningServer

ST = Path(sys.executable).with_name("st")
MAX_EXAMPLES = int(os.environ.get("FLEET_FUZZ_EXAMPLES", "12"))
SEED = int(os.environ.get("FLEET_FUZZ_SEED", "20261201"))
OPEN = {("get", "/healthz"), ("get", "/v1/ca"), ("post", "/v1/enroll")}
"""The operations that take no API token."""
RANGED = {("get", "/v1/releases/{version}/download"): ["200", "206"]}
"""Downloads answer a Range with 206 Partial Content; every other operation has one success."""
FUZZ_SETTINGS: dict[str, str] = {}
"""Server settings for the fuzz on top of the test timings. The run sends bad and
missing tokens on purpose (the auth checks): a per-address limit on failed
authentications belongs here, raised, or the rest of the run is 429s."""

CONFIG = """\
# Written by tests/controlplane/test_openapi_fuzz.py for one run.
hooks = "tests.controlplane.openapi_hooks"
seed = {seed}
workers = 1
tls-verify = "{ca}"
request-timeout = 30
continue-on-failure = true
warnings = false

[auth.openapi.bearer]
bearer = "${{FLEET_FUZZ_TOKEN}}"

[generation]
max-examples = {examples}

[checks]
enabled = true

# Some bodies are more than JSON Schema can say; every check stays on, and the
# refusal they get is the one the spec declares for it:
# - a CSR must be a PEM PKCS#10 request signed by its own key: 400 otherwise;
[[operations]]
include-name = "POST /v1/enroll"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "429", "5xx"]

# - a CIDR must parse, and a port range must run low to high: 422 otherwise.
[[operations]]
include-name = "PUT /v1/pools/{{pool}}/policy"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422", "429", "5xx"]

# - a silence, a maintenance window or an acknowledgement's expiry must lie ahead
#   of the server's clock and within silence_max_s: 400 otherwise.
[[operations]]
include-name = "POST /v1/silences"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "429", "5xx"]

[[operations]]
include-name = "POST /v1/maintenance"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "400", "401", "403", "404", "409", "429", "5xx"
]

[[operations]]
include-name = "POST /v1/alerts/{{alert_id}}/ack"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "400", "401", "403", "404", "429", "5xx"
]

# - an agent release must be a wheel of this project whose metadata names the
#   version in the path: 400 otherwise (the fuzzer's bytes never are one).
[[operations]]
include-name = "PUT /v1/releases/{{version}}"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "400", "401", "403", "409", "429", "5xx"
]

# - a remediation policy's check interval must be at least the server's
#   remediation_min_check_s, and a probe rule's connection must exist, route through
#   the pool and be allowed by its probe policy: 400 otherwise.
[[operations]]
include-name = "PUT /v1/pools/{{pool}}/remediation"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "429", "5xx"]

# - a schedule's cron must parse and its time zone be an IANA name: 422 otherwise.
[[operations]]
include-name = "POST /v1/connections"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "401", "403", "409", "422", "429", "5xx",
]

[[operations]]
include-name = "PATCH /v1/connections/{{name}}"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "401", "403", "404", "422", "429", "5xx",
]

# - a window's time zone must be an IANA name, a freeze's from/until ISO times in
#   order, and names differ: 422 otherwise.
[[operations]]
include-name = "PUT /v1/pools/{{pool}}/windows"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "422", "429", "5xx"]

# - a pin cannot change while a freeze holds its pool (the fuzzer may set one), nor
#   a pool's version while a rollout moves it: 409.
[[operations]]
include-name = "PUT /v1/pools/{{pool}}/pin"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "400", "401", "403", "409", "429", "5xx"
]

[[operations]]
include-name = "PUT /v1/agents/{{agent_id}}/pin"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "400", "401", "403", "404", "409", "429", "5xx"
]

# - a rollout needs a stored release and a pool with agents (404), and starts only
#   outside a freeze and when none is active in the pool (409).
[[operations]]
include-name = "POST /v1/rollouts"
checks.positive_data_acceptance.expected-statuses = [
    "2xx", "400", "401", "403", "404", "409", "429", "5xx"
]
"""


@pytest.fixture
def fuzz_server(tmp_path: Path):
    server = RunningServer(tmp_path / "cp", settings={**FAST, **FUZZ_SETTINGS}).start()
    try:
        yield server
    finally:
        server.stop()


def spec(server: RunningServer) -> dict[str, Any]:
    with server.api() as api:
        response = api.get("/openapi.json")
        response.raise_for_status()
        document: dict[str, Any] = response.json()
        return document


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, op)
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]


def test_the_document_declares_answers_errors_and_security(fuzz_server: RunningServer) -> None:
    document = spec(fuzz_server)
    schemes = document["components"]["securitySchemes"]
    assert schemes == {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": schemes["bearer"]["description"],
        }
    }
    assert "HTTPValidationError" not in document["components"]["schemas"]
    ops = operations(document)
    assert len(ops) >= 36
    for method, path, op in ops:
        where = f"{method.upper()} {path}"
        success = [code for code in op["responses"] if code.startswith("2")]
        ranged = RANGED.get((method, path))
        assert success == ranged if ranged else len(success) == 1, where
        for code in success:
            content = op["responses"][code]["content"]
            assert all("schema" in media and media["schema"] for media in content.values()), where
        for code, answer in op["responses"].items():
            if code.startswith(("4", "5")):
                assert answer["content"] == {
                    "application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}
                }, f"{where} {code}"
        assert {"413", "422", "429"} <= set(op["responses"]), where
        if (method, path) in OPEN:
            assert "security" not in op, where
        else:
            assert op["security"] == [{"bearer": []}], where
            assert "401" in op["responses"], where
    logs = document["paths"]["/v1/agents/{agent_id}/logs"]["post"]["responses"]["200"]
    assert list(logs["content"]) == ["text/plain"]
    assert {"Content-Disposition", "X-Fleet-Truncated"} <= set(logs["headers"])
    download = document["paths"]["/v1/releases/{version}/download"]["get"]["responses"]
    assert list(download["200"]["content"]) == ["application/octet-stream"]
    assert {"ETag", "Accept-Ranges", "Content-Length"} <= set(download["200"]["headers"])
    assert "Content-Range" in download["206"]["headers"]
    assert "Content-Range" in download["416"]["headers"]
    upload = document["paths"]["/v1/releases/{version}"]["put"]["requestBody"]
    assert list(upload["content"]) == ["application/octet-stream"]


@pytest.mark.timeout(180)
@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_schemathesis_finds_nothing(fuzz_server: RunningServer, tmp_path: Path, role: str) -> None:
    token = fuzz_server.admin_token if role == "admin" else fuzz_server.user(f"fuzz-{role}", role)
    others = {r: fuzz_server.user(f"fuzz-other-{r}", r) for r in ("viewer", "operator")}
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG.format(seed=SEED, ca=fuzz_server.ca_file, examples=MAX_EXAMPLES))
    report = tmp_path / "report.json"
    # The token goes in the environment, never in argv.
    env = {
        **os.environ,
        "FLEET_FUZZ_TOKEN": token,
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "NO_COLOR": "1",
    }
    args = [str(ST), "--config-file", str(config), "--no-color", "run"]
    args += [f"{fuzz_server.url}/openapi.json", "--checks", "all", "--output-truncate", "false"]
    args += ["--report", "json", "--report-json-path", str(report)]
    started = time.monotonic()
    run = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=170)
    took = time.monotonic() - started
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"schemathesis ({role}) found failures in {took:.0f} s:\n{output}"
    summary = json.loads(report.read_text())
    print(f"{role}: {took:.1f} s; {json.dumps(summary)[:400]}")

    # The fuzzer reached every operation, and did nothing that reaches beyond loopback.
    document = spec(fuzz_server)
    assert f"Tested: {len(operations(document))}" in output, output[-3000:]
    with fuzz_server.api() as api:
        assert api.get("/v1/agents").json() == [], "an agent enrolled during the fuzz"
        # The run kept its meaning to the end: every principal still authenticates.
        for name, value in {role: token, **others}.items():
            who = api.get("/v1/whoami", headers={"Authorization": f"Bearer {value}"})
            assert who.status_code == 200, f"{name}: {who.text}"
