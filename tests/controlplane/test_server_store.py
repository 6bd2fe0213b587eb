"""``fleet server --store postgresql://…``: chosen by flag, file or environment; no
password on the command line nor in what the server prints; an unreachable server
named at start (exit 1, no traceback); and a real control plane on PostgreSQL that
keeps a real agent, its alerts and the audit across a SIGKILL."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

from controlplane.store.postgres import PostgresStore
from controlplane.store.postgres_schema import MIGRATIONS
from tests.agent.agents import AgentProcess, enroll
from tests.helpers.postgres import query, throwaway_database
from tests.helpers.server import REPO, RunningServer, wait_for


def fleet_server(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fleet", "server", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_password_on_the_command_line_is_refused_and_never_echoed(tmp_path):
    for args in (
        ["--store", "postgresql://fleet:hunter2@127.0.0.1:5432/fleet"],
        ["--set", "store=postgresql://fleet@127.0.0.1:5432/fleet?password=hunter2"],
    ):
        done = fleet_server("--data-dir", str(tmp_path), *args)
        assert done.returncode == 2, done.stderr
        assert "PGPASSWORD" in done.stderr and "store_password_file" in done.stderr
        assert "hunter2" not in done.stderr + done.stdout
    assert not (tmp_path / "pki").exists(), "refused before anything was made"


def test_the_url_from_the_environment_is_shown_without_its_password(tmp_path):
    env = {
        "FLEET_SERVER_STORE": "postgresql://fleet:hunter2@db.internal:5432/fleet",
        "PATH": "/usr/bin:/bin",
    }
    done = fleet_server("--data-dir", str(tmp_path), "--print-config", env=env)
    assert done.returncode == 0, done.stderr
    assert 'store = "postgresql://fleet@db.internal:5432/fleet"' in done.stdout
    assert "hunter2" not in done.stdout


def test_a_readable_password_file_is_refused(tmp_path):
    secret = tmp_path / "pgpass"
    secret.write_text("hunter2\n")
    secret.chmod(0o644)
    done = fleet_server(
        "--data-dir",
        str(tmp_path / "d"),
        "--store",
        "postgresql://fleet@127.0.0.1:5432/fleet",
        "--set",
        f"store_password_file={secret}",
    )
    assert done.returncode == 2
    assert f"chmod 600 {secret}" in done.stderr


def test_an_unreachable_postgresql_is_named_at_start(tmp_path):
    port = closed_port()
    done = fleet_server(
        "--data-dir",
        str(tmp_path),
        "--port",
        "0",
        "--store",
        f"postgresql://fleet@127.0.0.1:{port}/f",
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    [line] = done.stderr.splitlines()
    assert line.startswith(
        f"fleet server: cannot start: cannot reach PostgreSQL at postgresql://fleet@127.0.0.1:{port}/f"
    )
    assert "pg_hba.conf" in line and "listen_addresses" in line


def test_a_control_plane_on_postgresql_keeps_its_agent_alerts_and_audit_across_a_sigkill(
    tmp_path: Path,
):
    secret = tmp_path / "pg.password"  # read, and sent (the test server trusts loopback)
    secret.write_text("not-needed-here\n")
    secret.chmod(0o600)
    with throwaway_database() as url:
        args = ["--store", url, "--set", f"store_password_file={secret}"]
        server = RunningServer(tmp_path / "cp", extra_args=args).start()
        agent: AgentProcess | None = None
        try:
            log = server.log_path.read_text()
            assert f"store:       {url} (PostgreSQL" in log
            assert not (server.data_dir / "fleet.db").exists()
            done = enroll(server, tmp_path / "edge-1", name="edge-1")
            assert done.returncode == 0, done.stderr
            agent = AgentProcess(tmp_path / "edge-1").start()

            def state() -> str:
                with server.api() as api:
                    return str(api.get(f"/v1/agents/{agent.agent_id}").json()["agent"]["state"])

            wait_for(lambda: state() in ("connected", "degraded"), 20, 0.1, "the agent connected")
            server.set_policy("default", min_healthy=2)  # one agent: below the minimum

            def pool_alert() -> dict[str, object] | None:
                with server.api() as api:
                    alerts = api.get("/v1/alerts").json()
                return next((a for a in alerts if a["kind"] == "pool_below_min"), None)

            alert = wait_for(pool_alert, 10, 0.1, "the pool's alert")
            with server.api() as api:
                audit = api.get("/v1/audit").json()
            assert {"token.create", "pool.policy"} <= {e["action"] for e in audit}, audit

            server.kill()  # SIGKILL: nothing flushed on the way out
            server.start()

            with server.api() as api:
                agents = api.get("/v1/agents").json()
                assert [(a["id"], a["name"]) for a in agents] == [(agent.agent_id, "edge-1")]
                assert api.get("/v1/audit").json()[-len(audit) :] == audit
            assert pool_alert() == alert, "the same alert, raised at the same time"
            # The real agent comes back by itself to the restarted control plane.
            wait_for(lambda: state() in ("connected", "degraded"), 30, 0.1, "the agent back")
        finally:
            if agent is not None:
                agent.stop()
            server.stop()


def test_the_server_upgrades_an_older_postgresql_schema_and_refuses_a_newer_one(tmp_path):
    async def make_old(url: str) -> None:
        old = PostgresStore(url, migrations=MIGRATIONS[:-1])
        await old.open()
        await old.close()

    with throwaway_database() as url:
        asyncio.run(make_old(url))
        server = RunningServer(tmp_path / "cp", extra_args=["--store", url]).start()
        server.stop()
        last = MIGRATIONS[-1]
        assert (
            f"fleet server: {url}: schema upgraded to version {last.version} ({last.description})"
            in server.log_path.read_text()
        )
        asyncio.run(query(url, "UPDATE schema_version SET version = 99"))
        done = fleet_server("--data-dir", str(tmp_path / "cp"), "--port", "0", "--store", url)
        assert done.returncode == 1
        assert "Traceback" not in done.stderr
        assert f"{url} has schema version 99, but this fleet" in done.stderr
        assert f"knows versions up to {last.version}" in done.stderr


def test_a_second_control_plane_on_sqlite_is_refused_on_postgresql_it_is_a_replica(tmp_path):
    """One control plane per SQLite file: a second on the same data directory exits 1
    naming the first, without a traceback, and the first serves on. On PostgreSQL a
    second started on a copy of the data directory with the same --store is a replica:
    it follows while the first leads, and leads once the first is gone (SIGKILL)."""
    first = RunningServer(tmp_path / "cp").start()
    try:
        again = fleet_server("--data-dir", str(first.data_dir), "--port", "0")
        assert again.returncode == 1, again.stderr
        assert f"another control plane (pid {first.proc.pid}) is using" in again.stderr
        assert "Traceback" not in again.stderr
        with first.api() as api:
            assert api.get("/healthz").status_code == 200
    finally:
        first.stop()

    with throwaway_database() as url:
        server = RunningServer(tmp_path / "pg-cp", extra_args=["--store", url]).start()
        copy = tmp_path / "copy"
        subprocess.run(["cp", "-a", str(server.data_dir), str(copy)], check=True)
        (copy / "agent.port").unlink()
        replica = RunningServer(copy, extra_args=["--store", url])
        try:
            replica.start()
            with server.api() as api:
                assert api.get("/healthz").json()["leader"] is True
            with replica.api() as api:
                health = api.get("/healthz").json()
                assert health["leader"] is False and health["replica"]
            server.kill()
            with replica.api() as api:
                wait_for(lambda: api.get("/healthz").json()["leader"], 15, 0.2, "the lead")
        finally:
            replica.stop()
            server.stop()
