"""Roles are enforced by the server on every endpoint."""

from __future__ import annotations

import pytest

ADMIN_ONLY = [
    ("post", "/v1/tokens", {"pool": "p"}),
    ("get", "/v1/tokens", None),
    ("post", "/v1/users", {"name": "x", "role": "viewer"}),
    ("get", "/v1/users", None),
    ("post", "/v1/agents/nobody/revoke", None),
    ("put", "/v1/agents/nobody/pin", {"version": "1"}),
    ("put", "/v1/pools/p/pin", {"version": "1"}),
    ("put", "/v1/pools/p/policy", {"allow_ports": [1]}),
    ("post", "/v1/connections", {"name": "c", "host": "h", "port": 1, "pools": ["p"]}),
    ("delete", "/v1/users/vera", None),
    ("post", "/v1/users/vera/rotate", None),
    ("delete", "/v1/tokens/nope", None),
    ("delete", "/v1/agents/nobody", None),
    ("delete", "/v1/agents/nobody/pin", None),
    ("delete", "/v1/pools/p/pin", None),
    ("delete", "/v1/pools/p/policy", None),
    ("patch", "/v1/connections/c", {"port": 2}),
    ("delete", "/v1/connections/c", None),
    ("put", "/v1/releases/0.2.0", None),
    ("delete", "/v1/releases/0.2.0", None),
    ("post", "/v1/agents/nobody/upgrade", {"version": "0.2.0"}),
    ("post", "/v1/agents/nobody/rollback", {}),
    ("put", "/v1/pools/p/windows", {}),
    ("post", "/v1/rollouts", {"pool": "p", "version": "0.2.0"}),
]
OPERATOR = [
    ("post", "/v1/agents/nobody/probe", {"host": "h", "port": 1}),
    ("post", "/v1/agents/nobody/logs", {}),
    ("post", "/v1/connections/c/probe", {}),
    ("get", "/v1/audit", None),
    ("post", "/v1/agents/nobody/restart", {}),
    ("post", "/v1/agents/nobody/renew", {}),
    ("get", "/v1/releases/0.2.0/download", None),
    ("post", "/v1/rollouts/ro_nothing/pause", None),
    ("post", "/v1/rollouts/ro_nothing/resume", None),
    ("post", "/v1/rollouts/ro_nothing/abort", None),
]
VIEWER = [
    ("get", "/v1/agents", None),
    ("get", "/v1/releases", None),
    ("get", "/v1/alerts", None),
    ("get", "/v1/connections", None),
    ("get", "/v1/notifications", None),
    ("get", "/v1/pools", None),
    ("get", "/v1/whoami", None),
    ("get", "/v1/pools/p/windows", None),
    ("get", "/v1/rollouts", None),
]


def call(api, method, path, body):
    return api.request(method.upper(), path, json=body)


@pytest.fixture
def tokens(control_plane):
    return {
        "viewer": control_plane.user("vera", "viewer"),
        "operator": control_plane.user("otto", "operator"),
    }


def test_viewer_is_refused_every_write(control_plane, tokens):
    with control_plane.api(tokens["viewer"]) as api:
        for method, path, body in ADMIN_ONLY + OPERATOR:
            r = call(api, method, path, body)
            assert r.status_code == 403, (path, r.status_code)
            assert "vera has role viewer" in r.json()["detail"]
        for method, path, body in VIEWER:
            assert call(api, method, path, body).status_code == 200, path


def test_refusals_by_role_are_audited(control_plane, tokens):
    with control_plane.api(tokens["operator"]) as api:
        assert api.delete("/v1/users/admin").status_code == 403
    with control_plane.api() as api:
        rows = api.get("/v1/audit", params={"actor": "otto"}).json()
    assert rows[0]["action"] == "http.delete" and rows[0]["target"] == "/v1/users/admin"
    assert rows[0]["result"] == "forbidden" and "needs admin" in rows[0]["detail"]


def test_operator_is_refused_admin_actions(control_plane, tokens):
    with control_plane.api(tokens["operator"]) as api:
        for method, path, body in ADMIN_ONLY:
            r = call(api, method, path, body)
            assert r.status_code == 403, path
            assert "needs admin" in r.json()["detail"]
        # Allowed past the role check: the 404 comes from the missing agent.
        assert (
            call(api, "post", "/v1/agents/nobody/probe", {"host": "h", "port": 1}).status_code
            == 404
        )
        assert call(api, "get", "/v1/audit", None).status_code == 200
        assert call(api, "post", "/v1/agents/nobody/restart", {}).status_code == 404
        assert call(api, "get", "/v1/releases/0.2.0/download", None).status_code == 404
        assert call(api, "post", "/v1/rollouts/ro_nothing/abort", None).status_code == 404


def test_missing_and_wrong_tokens_get_401(control_plane):
    import httpx

    with httpx.Client(base_url=control_plane.url, verify=control_plane.ssl_context()) as anon:
        r = anon.get("/v1/agents")
        assert r.status_code == 401 and "Bearer" in r.json()["detail"]
        r = anon.get("/v1/agents", headers={"Authorization": "Bearer flta_" + "z" * 40})
        assert r.status_code == 401 and "unknown API token" in r.json()["detail"]
        r = anon.get("/v1/agents", headers={"Authorization": "Basic abc"})
        assert r.status_code == 401


def test_user_creation_is_audited_and_token_shown_once(control_plane):
    token = control_plane.user("dana", "operator")
    assert token.startswith("flta_")
    with control_plane.api() as api:
        users = api.get("/v1/users").json()
        assert {"dana", "admin"} <= {u["name"] for u in users}
        assert all("token" not in u for u in users)
        audit = api.get("/v1/audit").json()
        assert any(e["action"] == "user.create" and e["target"] == "dana" for e in audit)
        dup = api.post("/v1/users", json={"name": "dana", "role": "viewer"})
        assert dup.status_code == 409
        bad = api.post("/v1/users", json={"name": "eve", "role": "root"})
        assert bad.status_code == 400 and "viewer, operator, admin" in bad.json()["detail"]
