"""Trust decisions made without a control plane: impostors and skewed clocks.

A local HTTPS server stands in for an attacker or a misconfigured network; it
never receives a token, and the agent keeps retrying on clock-skew TLS errors.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.server
import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path

from fleet.pins import spki_pin
from tests.agent.agents import AgentProcess, agent_env
from tests.agent.certs import Issued, ca_and_leaf, self_signed
from tests.helpers.server import REPO, wait_for


@contextlib.contextmanager
def https_server(cert: Path, key: Path, ca_pem: bytes):
    """Serves ``ca_pem`` at GET /v1/ca and records every other request."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            seen.append(f"GET {self.path}")
            body = ca_pem if self.path == "/v1/ca" else b"{}"
            self.send_response(200 if self.path == "/v1/ca" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            seen.append(f"POST {self.path}")
            self.send_response(500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_impostor_serving_the_real_ca_but_its_own_tls_gets_no_token(tmp_path):
    # The impostor can copy the real CA certificate (it is public) and so pass the
    # pin check, but it cannot present a TLS certificate that CA signed.
    real_ca = self_signed("the real fleet CA")
    _, impostor_leaf = ca_and_leaf("Impostor CA")
    cert, key = impostor_leaf.write(tmp_path, "impostor")
    with https_server(cert, key, real_ca.cert_pem) as (url, seen):
        token_file = tmp_path / "token"
        token_file.write_text("flte_" + "S" * 40)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "agent",
                "enroll",
                "--server",
                url,
                "--ca-pin",
                spki_pin(real_ca.cert_pem),
                "--token-file",
                str(token_file),
                "--state-dir",
                str(tmp_path / "state"),
            ],
            cwd=REPO,
            env=agent_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    print(done.stderr)
    # Which check failed, and the issuer that was presented instead of the pinned CA.
    assert "chain: the server's certificate was issued by 'CN=Impostor CA'" in done.stderr
    assert "--extra-ca-file" in done.stderr and "--ca-file" in done.stderr
    assert "token was NOT sent" in done.stderr
    # The CA fetched once unverified (for the pin), then the certificate read again
    # to explain the refusal: the token was never sent.
    assert seen == ["GET /v1/ca"]
    assert not (tmp_path / "state" / "key.pem").exists()


def _future_leaf(ca: Issued) -> Issued:
    """A server certificate from ``ca`` that is not valid for another hour."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    ca_cert = x509.load_pem_x509_certificate(ca.cert_pem)
    ca_key = serialization.load_pem_private_key(ca.key_pem, None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    start = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return Issued(
        cert.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        start,
        start + dt.timedelta(hours=1),
    )


def test_clock_skew_tls_errors_are_explained_and_retried(tmp_path):
    # A server certificate "not yet valid" is what an agent whose clock runs an hour
    # behind sees; it must say so and keep trying, not give up.
    ca, _ = ca_and_leaf("Skew CA")
    leaf = _future_leaf(ca)
    cert, key = leaf.write(tmp_path, "future")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    (state / "ca.pem").write_bytes(ca.cert_pem)
    own = self_signed("skewed-agent")
    (state / "cert.pem").write_bytes(own.cert_pem)
    (state / "key.pem").write_bytes(own.key_pem)
    (state / "key.pem").chmod(0o600)
    with https_server(cert, key, ca.cert_pem) as (url, seen):
        (state / "agent.json").write_text(
            json.dumps({"agent_id": "ag_skew", "name": "skewed", "pool": "p", "server": url})
        )
        agent = AgentProcess(state).start()
        try:
            wait_for(lambda: agent.output().count("reconnecting in") >= 2, 20, 0.1, "retries")
            output = agent.output()
            print(output)
            assert "validity: the server's certificate is not yet valid" in output
            assert f"valid from {leaf.not_before:%Y-%m-%d %H:%M}" in output
            assert "Check this host's clock" in output
            assert "chain:" not in output and "name:" not in output  # only the dates
            assert agent.proc is not None and agent.proc.poll() is None
        finally:
            assert agent.stop() == 0
    assert seen == []  # no websocket upgrade ever reached the HTTP layer
