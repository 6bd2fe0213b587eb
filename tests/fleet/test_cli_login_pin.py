"""``fleet login --ca-pin``: trust the control plane's CA by its pin, as agents do."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.certs import ca_and_leaf
from tests.fleet.run import fleet


class Impostor:
    """An HTTPS server on loopback with a CA of its own; it records every request."""

    def __init__(self, tmp_path: Path) -> None:
        ca, leaf = ca_and_leaf("Impostor CA")
        cert_file, key_file = leaf.write(tmp_path, "impostor")
        seen: list[tuple[str, str, str | None]] = []
        self.seen = seen

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append(("GET", self.path, self.headers.get("Authorization")))
                body = ca.cert_pem if self.path == "/v1/ca" else b"{}"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Impostor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


@pytest.fixture
def impostor(tmp_path: Path) -> Iterator[Impostor]:
    with Impostor(tmp_path) as server:
        yield server


def test_the_right_pin_logs_in_and_the_profile_keeps_the_ca(shared_cp, env, home):
    token_file = str(shared_cp.data_dir / "admin.token")
    out = fleet(
        "login", "--server", shared_cp.url, "--token-file", token_file,
        "--ca-pin", shared_cp.ca_pin.upper().replace("SHA256:", "sha256:"), env=env,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert f"logged in to {shared_cp.url} as admin (admin)" in out.stdout
    profile_dir = home / "config" / "fleet"
    assert (profile_dir / "ca.pem").read_bytes() == shared_cp.ca_file.read_bytes()
    assert f'ca_file = "{profile_dir / "ca.pem"}"' in (profile_dir / "config.toml").read_text()
    out = fleet("whoami", env=env)  # verified with the stored CA, no flag needed
    assert out.returncode == 0 and out.stdout.startswith("admin (admin) at https://127.0.0.1")


def test_a_wrong_pin_refuses_before_the_token_is_sent(shared_cp, env, home, impostor):
    token_file = str(shared_cp.data_dir / "admin.token")
    out = fleet(
        "login", "--server", impostor.url, "--token-file", token_file,
        "--ca-pin", shared_cp.ca_pin, env=env,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    assert "the token was NOT sent" in out.stderr
    assert f"not {shared_cp.ca_pin}" in out.stderr and "wrong server" in out.stderr
    assert impostor.seen == [("GET", "/v1/ca", None)]  # the CA only, without the token
    assert not (home / "config" / "fleet" / "token").exists()
    assert shared_cp.admin_token not in out.stdout + out.stderr


def test_pin_usage_errors_exit_2_and_write_nothing(shared_cp, env, home):
    token_file = str(shared_cp.data_dir / "admin.token")
    base = ["login", "--server", shared_cp.url, "--token-file", token_file]
    out = fleet(*base, "--ca-pin", "sha256:abc", env=env)
    assert out.returncode == 2 and "--ca-pin must look like sha256:<64 hex digits>" in out.stderr
    out = fleet(*base, "--ca-pin", shared_cp.ca_pin, "--ca-file", str(shared_cp.ca_file), env=env)
    assert out.returncode == 2 and "--ca-file or --ca-pin, not both" in out.stderr
    assert not (home / "config" / "fleet").exists()
