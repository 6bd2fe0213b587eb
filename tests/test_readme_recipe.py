"""The README's "Running it for real", followed on a name that is not a default.

The control plane is bound to 127.0.0.2 with ``--san 127.0.0.2``; the agent enrolls
and runs against ``https://127.0.0.2:PORT`` with the standard library alone (httpx
is made unimportable for it), and the dashboard's event stream shows it connected.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fleet.protocol import Snapshot
from tests.agent.agents import AgentProcess, agent_env
from tests.helpers.server import REPO, RunningServer, wait_for
from tests.helpers.stream import next_event, subscribe

pytestmark = pytest.mark.timeout(120)

HOST = "127.0.0.2"


def fleet(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def without_httpx(tmp_path: Path) -> dict[str, str]:
    """An agent environment in which ``import httpx`` fails, as on a base install."""
    poison = tmp_path / "no-httpx" / "httpx"
    poison.mkdir(parents=True)
    (poison / "__init__.py").write_text("raise ImportError('httpx is not installed here')\n")
    env = agent_env()
    env["PYTHONPATH"] = os.pathsep.join(
        [str(poison.parent), *filter(None, [env.get("PYTHONPATH")])]
    )
    return env


def test_running_it_for_real_on_a_name_that_is_not_a_default(tmp_path):
    data = tmp_path / "fleet"
    server = RunningServer(data, host=HOST, extra_args=["--san", HOST]).start()
    agent: AgentProcess | None = None
    try:
        assert server.url.startswith(f"https://{HOST}:")
        banner = server.log_path.read_text()
        assert re.search(r"TLS names: .*127\.0\.0\.2", banner), banner

        # fleet login --data-dir /var/lib/fleet  (the profile, 0600)
        admin_env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
        admin_env.pop("FLEET_SERVER", None)
        logged_in = fleet("login", "--data-dir", str(data), env=admin_env)
        assert logged_in.returncode == 0, logged_in.stderr
        profile = tmp_path / "config" / "fleet" / "config.toml"
        assert profile.stat().st_mode & 0o777 == 0o600

        # fleet tokens create --pool db-east --ttl 30m --uses 1
        created = fleet(
            "tokens", "create", "--pool", "db-east", "--ttl", "30m", "--uses", "1", env=admin_env
        )
        assert created.returncode == 0, created.stderr
        token = re.search(r"flte_\S+", created.stdout)
        assert token is not None, created.stdout
        assert f"--server https://{HOST}:{server.port}" in created.stdout
        assert server.ca_pin in created.stdout
        token_file = tmp_path / "token"
        token_file.write_text(token.group(0) + "\n")
        token_file.chmod(0o600)

        # on the agent host: fleet agent enroll ... ; fleet agent run ...
        env = without_httpx(tmp_path)
        state_dir = tmp_path / "fleet-agent"
        enrolled = fleet(
            "agent",
            "enroll",
            "--server",
            f"https://{HOST}:{server.port}",
            "--ca-pin",
            server.ca_pin,
            "--token-file",
            str(token_file),
            "--state-dir",
            str(state_dir),
            "--name",
            "db-east-1",
            env=env,
        )
        assert enrolled.returncode == 0, enrolled.stderr
        assert "verified with the pinned fleet CA" in enrolled.stdout
        doc = json.loads((state_dir / "agent.json").read_text())
        assert doc["server"] == f"https://{HOST}:{server.port}"
        assert doc["tls_trust"] == "pinned"

        agent = AgentProcess(state_dir, env=env).start()

        def connected() -> bool:
            with server.api() as api:
                listed = api.get("/v1/agents").json()
            rows = listed["agents"] if isinstance(listed, dict) else listed
            return any(
                a["name"] == "db-east-1" and a["state"] == "connected" and a["uptime_s"]
                for a in rows
            )

        wait_for(connected, 20, 0.1, "db-east-1 connected through 127.0.0.2")
        assert f"connected to https://{HOST}:{server.port}" in agent.output()

        async def snapshot() -> Snapshot:
            ws = await subscribe(server)
            try:
                event = await next_event(ws, lambda m: isinstance(m, Snapshot))
                assert isinstance(event, Snapshot)
                return event
            finally:
                await ws.close()

        # fleet agents list, and the audit of what was done
        listed = fleet("agents", "list", "-o", "json", env=admin_env)
        assert listed.returncode == 0, listed.stderr
        assert [(a["name"], a["state"]) for a in json.loads(listed.stdout)] == [
            ("db-east-1", "connected")
        ]
        audit = fleet("audit", "--since", "24h", env=admin_env)
        assert audit.returncode == 0 and "token.create" in audit.stdout, audit.stderr

        snap = asyncio.run(snapshot())
        [row] = [a for a in snap.agents if a.name == "db-east-1"]
        assert row.state == "connected" and row.pool == "db-east"
    finally:
        if agent is not None:
            assert agent.stop() == 0
        server.stop()
