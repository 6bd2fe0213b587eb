"""Server names, company certificates and what every TLS refusal says (issue 7, point 1).

Real control planes on loopback, real agent processes, real TLS.  A second
loopback address (127.0.0.3, through a TCP forwarder) stands for a name the
server's certificate may not carry; certificates "from the company's PKI" and
from an "inspecting proxy" are made by the test.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.agent.agents import AgentProcess, agent_env, enroll
from tests.agent.certs import ca_and_leaf
from tests.helpers.proxies import forward
from tests.helpers.server import REPO, RunningServer, wait_for

pytestmark = pytest.mark.timeout(120)

ALIAS = "127.0.0.3"


@pytest.fixture
def running() -> Iterator[list[AgentProcess | RunningServer]]:
    """Everything started in a test, stopped at its end (agents first)."""
    started: list[AgentProcess | RunningServer] = []
    yield started
    for thing in sorted(started, key=lambda t: isinstance(t, RunningServer)):
        thing.stop()


def agent_id(state_dir: Path) -> str:
    return str(json.loads((state_dir / "agent.json").read_text())["agent_id"])


def wait_connected(server: RunningServer, ident: str, timeout: float = 20.0) -> None:
    def check() -> bool:
        with server.api() as api:
            state = api.get(f"/v1/agents/{ident}").json()["agent"]
        return state["state"] == "connected" and state["uptime_s"] is not None

    wait_for(check, timeout, 0.1, f"agent {ident} connected")


def uses_left(server: RunningServer) -> list[int]:
    with server.api() as api:
        return [t["uses_left"] for t in api.get("/v1/tokens").json()]


def banner(server: RunningServer) -> str:
    """The last startup banner in the server's log."""
    text = server.log_path.read_text()
    return text[text.rindex("fleet control plane listening") :]


def test_a_name_not_in_the_certificate_then_added_with_san_keeps_the_ca_and_its_pins(
    tmp_path, running
):
    server = RunningServer(tmp_path / "cp").start()
    running.append(server)
    pin = server.ca_pin
    server_pem = server.data_dir / "pki" / "server.pem"

    old = tmp_path / "old"
    assert enroll(server, old, name="old").returncode == 0
    old_agent = AgentProcess(old).start()
    running.append(old_agent)
    wait_connected(server, agent_id(old))

    with forward(ALIAS, [server.port, server.agent_port], "127.0.0.1"):
        alias_url = f"https://{ALIAS}:{server.port}"
        token = server.enrollment_token()
        refused = enroll(server, tmp_path / "new", token=token, url=alias_url, name="new")
        assert refused.returncode == 1
        err = refused.stderr
        assert f"name: the server's certificate does not carry '{ALIAS}'" in err, err
        assert "it carries localhost, 127.0.0.1, ::1" in err
        assert f"fleet server --san {ALIAS}" in err and "restart" in err
        assert "chain:" not in err and "pinned CA" not in err  # the CA is not blamed
        assert "token was NOT sent" in err
        assert sorted(uses_left(server)) == [0, 1]  # the old agent's, and this one unused
        assert not (tmp_path / "new" / "key.pem").exists()

        # `run` says the same when the enrolled agent is pointed at the alias.
        misdialed = AgentProcess(old, args=["--server", alias_url]).start()
        running.append(misdialed)
        wait_for(lambda: f"does not carry '{ALIAS}'" in misdialed.output(), 20, 0.1, "refusal")
        assert "it carries localhost, 127.0.0.1, ::1" in misdialed.output()
        assert misdialed.stop() == 0

        # Add the name: the same CA re-issues the server certificate.
        before = server_pem.read_bytes()
        server.extra_args = ["--san", ALIAS]
        server.restart()
        assert server.ca_pin == pin
        assert server_pem.read_bytes() != before
        assert f"TLS names:   localhost, 127.0.0.1, ::1, {ALIAS}" in banner(server)
        assert "issued by the fleet CA" in banner(server)
        # The agent enrolled before the change comes back with its old pin and CA.
        wait_for(lambda: old_agent.output().count("connected to") >= 2, 30, 0.1, "reconnect")
        wait_connected(server, agent_id(old))

        enrolled = enroll(server, tmp_path / "new", token=token, url=alias_url, name="new")
        assert enrolled.returncode == 0, enrolled.stderr
        new_agent = AgentProcess(tmp_path / "new").start()
        running.append(new_agent)
        wait_connected(server, agent_id(tmp_path / "new"))
        assert f"connected to {alias_url}" in new_agent.output()

        # A start without --san keeps the remembered names and the certificate itself.
        issued = server_pem.read_bytes()
        server.extra_args = []
        server.restart()
        assert server_pem.read_bytes() == issued
        assert f"{ALIAS}" in banner(server).split("TLS names:", 1)[1].splitlines()[0]
        assert "TLS cert:    kept" in banner(server)
        wait_connected(server, agent_id(tmp_path / "new"))


