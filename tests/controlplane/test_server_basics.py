"""Server start: CA, pin, admin token, healthz, openapi, file modes."""

from __future__ import annotations

import hashlib
import stat

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_first_start_writes_ca_pin_and_admin_token(control_plane):
    d = control_plane.data_dir
    assert mode(d / "admin.token") == 0o600
    assert mode(d / "pki" / "ca.key") == 0o600
    assert mode(d / "pki" / "server.key") == 0o600
    cert = x509.load_pem_x509_certificate((d / "ca.pem").read_bytes())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert control_plane.ca_pin == "sha256:" + hashlib.sha256(spki).hexdigest()
    assert control_plane.admin_token.startswith("flta_")
    log = (d.parent / "cp-server.log").read_text()
    assert control_plane.ca_pin in log
    assert control_plane.admin_token not in log


def test_healthz_and_openapi_over_verified_tls(control_plane):
    with httpx.Client(base_url=control_plane.url, verify=control_plane.ssl_context()) as c:
        health = c.get("/healthz").json()
        assert health["status"] == "ok" and health["protocol_version"] == 1
        paths = c.get("/openapi.json").json()["paths"]
        assert "/v1/enroll" in paths and "/v1/agents/{agent_id}/probe" in paths
        assert c.get("/v1/ca").text.startswith("-----BEGIN CERTIFICATE-----")


def test_tls_is_on_by_default(control_plane):
    assert control_plane.url.startswith("https://")
    with httpx.Client(verify=True) as c:
        try:
            c.get(control_plane.url + "/healthz")
        except httpx.ConnectError as exc:
            assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
        else:
            raise AssertionError("a client without our CA must not trust the server")


def test_token_hashes_only_at_rest(control_plane):
    token = control_plane.enrollment_token("db")
    user_token = control_plane.user("carol", "viewer")
    with control_plane.api() as api:
        assert api.get("/v1/whoami").json() == {"name": "admin", "role": "admin"}
    control_plane.stop()
    raw = b"".join(p.read_bytes() for p in control_plane.data_dir.glob("fleet.db*"))
    assert token.encode() not in raw
    assert user_token.encode() not in raw
    assert control_plane.admin_token.encode() not in raw
    assert hashlib.sha256(token.encode()).hexdigest().encode() in raw
