"""The CLI over the lifecycle routes of issue 7 point 2 (DELETE, PATCH, rotate, filters).

These need the routes of the lifecycle branch: run them after it is merged.
"""

from __future__ import annotations

import json

from tests.agent.agents import agent_env, enroll
from tests.fleet.run import fleet


def _login(cp, env):
    out = fleet("login", "--data-dir", str(cp.data_dir), env=env)
    assert out.returncode == 0, out.stderr


def _json(*args, env):
    out = fleet(*args, "-o", "json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_users_revoke_and_rotate(shared_cp, env):
    _login(shared_cp, env)
    old = _json("users", "create", "rita", "--role", "viewer", env=env)["token"]
    rotated = _json("users", "rotate", "rita", env=env)
    assert rotated["name"] == "rita" and rotated["token"] != old
    with shared_cp.api(old) as api:
        assert api.get("/v1/whoami").status_code == 401
    with shared_cp.api(rotated["token"]) as api:
        assert api.get("/v1/whoami").status_code == 200
    out = fleet("users", "revoke", "rita", env=env)
    assert out.returncode == 2 and "pass --yes" in out.stderr
    out = fleet("users", "revoke", "rita", "--yes", env=env)
    assert out.returncode == 0 and "revoked user rita" in out.stdout, out.stderr
    with shared_cp.api(rotated["token"]) as api:
        assert api.get("/v1/whoami").status_code == 401
    out = fleet("users", "revoke", "nobody-here", "--yes", env=env)
    assert out.returncode == 3


def test_tokens_list_shows_state_and_revoke_withdraws_one(shared_cp, env):
    _login(shared_cp, env)
    created = _json("tokens", "create", "--pool", "lc", "--ttl", "1h", env=env)
    listed = _json("tokens", "list", env=env)
    mine = next(t for t in listed if t["id"] == created["id"])
    assert mine["revoked_at"] is None and mine["state"]
    out = fleet("tokens", "revoke", created["id"], "--yes", env=env)
    assert out.returncode == 0 and f"revoked enrollment token {created['id']}" in out.stdout
    assert created["id"] not in [t["id"] for t in _json("tokens", "list", env=env)]
    everything = _json("tokens", "list", "--all", env=env)
    mine = next(t for t in everything if t["id"] == created["id"])
    assert mine["revoked_at"] is not None
    assert created["id"] in fleet("tokens", "list", "--all", env=env).stdout
    out = fleet("tokens", "revoke", "no-such-id", "--yes", env=env)
    assert out.returncode == 3


def test_agents_decommission_forgets_a_pending_agent(shared_cp, env, tmp_path):
    _login(shared_cp, env)
    assert enroll(shared_cp, tmp_path / "d", name="to-forget", env=agent_env()).returncode == 0
    agent_id = next(a["id"] for a in _json("agents", "list", env=env) if a["name"] == "to-forget")
    out = fleet("agents", "decommission", "to-forget", env=env)
    assert out.returncode == 2 and "pass --yes" in out.stderr
    out = fleet("agents", "decommission", "to-forget", "--yes", env=env)
    assert out.returncode == 0, out.stderr
    assert "to-forget" not in [a["name"] for a in _json("agents", "list", env=env)]
    audit = _json("audit", "--since", "1m", env=env)
    assert any(e["target"] == agent_id and e["actor"] == "admin" for e in audit)
    assert fleet("agents", "decommission", agent_id, "--yes", env=env).returncode == 3


def test_connections_update_and_rm(shared_cp, env):
    _login(shared_cp, env)
    args = ("connections", "add", "lc-pg", "--host", "a.internal", "--port", "5432")
    assert fleet(*args, "--pool", "lc", env=env).returncode == 0
    out = fleet(*args, "--pool", "lc", env=env)
    assert out.returncode == 4 and "fleet connections update lc-pg" in out.stderr
    updated = _json("connections", "update", "lc-pg", "--port", "6432", env=env)
    assert updated["port"] == 6432 and updated["host"] == "a.internal"
    out = fleet("connections", "rm", "lc-pg", "--yes", env=env)
    assert out.returncode == 0 and "deleted connection lc-pg" in out.stdout
    assert "lc-pg" not in [c["name"] for c in _json("connections", "list", env=env)]
    assert fleet("connections", "rm", "lc-pg", "--yes", env=env).returncode == 3
    assert fleet("connections", "update", "lc-pg", "--port", "1", env=env).returncode == 3


def test_pools_show_policy_clear_and_unpin(shared_cp, env):
    _login(shared_cp, env)
    assert (
        fleet(
            "pools",
            "policy",
            "lc-pool",
            "--allow-cidr",
            "127.0.0.0/8",
            "--allow-port",
            "443",
            env=env,
        ).returncode
        == 0
    )
    assert fleet("pools", "pin", "lc-pool", "--version", "2.0.0", env=env).returncode == 0
    shown = _json("pools", "show", "lc-pool", env=env)
    assert shown["pin"]["version"] == "2.0.0" and shown["policy"]["allow_cidrs"] == ["127.0.0.0/8"]
    out = fleet("pools", "policy", "lc-pool", env=env)
    assert out.returncode == 0 and "cidrs=127.0.0.0/8 ports=443" in out.stdout
    assert fleet("pools", "unpin", "lc-pool", env=env).returncode == 0
    assert fleet("pools", "policy", "lc-pool", "--clear", env=env).returncode == 0
    # With no agent, pin or policy left, nothing names the pool any more.
    gone = fleet("pools", "show", "lc-pool", env=env)
    assert gone.returncode == 3 and "no pool 'lc-pool'" in gone.stderr
    assert fleet("pools", "show", "no-such-pool", env=env).returncode == 3


def test_audit_since_and_actor(shared_cp, env):
    _login(shared_cp, env)
    token = shared_cp.user("auditee", "admin")
    with shared_cp.api(token) as api:
        api.put("/v1/pools/audited/policy", json={"allow_ports": [1]}).raise_for_status()
    mine = _json("audit", "--actor", "auditee", env=env)
    assert mine and all(e["actor"] == "auditee" for e in mine)
    assert _json("audit", "--since", "1h", "--actor", "auditee", env=env) == mine
    # The entry was written before this process started, more than 1 ms ago.
    assert _json("audit", "--since", "1ms", "--actor", "auditee", env=env) == []


def test_rotating_ones_own_token_keeps_the_profile_working(shared_cp, env, tmp_path):
    token_file = tmp_path / "me.token"
    token_file.write_text(shared_cp.user("selfie", "admin"))
    out = fleet(
        "login",
        "--server",
        shared_cp.url,
        "--ca-file",
        str(shared_cp.ca_file),
        "--token-file",
        str(token_file),
        env=env,
    )
    assert out.returncode == 0, out.stderr
    out = fleet("users", "rotate", "selfie", env=env)
    assert out.returncode == 0 and "Your profile now uses it" in out.stdout, out.stderr
    out = fleet("whoami", env=env)
    assert out.returncode == 0 and out.stdout.startswith("selfie (admin)")
    with shared_cp.api(token_file.read_text().strip()) as api:
        assert api.get("/v1/whoami").status_code == 401  # the old token