def test_company_pki_cert_verified_with_ca_file_or_system_store_and_the_pin_still_decides(
    tmp_path, running
):
    company_ca, leaf = ca_and_leaf("Example Corp Issuing CA")
    cert, key = leaf.write(tmp_path, "cp-tls")
    ca_file = tmp_path / "corp-ca.pem"
    ca_file.write_bytes(company_ca.cert_pem)
    server = RunningServer(
        tmp_path / "cp", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]
    )
    server.client_ca = ca_file
    running.append(server.start())
    assert "issuer CN=Example Corp Issuing CA" in banner(server)
    assert f"TLS cert:    from {cert}" in banner(server)

    # The README's admin command on the server host, verifying with the company CA.
    created = subprocess.run(
        [
            *(sys.executable, "-m", "fleet", "token", "create"),
            *("--data-dir", str(server.data_dir), "--pool", "default", "--ca-file", str(ca_file)),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert created.returncode == 0, created.stderr
    assert server.ca_pin in created.stdout  # the fleet CA's pin, not the company's
    assert "--ca-file COMPANY_CA.pem" in created.stdout  # the recipe says how to verify it

    token = server.enrollment_token(uses=2)
    wrong = "sha256:" + hashlib.sha256(b"not this control plane").hexdigest()
    refused = enroll(
        server, tmp_path / "w", token=token, pin=wrong, args=["--ca-file", str(ca_file)]
    )
    assert refused.returncode == 1
    assert "token was NOT sent" in refused.stderr and wrong in refused.stderr
    assert sorted(uses_left(server)) == [1, 2]  # the CLI's token, and this one unused
    assert not (tmp_path / "w" / "key.pem").exists()

    # --ca-file: TLS verified with the company's CA; our CA still checked against the pin.
    state = tmp_path / "pki"
    done = enroll(server, state, token=token, name="pki", args=["--ca-file", str(ca_file)])
    assert done.returncode == 0, done.stderr
    assert json.loads((state / "agent.json").read_text())["tls_trust"] == "ca-file"
    assert (state / "server-ca.pem").read_bytes() == company_ca.cert_pem
    assert (state / "ca.pem").read_text() == server.ca_file.read_text()  # the fleet CA
    agent = AgentProcess(state).start()
    running.append(agent)
    wait_connected(server, agent_id(state))

    # Neither flag: the pinned CA did not sign the chain, the system store does.
    system_env = agent_env(SSL_CERT_FILE=str(ca_file))
    sys_state = tmp_path / "sys"
    done = enroll(server, sys_state, token=token, name="sys", env=system_env)
    assert done.returncode == 0, done.stderr
    assert "verified with the system trust store" in done.stdout
    assert json.loads((sys_state / "agent.json").read_text())["tls_trust"] == "system"
    sys_agent = AgentProcess(sys_state, env=system_env).start()
    running.append(sys_agent)
    wait_connected(server, agent_id(sys_state))
    assert sys_agent.stop() == 0

    # The same agent on a host whose system store lacks that CA: the issuer is named.
    bare = AgentProcess(sys_state, env=agent_env(SSL_CERT_FILE=str(tmp_path / "none.pem")))
    running.append(bare.start())
    wait_for(lambda: "chain:" in bare.output(), 20, 0.1, "chain refusal")
    assert "issued by 'CN=Example Corp Issuing CA'" in bare.output()
    assert "trusted: the system trust store" in bare.output()

    # The system store vouches for the chain but the name dialled is not in it.
    with forward(ALIAS, [server.port, server.agent_port], "127.0.0.1"):
        alias_url = f"https://{ALIAS}:{server.port}"
        misnamed = enroll(server, tmp_path / "m", url=alias_url, env=system_env)
    assert misnamed.returncode == 1
    assert (
        f"does not carry '{ALIAS}' (the host in --server); it carries localhost, 127.0.0.1."
        in misnamed.stderr
    )
    assert "chain:" not in misnamed.stderr and "--tls-cert" in misnamed.stderr


def test_an_inspecting_issuer_is_named_and_extra_ca_file_lets_enrollment_through(tmp_path, running):
    # The server presents a certificate from another CA, as an SSL-inspecting proxy
    # would; the agent enrolls in the default mode, without --ca-file.
    inspection_ca, leaf = ca_and_leaf("Contoso TLS Inspection CA")
    cert, key = leaf.write(tmp_path, "inspect")
    extra = tmp_path / "inspection-ca.pem"
    extra.write_bytes(inspection_ca.cert_pem)
    server = RunningServer(
        tmp_path / "cp", extra_args=["--tls-cert", str(cert), "--tls-key", str(key)]
    )
    server.client_ca = extra
    running.append(server.start())

    token = server.enrollment_token()
    refused = enroll(server, tmp_path / "r", token=token)
    assert refused.returncode == 1
    err = refused.stderr
    assert "chain: the server's certificate was issued by 'CN=Contoso TLS Inspection CA'" in err
    assert "--extra-ca-file" in err and "--ca-file" in err
    assert "name:" not in err and "validity:" not in err
    assert "token was NOT sent" in err and uses_left(server) == [1]

    state = tmp_path / "through"
    done = enroll(server, state, token=token, name="through", args=["--extra-ca-file", str(extra)])
    assert done.returncode == 0, done.stderr
    assert "--extra-ca-file FILE" in done.stdout  # reminded to give it to `run` too
    assert json.loads((state / "agent.json").read_text())["tls_trust"] == "pinned"

    without = AgentProcess(state).start()
    running.append(without)
    wait_for(lambda: "Contoso TLS Inspection CA" in without.output(), 20, 0.1, "refusal")
    assert "extra_ca_file" in without.output()
    assert without.stop() == 0
    agent = AgentProcess(state, args=["--extra-ca-file", str(extra)]).start()
    running.append(agent)
    wait_connected(server, agent_id(state))
