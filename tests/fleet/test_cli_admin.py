"""The admin CLI against a real control plane: login, list, create, revoke; exit codes."""

from __future__ import annotations

import json
import os
import stat

from tests.agent.agents import agent_env, enroll
from tests.fleet.run import fleet


def _login(cp, env):
    out = fleet("login", "--data-dir", str(cp.data_dir), env=env)
    assert out.returncode == 0, out.stderr
    return out


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_login_writes_a_private_profile_and_never_prints_the_token(shared_cp, env, home):
    out = _login(shared_cp, env)
    profile_dir = home / "config" / "fleet"
    assert f"as admin (admin); profile {profile_dir / 'config.toml'}" in out.stdout
    assert shared_cp.admin_token not in out.stdout + out.stderr
    for name in ("config.toml", "token", "ca.pem"):
        assert _mode(profile_dir / name) == 0o600, name
    assert _mode(profile_dir) == 0o700
    assert shared_cp.admin_token not in (profile_dir / "config.toml").read_text()
    # From now on no flag is needed.
    out = fleet("whoami", env=env)
    assert out.returncode == 0 and out.stdout.startswith("admin (admin) at https://127.0.0.1")
    assert f"token from the profile {profile_dir / 'config.toml'}" in out.stdout


def test_users_round_trip_with_json_for_scripts(shared_cp, env):
    _login(shared_cp, env)
    out = fleet("users", "create", "carol", "--role", "operator", "-o", "json", env=env)
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)
    assert created["name"] == "carol" and created["token"].startswith("flta_")
    with shared_cp.api(created["token"]) as api:
        assert api.get("/v1/whoami").json() == {"name": "carol", "role": "operator"}
    listed = json.loads(fleet("users", "list", "--output", "json", env=env).stdout)
    assert {"name": "carol", "role": "operator"}.items() <= next(
        u for u in listed if u["name"] == "carol"
    ).items()
    assert all("token" not in u for u in listed)
    table = fleet("users", "list", env=env).stdout.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "CREATED", "LAST", "USED", "CREATED", "BY"]
    carol = next(line for line in table if line.startswith("carol"))
    assert carol.index("operator") == table[0].index("ROLE")  # aligned


def test_readme_aliases_token_create_and_user_create_still_work(shared_cp, env):
    data = str(shared_cp.data_dir)
    out = fleet("token", "create", "--data-dir", data, "--pool", "db-east", "--ttl", "30m", env=env)
    assert out.returncode == 0, out.stderr
    assert "expires in 30m" in out.stdout and "fleet agent enroll --server" in out.stdout
    token = next(w for w in out.stdout.split() if w.startswith("flte_"))
    out = fleet("token", "create", "--data-dir", data, "--pool", "db", "--json", env=env)
    assert json.loads(out.stdout)["pool"] == "db"
    out = fleet("user", "create", "wall", "--role", "viewer", "--data-dir", data, env=env)
    assert out.returncode == 0, out.stderr
    viewer = next(w for w in out.stdout.split() if w.startswith("flta_"))
    with shared_cp.api(viewer) as api:
        assert api.get("/v1/whoami").json() == {"name": "wall", "role": "viewer"}
    listed = json.loads(fleet("tokens", "list", "--data-dir", data, "-o", "json", env=env).stdout)
    assert any(t["pool"] == "db-east" for t in listed)
    assert token not in json.dumps(listed)


def test_exit_codes_for_refused_not_found_conflict_and_usage(shared_cp, env, tmp_path):
    _login(shared_cp, env)
    viewer = tmp_path / "viewer.token"
    viewer.write_text(shared_cp.user("vera", "viewer"))
    out = fleet("tokens", "create", "--pool", "db", "--token-file", str(viewer), env=env)
    assert out.returncode == 5
    assert "refused (403)" in out.stderr and "needs admin" in out.stderr
    bogus = tmp_path / "bogus.token"
    bogus.write_text("flta_" + "x" * 40)
    out = fleet("agents", "list", "--token-file", str(bogus), env=env)
    assert out.returncode == 5 and "refused (401)" in out.stderr and "fleet login" in out.stderr
    out = fleet("agents", "show", "nope", env=env)
    assert out.returncode == 3 and "no agent with id or name 'nope'" in out.stderr
    args = ("connections", "add", "pg-dup", "--host", "db.internal", "--port", "5432")
    assert fleet(*args, "--pool", "db", env=env).returncode == 0
    out = fleet(*args, "--pool", "db", env=env)
    assert out.returncode == 4 and "conflict" in out.stderr
    out = fleet(
        "connections", "add", "pg", "--host", "h", "--port", "99999", "--pool", "db", env=env
    )
    assert out.returncode == 2 and "'99999' is not a port" in out.stderr
    out = fleet(
        "tokens",
        "create",
        "--pool",
        "db",
        "--data-dir",
        str(tmp_path / "nowhere"),
        env={**env, "XDG_CONFIG_HOME": str(tmp_path / "no-profile")},
    )
    assert out.returncode == 2 and "cannot read the server's endpoint" in out.stderr


def test_environment_beats_the_profile_and_flags_beat_the_environment(shared_cp, env, tmp_path):
    _login(shared_cp, env)
    viewer = tmp_path / "viewer.token"
    viewer.write_text(shared_cp.user("vic", "viewer"))
    out = fleet("whoami", env={**env, "FLEET_TOKEN_FILE": str(viewer)})
    assert out.stdout.startswith("vic (viewer)") and "token from FLEET_TOKEN_FILE" in out.stdout
    out = fleet("whoami", env={**env, "FLEET_TOKEN": shared_cp.user("val", "viewer")})
    assert out.stdout.startswith("val (viewer)")
    dead = {**env, "FLEET_SERVER": "https://127.0.0.1:9"}
    out = fleet("agents", "list", env=dead)
    assert out.returncode == 1
    assert "cannot reach https://127.0.0.1:9 (from FLEET_SERVER)" in out.stderr
    out = fleet("agents", "list", "--server", shared_cp.url, env=dead)
    assert out.returncode == 0, out.stderr
    out = fleet("whoami", "--token-file", str(viewer), env={**env, "FLEET_TOKEN": "flta_x"})
    assert out.stdout.startswith("vic (viewer)")


