"""Upgrade, roll back, restart and renew one agent over REST, on a real server with
simulated agents (the real protocol): what the agent receives, what the caller
gets back, the download token the upgrade carries, roles and the audit.

The real agent's side of an upgrade is tested with real agent processes in
tests/agent/.
"""

from __future__ import annotations

import hashlib

import httpx

from fleet.protocol import CommandError, UpgradeCommand
from tests.helpers.answers import Answers
from tests.helpers.releases import release_wheel, verify_release
from tests.helpers.stream import start_agent, stop_agent


async def _upload(server, tmp_path, version: str, **kw) -> tuple[bytes, dict]:
    data = release_wheel(tmp_path, version, **kw).read_bytes()
    async with server.aapi() as api:
        r = await api.put(f"/v1/releases/{version}", content=data)
    assert r.status_code == 200, r.text
    return data, r.json()


async def _audit(server, action: str) -> list[dict]:
    async with server.aapi() as api:
        rows = (await api.get("/v1/audit", params={"limit": 1000})).json()
    return [r for r in rows if r["action"] == action]


async def test_an_upgrade_carries_the_signed_release_and_a_token_for_it_alone(
    control_plane, tmp_path
):
    data, release = await _upload(control_plane, tmp_path, "0.2.0", pad_bytes=1 << 20)
    await _upload(control_plane, tmp_path, "0.3.0")
    answers = Answers()
    agent, task = await start_agent(control_plane, "up-1", version="0.1.0", handler=answers)
    aid = agent.identity.agent_id
    async with control_plane.aapi() as api:
        r = await api.post(f"/v1/agents/{aid}/upgrade", json={"version": "0.2.0"})
        assert r.status_code == 200, r.text
        assert r.json() == {
            "kind": "upgrade",
            "version": "0.2.0",
            "driver": "release",
            "detail": "",
        }
        (cmd,) = answers.commands
        assert isinstance(cmd, UpgradeCommand)
        assert (cmd.version, cmd.sha256, cmd.size, cmd.signature) == (
            "0.2.0",
            hashlib.sha256(data).hexdigest(),
            len(data),
            release["signature"],
        )
        assert cmd.download_path == "/v1/releases/0.2.0/download"
        assert cmd.deadline_s == 120.0 and cmd.token.startswith("fdl_")
        public = (control_plane.data_dir / "pki" / "release.pub").read_text().strip()
        verify_release(public, cmd.version, cmd.sha256, cmd.size, cmd.signature)
        shown = (await api.get(f"/v1/agents/{aid}")).json()["agent"]["upgrade"]
        assert (shown["step"], shown["version"], shown["from_version"]) == (
            "requested",
            "0.2.0",
            "0.1.0",
        )
        # A deadline of the caller's own.
        r = await api.post(f"/v1/agents/{aid}/upgrade", json={"version": "0.3.0", "deadline_s": 30})
        assert r.status_code == 200 and answers.commands[-1].deadline_s == 30

    # The token downloads that release (resumable) and nothing else; no API token needed.
    async with httpx.AsyncClient(
        base_url=control_plane.url,
        verify=control_plane.ssl_context(),
        headers={"Authorization": f"Bearer {cmd.token}"},
    ) as agent_http:
        whole = await agent_http.get(cmd.download_path)
        assert whole.status_code == 200 and whole.content == data
        rest = await agent_http.get(cmd.download_path, headers={"Range": "bytes=4096-"})
        assert rest.status_code == 206 and rest.content == data[4096:]
        other = await agent_http.get("/v1/releases/0.3.0/download")
        assert other.status_code == 401 and "not for release 0.3.0" in other.json()["detail"]
        assert (await agent_http.get("/v1/releases")).status_code == 401  # not an API token
        async with control_plane.aapi() as api:
            assert (await api.delete("/v1/releases/0.2.0")).status_code == 200
        gone = await agent_http.get(cmd.download_path)
        assert gone.status_code == 401
    rows = await _audit(control_plane, "agent.upgrade")
    assert [(r["actor"], r["target"], r["result"]) for r in rows] == [("admin", aid, "ok")] * 2
    assert "upgrade to 0.2.0 accepted (release)" in rows[1]["detail"]
    await stop_agent(task)


