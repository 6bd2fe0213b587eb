"""Operators over REST: list with last use, revoke and rotate (streams closed), last admin."""

from __future__ import annotations

import asyncio
import ssl
import time

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from fleet.protocol import PROTOCOL_VERSION, CloseCode, Snapshot, Subscribe, dump
from tests.helpers.server import RunningServer
from tests.helpers.stream import next_event, subscribe

pytestmark = pytest.mark.timeout(60)


def audit_rows(server: RunningServer, **params: object) -> list[dict]:
    with server.api() as api:
        response = api.get("/v1/audit", params=params)
        response.raise_for_status()
        return list(response.json())


async def closed_within(ws, deadline_s: float) -> tuple[float, int | None, str]:
    """Wait for the server to close ``ws``; returns (seconds, code, reason)."""
    start = time.monotonic()

    async def drain() -> None:
        while True:
            await ws.recv()

    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(drain(), deadline_s)
    return time.monotonic() - start, ws.close_code, ws.close_reason or ""


def test_list_shows_roles_creator_and_last_use_never_tokens(control_plane):
    token = control_plane.user("vera", "viewer")
    with control_plane.api() as api:
        users = {u["name"]: u for u in api.get("/v1/users").json()}
    assert set(users) == {"admin", "vera"}
    vera = users["vera"]
    assert vera["role"] == "viewer" and vera["created_by"] == "admin"
    assert vera["last_used_at"] is None
    assert users["admin"]["created_by"] == "system"
    for user in users.values():
        assert not {"token", "token_hash"} & set(user), user

    before = time.time()
    with control_plane.api(token) as api:
        assert api.get("/v1/whoami").status_code == 200
    with control_plane.api() as api:
        vera = next(u for u in api.get("/v1/users").json() if u["name"] == "vera")
    assert vera["last_used_at"] >= before - 1

    # Written behind, and kept across a restart.
    control_plane.restart()
    with control_plane.api() as api:
        again = next(u for u in api.get("/v1/users").json() if u["name"] == "vera")
    assert again["last_used_at"] == pytest.approx(vera["last_used_at"], abs=0.01)


async def test_revoked_token_is_refused_at_once_and_its_stream_closes_within_2s(control_plane):
    token = control_plane.user("otto", "operator")
    mine = await subscribe(control_plane, token)
    other = await subscribe(control_plane)  # the admin's: must stay open
    assert isinstance(await next_event(mine), Snapshot)
    assert isinstance(await next_event(other), Snapshot)

    asked_at = time.monotonic()
    async with control_plane.aapi() as api:
        response = await api.delete("/v1/users/otto")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "otto" and body["role"] == "operator" and body["revoked_at"] > 0

    _, code, reason = await closed_within(mine, 5.0)
    elapsed = time.monotonic() - asked_at
    assert elapsed < 2.0, f"stream closed {elapsed:.2f} s after the revocation was asked for"
    print(f"stream closed {elapsed * 1000:.0f} ms after DELETE /v1/users/otto was sent")
    assert code == CloseCode.UNAUTHENTICATED
    assert "revoked" in reason and "otto" in reason

    async with control_plane.aapi(token) as api:
        refused = await api.get("/v1/whoami")
    assert refused.status_code == 401
    assert "revoked" in refused.json()["detail"]

    await asyncio.wait_for(other.ping(), 5)  # the admin's stream is untouched
    await other.close()

    async with control_plane.aapi() as api:
        names = [u["name"] for u in (await api.get("/v1/users")).json()]
        everyone = {u["name"]: u for u in (await api.get("/v1/users?all=true")).json()}
        again = await api.delete("/v1/users/otto")
    assert "otto" not in names
    assert everyone["otto"]["revoked_at"] == pytest.approx(body["revoked_at"])
    assert again.status_code == 200 and again.json()["revoked_at"] == body["revoked_at"]
    rows = [r for r in audit_rows(control_plane, actor="admin") if r["action"] == "user.revoke"]
    assert rows[0]["target"] == "otto" and rows[0]["result"] == "ok"
    assert "1 streams closed" in rows[0]["detail"]


async def test_rotate_gives_a_new_token_once_and_refuses_the_old_one(control_plane):
    old = control_plane.user("rita", "viewer")
    ws = await subscribe(control_plane, old)
    assert isinstance(await next_event(ws), Snapshot)
    async with control_plane.aapi() as api:
        response = await api.post("/v1/users/rita/rotate")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "rita" and body["role"] == "viewer"
    new = body["token"]
    assert new.startswith("flta_") and new != old

    _, code, reason = await closed_within(ws, 2.0)
    assert code == CloseCode.UNAUTHENTICATED and "rotated" in reason

    async with control_plane.aapi(old) as api:
        assert (await api.get("/v1/whoami")).status_code == 401
    async with control_plane.aapi(new) as api:
        assert (await api.get("/v1/whoami")).json() == {"name": "rita", "role": "viewer"}
    async with control_plane.aapi() as api:
        listed = (await api.get("/v1/users")).json()
    assert new not in str(listed)
    rows = audit_rows(control_plane, actor="admin")
    assert any(r["action"] == "user.rotate" and r["target"] == "rita" for r in rows)


def test_rotating_the_bootstrap_admin_rewrites_its_token_file(control_plane):
    with control_plane.api() as api:
        new = api.post("/v1/users/admin/rotate").json()["token"]
    assert control_plane.admin_token == new
    assert (control_plane.data_dir / "admin.token").stat().st_mode & 0o777 == 0o600


def test_the_last_admin_cannot_be_revoked(control_plane):
    with control_plane.api() as api:
        refused = api.delete("/v1/users/admin")
        assert refused.status_code == 409
        assert "last admin" in refused.json()["detail"]
        assert "create another admin first" in refused.json()["detail"]
        unknown = api.delete("/v1/users/nobody")
        assert unknown.status_code == 404 and "GET /v1/users" in unknown.json()["detail"]
    rows = audit_rows(control_plane, actor="admin")
    assert any(
        r["action"] == "user.revoke" and r["target"] == "admin" and r["result"] == "refused"
        for r in rows
    )

    second = control_plane.user("ada", "admin")
    with control_plane.api(second) as api:
        assert api.delete("/v1/users/admin").status_code == 200
        last = api.delete("/v1/users/ada")
        assert last.status_code == 409 and "last admin" in last.json()["detail"]
        # A revoked operator's name may be given again.
        reborn = api.post("/v1/users", json={"name": "admin", "role": "viewer"})
        assert reborn.status_code == 201
        dup = api.post("/v1/users", json={"name": "admin", "role": "viewer"})
        assert dup.status_code == 409 and "rotate" in dup.json()["detail"]
    assert not (control_plane.data_dir / "admin.token").exists()


async def test_a_token_revoked_while_its_stream_subscribes_is_refused(control_plane):
    token = control_plane.user("sly", "viewer")
    ws = await websockets.connect(
        control_plane.ws_url + "/v1/events",
        ssl=ssl.create_default_context(cafile=str(control_plane.ca_file)),
        additional_headers={"Authorization": f"Bearer {token}"},
    )
    async with control_plane.aapi() as api:
        assert (await api.delete("/v1/users/sly")).status_code == 200
    await ws.send(dump(Subscribe(protocol_version=PROTOCOL_VERSION)))
    _, code, reason = await closed_within(ws, 2.0)
    assert code == CloseCode.UNAUTHENTICATED and "revoked" in reason