def test_a_server_not_signed_by_a_trusted_ca_says_what_to_pass(shared_cp, env):
    out = fleet(
        "agents",
        "list",
        "--server",
        shared_cp.url,
        "--token-file",
        str(shared_cp.data_dir / "admin.token"),
        env=env,
    )
    # No CA given: the system trust store does not know our CA.
    assert out.returncode == 1
    assert "not trusted by the system's trust store" in out.stderr and "--ca-file" in out.stderr


def test_agents_list_show_and_revoke_a_pending_agent(shared_cp, env, tmp_path):
    _login(shared_cp, env)
    done = enroll(shared_cp, tmp_path / "a1", name="cli-agent-1", env=agent_env())
    assert done.returncode == 0, done.stderr
    listed = json.loads(fleet("agents", "list", "-o", "json", env=env).stdout)
    agent = next(a for a in listed if a["name"] == "cli-agent-1")
    assert agent["state"] == "pending"
    out = fleet("agents", "list", "--state", "pending", env=env)
    assert "cli-agent-1" in out.stdout and agent["id"] in out.stdout
    out = fleet("agents", "show", "cli-agent-1", env=env)
    assert out.returncode == 0 and "id:" in out.stdout and agent["id"] in out.stdout
    shown = json.loads(fleet("agents", "show", agent["id"], "-o", "json", env=env).stdout)
    assert shown["agent"]["id"] == agent["id"] and "history" in shown
    out = fleet("agents", "revoke", "cli-agent-1", env=env)
    assert out.returncode == 2 and "pass --yes" in out.stderr
    with shared_cp.api() as api:
        assert api.get(f"/v1/agents/{agent['id']}").json()["agent"]["state"] == "pending"
    out = fleet("agents", "revoke", "cli-agent-1", "--yes", env=env)
    assert out.returncode == 0 and f"revoked agent cli-agent-1 ({agent['id']})" in out.stdout
    with shared_cp.api() as api:
        assert api.get(f"/v1/agents/{agent['id']}").json()["agent"]["state"] == "revoked"


def test_pools_policy_pin_connections_alerts_and_audit(shared_cp, env):
    _login(shared_cp, env)
    out = fleet(
        "pools",
        "policy",
        "cli-pool",
        "--allow-host",
        "*.db.internal",
        "--allow-port",
        "5432",
        "--allow-port",
        "8000-8100",
        "--min-healthy",
        "1",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    assert "hosts=*.db.internal ports=5432,8000-8100 min_healthy=1" in out.stdout
    pools = json.loads(fleet("pools", "list", "-o", "json", env=env).stdout)
    pool = next(p for p in pools if p["name"] == "cli-pool")
    assert pool["policy"]["allow_ports"] == [5432, "8000-8100"]
    out = fleet("pools", "policy", "cli-pool", "--allow-cidr", "not-a-cidr", env=env)
    assert out.returncode == 1 and "is not a CIDR such as 10.0.0.0/8" in out.stderr
    out = fleet("pools", "pin", "cli-pool", "--version", "1.2.3", env=env)
    assert out.returncode == 0 and "version 1.2.3" in out.stdout
    out = fleet(
        "connections",
        "add",
        "cli-pg",
        "--host",
        "pg.db.internal",
        "--port",
        "5432",
        "--pool",
        "cli-pool",
        env=env,
    )
    assert out.returncode == 0, out.stderr
    listed = json.loads(fleet("connections", "list", "-o", "json", env=env).stdout)
    assert next(c for c in listed if c["name"] == "cli-pg")["routable"] is False
    out = fleet("connections", "probe", "cli-pg", env=env)
    assert out.returncode == 4 and "unroutable" in out.stderr
    alerts = json.loads(fleet("alerts", "list", "-o", "json", env=env).stdout)
    assert isinstance(alerts, list)
    audit = json.loads(fleet("audit", "-o", "json", env=env).stdout)
    assert {"actor": "admin", "action": "pool.policy", "target": "pool:cli-pool"}.items() <= (
        next(e for e in audit if e["action"] == "pool.policy").items()
    )
    out = fleet("audit", env=env)
    assert out.stdout.splitlines()[0].split() == [
        "TIME",
        "ACTOR",
        "ACTION",
        "TARGET",
        "RESULT",
        "DETAIL",
    ]


def test_logout_removes_the_profile(shared_cp, env, home):
    _login(shared_cp, env)
    out = fleet("logout", env=env)
    assert out.returncode == 0 and "config.toml" in out.stdout
    assert not (home / "config" / "fleet" / "token").exists()
    assert fleet("agents", "list", env=env).returncode == 2


def test_a_token_file_others_can_read_is_used_with_a_warning(shared_cp, env, tmp_path):
    token_file = tmp_path / "loose.token"
    token_file.write_text(shared_cp.admin_token)
    base = ("whoami", "--server", shared_cp.url, "--ca-file", str(shared_cp.ca_file))
    token_file.chmod(0o644)
    out = fleet(*base, "--token-file", str(token_file), env=env)
    assert out.returncode == 0
    assert f"may be read by other users (mode 0644); chmod 600 {token_file}" in out.stderr
    token_file.chmod(0o600)
    out = fleet(*base, "--token-file", str(token_file), env=env)
    assert out.returncode == 0 and out.stderr == ""
