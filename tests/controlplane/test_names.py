"""One name rule at the API: bodies and path parameters refuse what a header,
a file name or a log line could misread, with a 422 that says what is allowed."""

from __future__ import annotations

from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric import ec

from controlplane.api.headers import attachment
from fleet.simagent import make_csr
from fleet.units import NAME_RULE

BAD_NAMES = {
    "crlf": "web\r\nSet-Cookie: x=1",
    "lf": "web\n01",
    "quote": 'web"01',
    "semicolon": "web;01",
    "dotdot": "../etc",
    "slash": "web/01",
    "nul": "web\x0001",
    "space": "web 01",
    "leading-dot": ".web",
    "65-chars": "a" * 65,
}


def _enroll(api, token, name):
    csr = make_csr(ec.generate_private_key(ec.SECP256R1()), "x")
    return api.post("/v1/enroll", json={"token": token, "csr_pem": csr, "name": name})


def test_enrollment_refuses_bad_names_with_the_rule_and_keeps_the_token(control_plane):
    token = control_plane.enrollment_token("web", uses=1)
    with control_plane.api() as api:
        for kind, name in BAD_NAMES.items():
            response = _enroll(api, token, name)
            assert response.status_code == 422, (kind, response.text)
            assert NAME_RULE in response.json()["detail"], kind
        # Refused before the token was looked at: its one use is still there.
        assert _enroll(api, token, "a" * 64).status_code == 201
    with control_plane.api() as api:
        assert [a["name"] for a in api.get("/v1/agents").json()] == ["a" * 64]


def test_a_taken_64_character_name_gets_a_suffix_that_keeps_it_valid(control_plane):
    token = control_plane.enrollment_token("web", uses=2)
    with control_plane.api() as api:
        assert _enroll(api, token, "b" * 64).status_code == 201
        second = _enroll(api, token, "b" * 64)
    assert second.status_code == 201
    assert len(second.json()["name"]) == 64 and second.json()["name"] != "b" * 64


def test_path_names_are_checked_like_body_names(control_plane):
    bad = ["pool\x00x", "pool\rx", "pool\nx", "p" * 5000, "a;b", ".hidden", '"q"']
    with control_plane.api() as api:
        for name in bad:
            encoded = quote(name, safe="")
            for method, url, body in [
                ("PUT", f"/v1/pools/{encoded}/policy", {"allow_cidrs": ["127.0.0.0/8"]}),
                ("PUT", f"/v1/pools/{encoded}/pin", {"version": "1.0.0"}),
                ("GET", f"/v1/pools/{encoded}", None),
                ("DELETE", f"/v1/users/{encoded}", None),
                ("POST", f"/v1/users/{encoded}/rotate", None),
                ("PATCH", f"/v1/connections/{encoded}", {"port": 5432}),
                ("DELETE", f"/v1/connections/{encoded}", None),
                ("GET", f"/v1/agents/{encoded}", None),
            ]:
                response = api.request(method, url, json=body)
                assert response.status_code == 422, (method, url[:60], response.text)
                assert NAME_RULE in response.json()["detail"]
        assert api.get("/v1/pools").json() == [], "no pool was created on the way"
        audit = api.get("/v1/audit").json()
        assert not any(e["action"] == "pool.policy" for e in audit)


def test_body_names_and_labels_are_checked(control_plane):
    with control_plane.api() as api:
        cases = [
            ("/v1/tokens", {"pool": "web\r\n"}),
            ("/v1/tokens", {"pool": "web", "labels": {"env\n": "prod"}}),
            ("/v1/tokens", {"pool": "web", "labels": {"env": "prod\r\nX: y"}}),
            ("/v1/tokens", {"pool": "web", "labels": {"env": "x" * 257}}),
            ("/v1/users", {"name": "bob;rm", "role": "viewer"}),
            ("/v1/connections", {"name": "pg", "host": "h", "port": 1, "pools": ["a/b"]}),
            ("/v1/connections", {"name": "p" * 65, "host": "h", "port": 1, "pools": ["a"]}),
        ]
        for url, body in cases:
            response = api.post(url, json=body)
            assert response.status_code == 422, (url, body, response.text)
        ok = api.post("/v1/tokens", json={"pool": "web", "labels": {"team": "Données & co"}})
        assert ok.status_code == 201, ok.text
        assert ok.json()["labels"] == {"team": "Données & co"}


def test_the_name_rule_is_in_the_openapi_schema(control_plane):
    with control_plane.api() as api:
        spec = api.get("/openapi.json").json()
    params = spec["paths"]["/v1/pools/{pool}/policy"]["put"]["parameters"]
    pool = next(p for p in params if p["name"] == "pool")
    assert pool["schema"]["maxLength"] == 64 and pool["schema"]["pattern"].startswith(
        "^[A-Za-z0-9]"
    )


def test_content_disposition_is_one_safe_ascii_line():
    for name in ['a"b', "a\r\nSet-Cookie: x", "../../etc/passwd", "é; filename=x", "."]:
        value = attachment(f"{name}.log")
        assert value.isascii() and value.isprintable(), value
        assert value.count('"') == 2 and value.count(";") == 2, value
        fallback = value.split('filename="')[1].split('"')[0]
        assert "/" not in fallback and not fallback.startswith(".")
        star = value.split("filename*=UTF-8''")[1]
        assert "%2F" not in star and "%0D" not in star and "%0A" not in star
    assert attachment("web-01.log") == (
        "attachment; filename=\"web-01.log\"; filename*=UTF-8''web-01.log"
    )
    assert attachment("é.log").endswith("filename*=UTF-8''%C3%A9.log")