async def test_an_agent_that_refuses_is_409_with_its_reason_and_shown_refused(
    control_plane, tmp_path
):
    await _upload(control_plane, tmp_path, "0.2.0")
    answers = Answers()
    answers.refuse = CommandError(code="busy", message="queue depth 500 is over 100")
    agent, task = await start_agent(control_plane, "busy-1", version="0.1.0", handler=answers)
    aid = agent.identity.agent_id
    async with control_plane.aapi() as api:
        r = await api.post(f"/v1/agents/{aid}/upgrade", json={"version": "0.2.0"})
        assert r.status_code == 409
        assert r.json()["detail"] == (
            "agent busy-1 refused the upgrade (busy): queue depth 500 is over 100"
        )
        shown = (await api.get(f"/v1/agents/{aid}")).json()["agent"]["upgrade"]
        assert shown["step"] == "refused" and "queue depth 500" in shown["detail"]
    (row,) = await _audit(control_plane, "agent.upgrade")
    assert row["result"] == "failed" and "busy" in row["detail"]
    await stop_agent(task)


async def test_an_agent_without_upgrades_is_409_saying_to_upgrade_it_by_hand(control_plane):
    agent, task = await start_agent(control_plane, "old-1")  # answers "unsupported"
    async with control_plane.aapi() as api:
        r = await api.post(f"/v1/agents/{agent.identity.agent_id}/restart", json={})
    assert r.status_code == 409
    assert "refused the restart (unsupported)" in r.json()["detail"]
    assert "upgrade it on its host (docs/upgrades.md)" in r.json()["detail"]
    await stop_agent(task)


async def test_no_such_release_is_404_and_an_offline_agent_409_both_audited(
    control_plane, tmp_path
):
    await _upload(control_plane, tmp_path, "0.2.0")
    agent, task = await start_agent(control_plane, "gone-1", version="0.1.0", handler=Answers())
    aid = agent.identity.agent_id
    async with control_plane.aapi() as api:
        r = await api.post(f"/v1/agents/{aid}/upgrade", json={"version": "9.9.9"})
        assert r.status_code == 404 and "no release '9.9.9'" in r.json()["detail"]
        await stop_agent(task)
        r = await api.post(f"/v1/agents/{aid}/upgrade", json={"version": "0.2.0"})
        assert r.status_code == 409 and "not connected" in r.json()["detail"]
        shown = (await api.get(f"/v1/agents/{aid}")).json()["agent"]["upgrade"]
        assert shown["step"] == "refused" and "not connected" in shown["detail"]
        r = await api.post("/v1/agents/nobody/upgrade", json={"version": "0.2.0"})
        assert r.status_code == 404
    rows = await _audit(control_plane, "agent.upgrade")
    assert [r["result"] for r in reversed(rows)] == ["refused", "refused"]
    assert "no release" in rows[1]["detail"] and "agent offline" in rows[0]["detail"]


async def test_rollback_restart_and_renew_pass_the_reason_and_answer_the_result(control_plane):
    answers = Answers()
    agent, task = await start_agent(control_plane, "act-1", handler=answers)
    aid = agent.identity.agent_id
    async with control_plane.aapi() as api:
        r = await api.post(f"/v1/agents/{aid}/rollback", json={"reason": "canary looks bad"})
        assert r.status_code == 200
        assert r.json() == {"kind": "rollback", "version": "0.1.0", "detail": "canary looks bad"}
        r = await api.post(f"/v1/agents/{aid}/restart", json={})
        assert r.json() == {"kind": "restart", "detail": "asked by admin"}
        r = await api.post(f"/v1/agents/{aid}/renew", json={"reason": "rotate"})
        assert r.json()["kind"] == "renew" and r.json()["not_after"] == 2e9
        r = await api.post(f"/v1/agents/{aid}/restart", json={"reason": "a\nb"})
        assert r.status_code == 422  # no control characters in a reason
    assert [type(c).__name__ for c in answers.commands] == [
        "RollbackCommand",
        "RestartCommand",
        "RenewCommand",
    ]
    for action in ("agent.rollback", "agent.restart", "agent.renew"):
        (row,) = await _audit(control_plane, action)
        assert (row["actor"], row["target"], row["result"]) == ("admin", aid, "ok"), row
    await stop_agent(task)


async def test_roles_operators_restart_and_renew_only_admins_upgrade_and_roll_back(
    control_plane, tmp_path
):
    await _upload(control_plane, tmp_path, "0.2.0")
    answers = Answers()
    agent, task = await start_agent(control_plane, "role-1", handler=answers)
    aid = agent.identity.agent_id
    calls = {
        "upgrade": {"version": "0.2.0"},
        "rollback": {},
        "restart": {},
        "renew": {},
    }
    allowed = {"viewer": set(), "operator": {"restart", "renew"}}
    for role, may in allowed.items():
        token = control_plane.user(f"u-{role}", role)
        async with control_plane.aapi(token) as api:
            for verb, body in calls.items():
                r = await api.post(f"/v1/agents/{aid}/{verb}", json=body)
                assert r.status_code == (200 if verb in may else 403), (role, verb, r.text)
    assert [type(c).__name__ for c in answers.commands] == ["RestartCommand", "RenewCommand"]
    await stop_agent(task)
