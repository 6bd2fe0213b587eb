"""Enrollment: tokens, the CSR, and every refusal with its reason, audited."""

from __future__ import annotations

import time

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from fleet.simagent import enroll, make_csr


async def _enroll(server, token, name="a1"):
    async with httpx.AsyncClient(base_url=server.url, verify=server.ssl_context()) as client:
        return await enroll(client, token, name)


def _post_enroll(server, token, csr=None):
    csr = csr or make_csr(ec.generate_private_key(ec.SECP256R1()), "x")
    with server.api() as api:
        return api.post("/v1/enroll", json={"token": token, "csr_pem": csr})


async def test_enroll_returns_a_short_lived_cert_signed_by_the_ca(control_plane):
    token = control_plane.enrollment_token("db")
    ident = await _enroll(control_plane, token, "db-1")
    cert = x509.load_pem_x509_certificate(ident.certificate_pem.encode())
    ca = x509.load_pem_x509_certificate(control_plane.ca_file.read_bytes())
    assert cert.issuer == ca.subject
    cn = cert.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)[0].value
    assert cn == ident.agent_id
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert abs(life.total_seconds() - (24 * 3600 + 300)) < 5, "24 h plus 5 min backdating"
    assert cert.not_valid_before_utc.timestamp() < time.time() - 290
    assert ident.pool == "db" and ident.name == "db-1"
    with control_plane.api() as api:
        agents = api.get("/v1/agents").json()
    assert [(a["name"], a["state"]) for a in agents] == [("db-1", "pending")]


def test_enrolled_carries_the_release_key_agents_keep(control_plane):
    response = _post_enroll(control_plane, control_plane.enrollment_token("db"))
    assert response.status_code == 201, response.text
    public = (control_plane.data_dir / "pki" / "release.pub").read_text().strip()
    assert response.json()["release_key"] == public
    assert public.startswith("ed25519:") and len(public) == len("ed25519:") + 44


@pytest.mark.parametrize(
    ("make_token", "says"),
    [
        (lambda s: "flte_" + "A" * 40, "unknown enrollment token"),
        (lambda s: "hello", "malformed enrollment token"),
        (lambda s: "flta_" + "A" * 40, "malformed enrollment token"),
    ],
    ids=["unknown", "malformed", "api-token"],
)
def test_bad_tokens_are_refused_with_reason(control_plane, make_token, says):
    response = _post_enroll(control_plane, make_token(control_plane))
    assert response.status_code == 401
    assert says in response.json()["detail"]
    assert (
        "ask an admin" in response.json()["detail"] or "copy it again" in response.json()["detail"]
    )


def test_used_and_expired_tokens_are_refused_and_audited(control_plane):
    token = control_plane.enrollment_token("db", uses=1)
    assert _post_enroll(control_plane, token).status_code == 201
    used = _post_enroll(control_plane, token)
    assert used.status_code == 401 and "already used" in used.json()["detail"]

    with control_plane.api() as api:
        short = api.post("/v1/tokens", json={"pool": "db", "ttl_s": 0.3}).json()["token"]
    time.sleep(0.5)
    expired = _post_enroll(control_plane, short)
    assert expired.status_code == 401 and "expired" in expired.json()["detail"]

    with control_plane.api() as api:
        audit = api.get("/v1/audit").json()
    results = [(e["action"], e["result"]) for e in audit]
    assert results.count(("enroll", "refused")) == 2
    assert ("enroll", "ok") in results and ("token.create", "ok") in results


def test_bad_csr_does_not_spend_the_token(control_plane):
    token = control_plane.enrollment_token("db", uses=1)
    bad = _post_enroll(control_plane, token, csr="-----BEGIN CERTIFICATE REQUEST-----\nxx\n")
    assert bad.status_code == 400 and "certificate signing request" in bad.json()["detail"]
    assert _post_enroll(control_plane, token).status_code == 201


def test_multi_use_token_enrolls_many(control_plane):
    token = control_plane.enrollment_token("web", uses=3)
    assert [_post_enroll(control_plane, token).status_code for _ in range(4)] == [201] * 3 + [401]


def test_cli_token_create_prints_token_pin_and_endpoint(control_plane):
    import subprocess
    import sys

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "fleet",
            "token",
            "create",
            "--data-dir",
            str(control_plane.data_dir),
            "--pool",
            "db",
            "--ttl",
            "10m",
            "--label",
            "env=prod",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "flte_" in out and control_plane.ca_pin in out and control_plane.url in out
    with control_plane.api() as api:
        tokens = api.get("/v1/tokens").json()
    assert tokens[0]["labels"] == {"env": "prod"} and "token" not in tokens[0]
    assert 590 < tokens[0]["expires_at"] - tokens[0]["created_at"] <= 600
