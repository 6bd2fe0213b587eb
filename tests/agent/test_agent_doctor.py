"""``fleet agent doctor`` against a real control plane, with real middlemen on loopback."""

from __future__ import annotations

import datetime as dt
import json
import logging
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent._der import cert_info, pem_to_der
from agent.doctor import Report, Status, render_text
from agent.doctor._channel import ChannelClock
from agent.doctor._identity import check_certificate, check_clock
from agent.doctor._running import report_running_agent
from agent.doctor._tls import HttpDate
from agent.logs import LogBook
from agent.state import read_identity
from agent.tls import check_tls
from tests.agent.agents import AgentProcess, agent_env, enroll
from tests.agent.certs import ca_and_leaf, self_signed
from tests.helpers.imports import packages_after
from tests.helpers.proxies import ConnectProxy, Relay, TlsFront, strip_upgrade
from tests.helpers.server import REPO, RunningServer, wait_for

pytestmark = pytest.mark.timeout(120)

_PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY")


def doctor_env(**extra: str) -> dict[str, str]:
    """The agent's environment with no proxy at all unless given."""
    env = {k: v for k, v in agent_env().items() if k.upper() not in _PROXY_VARS and k != "NO_COLOR"}
    env.update(extra)
    return env


def doctor(
    state_dir: Path, *args: str, env: dict[str, str] | None = None, json_out: bool = True
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "agent", "doctor", "--state-dir", str(state_dir), *args]
    if json_out:
        cmd += ["--output", "json"]
    return subprocess.run(
        cmd, cwd=REPO, env=env or doctor_env(), capture_output=True, text=True, timeout=90
    )


def report_of(done: subprocess.CompletedProcess[str]) -> dict:
    assert done.stderr == "", done.stderr
    return dict(json.loads(done.stdout))


def checks(doc: dict, step: str, status: str | None = None) -> list[dict]:
    return [
        c for c in doc["checks"] if c["step"] == step and (status is None or c["status"] == status)
    ]


def failed_steps(doc: dict) -> list[str]:
    return [c["step"] for c in doc["checks"] if c["status"] == "FAIL"]


def edit_identity(state_dir: Path, **changes: object) -> None:
    path = state_dir / "agent.json"
    doc = json.loads(path.read_text())
    doc.update(changes)
    path.write_text(json.dumps(doc))


@pytest.fixture
def agent_dir(control_plane: RunningServer, tmp_path: Path) -> Path:
    state_dir = tmp_path / "agent"
    done = enroll(control_plane, state_dir, name="doc-1")
    assert done.returncode == 0, done.stderr
    return state_dir


@pytest.fixture
def middlemen() -> Iterator[list]:
    started: list = []
    yield started
    for m in started:
        m.close()


def channel_port(state_dir: Path) -> int:
    return int(json.loads((state_dir / "agent.json").read_text())["channel_port"])


# --------------------------------------------------------------------------
# A healthy agent


def test_healthy_enrolled_agent_passes_every_check(control_plane, agent_dir):
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 0, done.stdout
    assert doc["ok"] is True
    assert failed_steps(doc) == []
    for step in ("files", "config", "tcp", "tls", "pin", "cert", "upgrade", "auth", "clock"):
        assert checks(doc, step, "ok"), f"no ok check for {step}: {doc['checks']}"
    assert checks(doc, "dns", "skip")[0]["detail"] == "127.0.0.1 is an IP literal"
    ports = {control_plane.port, channel_port(agent_dir)}
    assert len(checks(doc, "tcp", "ok")) == len(checks(doc, "tls", "ok")) == len(ports) == 2
    assert "identity accepted" in checks(doc, "auth")[0]["detail"]
    assert "clock probe" in checks(doc, "clock")[0]["detail"]


def test_a_host_name_resolves_and_the_api_port_route_serves_the_channel(control_plane, agent_dir):
    # localhost is among the certificate's names; without channel_port the agent
    # uses the API port's /v1/agent/connect.
    edit_identity(agent_dir, server=f"https://localhost:{control_plane.port}", channel_port=None)
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 0, done.stdout
    assert "localhost resolves to 127.0.0.1" in checks(doc, "dns", "ok")[0]["detail"]
    assert len(checks(doc, "tcp", "ok")) == 1
    [upgrade] = checks(doc, "upgrade", "ok")
    assert f"wss://localhost:{control_plane.port}/v1/agent/connect" in upgrade["detail"]
    assert checks(doc, "auth", "ok")


def test_text_output_is_aligned_uncoloured_and_fits_80_columns(agent_dir):
    done = doctor(agent_dir, json_out=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert "\033[" not in done.stdout  # not a terminal: no colour
    assert lines[-1] == "all checks passed"
    body = [line for line in lines if line[:5].strip() in ("ok", "FAIL", "skip")]
    assert len(body) >= 12
    for line in lines:
        # A path or URL longer than a line may overflow, never the words around it.
        assert len(line) <= 80 or " " not in line[80:], line
    assert all(line[5] == " " and line[14] == " " for line in body)


def test_colour_only_on_a_terminal_without_no_color():
    report = Report()
    report.ok("tcp", "connected")
    report.fail("tls", "bad", "do this")
    assert "\033[" in render_text(report, env={}, tty=True)
    assert "\033[" not in render_text(report, env={"NO_COLOR": "1"}, tty=True)
    assert "\033[" not in render_text(report, env={}, tty=False)
    report.fail("tls", "bad again", "do this")
    text = render_text(report, env={}, tty=False)
    assert "fix: do this" in text and "fix: as above" in text
    assert text.rstrip().endswith("2 check(s) failed")


# --------------------------------------------------------------------------
# Files and usage


def test_key_readable_by_others_fails_the_files_step(agent_dir):
    (agent_dir / "key.pem").chmod(0o644)
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 1
    [bad] = checks(doc, "files", "FAIL")
    assert "key.pem has mode 0644" in bad["detail"]
    assert f"chmod 600 {agent_dir / 'key.pem'}" in bad["fix"]
    assert failed_steps(doc) == ["files"]  # the rest still runs and passes


def test_world_writable_config_and_open_state_dir_fail(agent_dir):
    toml = agent_dir / "agent.toml"
    toml.write_text("samples = false\n")
    toml.chmod(0o666)
    agent_dir.chmod(0o755)
    (agent_dir / "logs").mkdir()
    (agent_dir / "logs" / "agent.log").write_text("")
    (agent_dir / "logs" / "agent.log").chmod(0o644)
    doc = report_of(doctor(agent_dir))
    details = " | ".join(c["detail"] for c in checks(doc, "files", "FAIL"))
    assert "state dir" in details and "mode 0755" in details
    assert "agent.toml has mode 0666" in details
    assert "logs others may read: agent.log (0644)" in details


def test_config_that_does_not_parse_fails_the_config_step(agent_dir):
    (agent_dir / "agent.toml").write_text('allow_ports = ["70000"]\n')
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 1
    [bad] = checks(doc, "config", "FAIL")
    assert "allow_ports" in bad["detail"] and "70000" in bad["detail"]


def test_damaged_certificates_are_reported_not_a_traceback(agent_dir):
    (agent_dir / "ca.pem").write_text("not a certificate\n")
    (agent_dir / "cert.pem").unlink()
    done = doctor(agent_dir)
    doc = report_of(done)  # nothing on stderr
    assert done.returncode == 1
    details = [c["detail"] for c in checks(doc, "files", "FAIL")]
    assert any(d.startswith("cert.pem is missing") for d in details)
    assert any(d.startswith("ca.pem is not a readable certificate") for d in details)
    assert checks(doc, "tls", "skip") and checks(doc, "pin", "skip")
    assert checks(doc, "cert", "FAIL")


def test_not_enrolled_or_bad_usage_exits_2(tmp_path, agent_dir):
    done = doctor(tmp_path / "nothing")
    assert done.returncode == 2
    assert "no enrolled agent" in done.stderr and "fleet agent enroll" in done.stderr
    done = doctor(agent_dir, "--probe", "no-port")
    assert done.returncode == 2 and "HOST:PORT" in done.stderr


# --------------------------------------------------------------------------
# Network path


def test_server_stopped_fails_tcp_with_host_and_port(control_plane, agent_dir):
    control_plane.stop()
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 1
    bad = checks(doc, "tcp", "FAIL")
    assert f"127.0.0.1:{control_plane.port}" in bad[0]["detail"]
    assert "refused" in bad[0]["detail"].lower()
    assert checks(doc, "tls", "skip") and checks(doc, "upgrade", "skip")
    assert checks(doc, "pin", "skip")


def test_name_not_in_the_certificate_lists_its_names_and_the_san_flag(
    control_plane, agent_dir, middlemen
):
    # The server's certificate names localhost, 127.0.0.1 and ::1.  Relays on
    # 127.0.0.2 stand for a load balancer under a name the certificate lacks.
    api = Relay("127.0.0.2", ("127.0.0.1", control_plane.port))
    chan = Relay("127.0.0.2", ("127.0.0.1", channel_port(agent_dir)))
    middlemen += [api, chan]
    edit_identity(agent_dir, server=f"https://127.0.0.2:{api.port}", channel_port=chan.port)
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 1
    bad = checks(doc, "tls", "FAIL")
    assert len(bad) == 2  # both ports
    assert "the server's certificate does not carry '127.0.0.2'" in bad[0]["detail"]
    assert "localhost, 127.0.0.1, ::1" in bad[0]["detail"]
    assert "fleet server --san 127.0.0.2" in bad[0]["fix"]
    assert not any("issued by" in c["detail"] for c in bad)  # the chain is fine
    assert checks(doc, "pin", "ok")  # same control plane behind the relay
    assert checks(doc, "upgrade", "skip")


def test_proxy_that_refuses_connect_is_reported_with_its_status(
    control_plane, agent_dir, middlemen
):
    proxy = ConnectProxy(refuse="403 Forbidden")
    middlemen.append(proxy)
    env = doctor_env(HTTPS_PROXY=f"http://bob:s3cret@127.0.0.1:{proxy.port}")
    done = doctor(agent_dir, env=env)
    doc = report_of(done)
    assert done.returncode == 1
    assert "s3cret" not in done.stdout  # the proxy's password is not printed
    assert doc["proxy"] == f"http://bob:[REDACTED]@127.0.0.1:{proxy.port}"
    assert checks(doc, "proxy", "ok")  # reachable
    bad = checks(doc, "proxy", "FAIL")
    assert (
        f"refused CONNECT 127.0.0.1:{control_plane.port}: HTTP/1.1 403 Forbidden"
        in (bad[0]["detail"])
    )
    assert "NO_PROXY" in bad[0]["fix"]
    assert proxy.requests[0].startswith(f"CONNECT 127.0.0.1:{control_plane.port} ")


def test_proxy_asking_for_credentials_says_where_they_go(agent_dir, middlemen):
    proxy = ConnectProxy(refuse="407 Proxy Authentication Required")
    middlemen.append(proxy)
    doc = report_of(doctor(agent_dir, env=doctor_env(HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}")))
    bad = checks(doc, "proxy", "FAIL")
    assert "407 Proxy Authentication Required" in bad[0]["detail"]
    assert "http://USER:PASSWORD@HOST:PORT" in bad[0]["fix"]


def test_every_check_passes_through_a_proxy_that_allows_connect(agent_dir, middlemen):
    proxy = ConnectProxy()
    middlemen.append(proxy)
    done = doctor(agent_dir, env=doctor_env(HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}"))
    doc = report_of(done)
    assert done.returncode == 0, done.stdout
    assert all("through proxy" in c["detail"] for c in checks(doc, "tcp"))
    assert checks(doc, "auth", "ok") and checks(doc, "clock", "ok")
    assert proxy.handled >= 5  # tcp, tls, pin and the channel all went through it


def test_no_proxy_excludes_the_server(agent_dir, middlemen):
    proxy = ConnectProxy(refuse="403 Forbidden")
    middlemen.append(proxy)
    env = doctor_env(HTTPS_PROXY=f"http://127.0.0.1:{proxy.port}", NO_PROXY="127.0.0.1")
    done = doctor(agent_dir, env=env)
    assert done.returncode == 0, done.stdout
    assert proxy.handled == 0


def test_proxy_that_strips_upgrade_fails_the_upgrade_step(
    control_plane, agent_dir, tmp_path, middlemen
):
    # A TLS-terminating reverse proxy the agent is set to trust (extra_ca_file), in
    # front of the channel port, that drops Upgrade and Connection.
    ca, leaf = ca_and_leaf("Corporate Proxy CA")
    ca_file, _ = ca.write(tmp_path, "proxy-ca")
    cert_file, key_file = leaf.write(tmp_path, "proxy-leaf")
    front = TlsFront(
        cert_file,
        key_file,
        ("127.0.0.1", channel_port(agent_dir)),
        control_plane.ca_file,
        rewrite=strip_upgrade,
    )
    middlemen.append(front)
    edit_identity(agent_dir, channel_port=front.port)
    (agent_dir / "agent.toml").write_text(f'extra_ca_file = "{ca_file}"\n')
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 1
    assert failed_steps(doc) == ["upgrade"]
    assert checks(doc, "auth", "skip")[0]["detail"] == "needs the websocket upgrade"
    [bad] = checks(doc, "upgrade", "FAIL")
    assert "instead of 101 Switching Protocols" in bad["detail"]
    assert "Upgrade" in bad["detail"] and "proxy_set_header Upgrade" in bad["fix"]
    [chan_tls] = [c for c in checks(doc, "tls") if f":{front.port} " in c["detail"]]
    assert "through extra_ca_file" in chan_tls["detail"]
    assert "Corporate Proxy CA" in chan_tls["detail"]


def test_inspecting_proxy_is_named_by_the_issuer_it_presents(
    control_plane, agent_dir, tmp_path, middlemen
):
    _, leaf = ca_and_leaf("Zscaler Intermediate Root CA")
    cert_file, key_file = leaf.write(tmp_path, "inspect-leaf")
    front = TlsFront(
        cert_file, key_file, ("127.0.0.1", channel_port(agent_dir)), control_plane.ca_file
    )
    middlemen.append(front)
    edit_identity(agent_dir, channel_port=front.port)
    doc = report_of(doctor(agent_dir))
    [bad] = checks(doc, "tls", "FAIL")
    assert "issued by 'CN=Zscaler Intermediate Root CA'" in bad["detail"]
    assert "inspects TLS" in bad["fix"] and "extra_ca_file" in bad["fix"]
    assert checks(doc, "upgrade", "skip")


def test_through_a_trusted_inspecting_proxy_the_identity_is_still_accepted(
    control_plane, agent_dir, tmp_path, middlemen
):
    # Proof of possession does not depend on the TLS session: it works through a
    # proxy that terminates TLS, once the agent trusts that proxy's CA.
    ca, leaf = ca_and_leaf("Inspection CA")
    ca_file, _ = ca.write(tmp_path, "inspect-ca")
    cert_file, key_file = leaf.write(tmp_path, "inspect-leaf")
    front = TlsFront(
        cert_file, key_file, ("127.0.0.1", channel_port(agent_dir)), control_plane.ca_file
    )
    middlemen.append(front)
    edit_identity(agent_dir, channel_port=front.port)
    (agent_dir / "agent.toml").write_text(f'extra_ca_file = "{ca_file}"\n')
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 0, done.stdout
    assert checks(doc, "auth", "ok")


# --------------------------------------------------------------------------
# Identity


def test_revoked_identity_fails_auth_with_what_to_do(control_plane, agent_dir):
    agent_id = json.loads((agent_dir / "agent.json").read_text())["agent_id"]
    with control_plane.api() as api:
        api.post(f"/v1/agents/{agent_id}/revoke").raise_for_status()
    done = doctor(agent_dir)
    doc = report_of(done)
    assert done.returncode == 1
    [bad] = checks(doc, "auth", "FAIL")
    assert "revoked" in bad["detail"] and "4004" in bad["detail"]
    assert "enroll" in bad["fix"]
    assert checks(doc, "upgrade", "ok")


def test_tls_is_checked_in_the_agents_trust_mode(control_plane, agent_dir):
    # Trust mode ca-file: run checks the server against server-ca.pem, not ca.pem;
    # so does doctor.  A bundle that did not issue the server's certificate fails.
    other, _ = ca_and_leaf("Company Issuing CA")
    (agent_dir / "server-ca.pem").write_bytes(other.cert_pem)
    edit_identity(agent_dir, tls_trust="ca-file")
    doc = report_of(doctor(agent_dir))
    bad = checks(doc, "tls", "FAIL")
    assert bad and "trusted: 'Company Issuing CA'" in bad[0]["detail"]
    assert checks(doc, "pin", "ok")  # the control plane's own CA is still the enrolled one
    (agent_dir / "server-ca.pem").write_bytes(control_plane.ca_file.read_bytes())
    assert checks(report_of(doctor(agent_dir)), "tls", "ok")


def test_control_plane_with_another_ca_fails_the_pin(control_plane, agent_dir, tmp_path):
    other = RunningServer(tmp_path / "other").start()
    try:
        edit_identity(agent_dir, server=other.url, channel_port=None)
        doc = report_of(doctor(agent_dir))
    finally:
        other.stop()
    [bad] = checks(doc, "pin", "FAIL")
    assert "another control plane" in bad["detail"] and "enroll again" in bad["fix"]
    # Its TLS is not from the enrolled CA either: the chain check names the issuer.
    assert any("issued by" in c["detail"] for c in checks(doc, "tls", "FAIL"))


def test_beside_a_running_agent_doctor_reads_its_log_or_takes_over_with_auth(
    control_plane, agent_dir
):
    agent = AgentProcess(agent_dir).start()
    try:
        agent_id = agent.agent_id

        def connections() -> int:
            return agent.output().count("agent.channel: connected to ")

        wait_for(lambda: connections() >= 1, 15, 0.1, "the agent connected")
        done = doctor(agent_dir)
        assert done.returncode == 0, done.stdout
        [auth] = checks(report_of(done), "auth", "ok")
        # The supervisor's child holds the channel (the supervisor runs `-m agent.supervisor`).
        assert f"(pid {agent.child_pid}) holds this identity's channel" in auth["detail"]
        assert "its log says it connected at" in auth["detail"]
        assert connections() == 1 and "4007" not in agent.output()  # left alone

        done = doctor(agent_dir, "--auth")
        assert done.returncode == 0, done.stdout
        assert "identity accepted" in checks(report_of(done), "auth", "ok")[0]["detail"]
        # Doctor took the channel over for a moment; the agent came back by itself.
        wait_for(lambda: "4007" in agent.output(), 15, 0.1, "the agent saw the takeover")
        wait_for(lambda: connections() >= 2, 15, 0.1, "the agent reconnected")
        with control_plane.api() as api:
            wait_for(
                lambda: api.get(f"/v1/agents/{agent_id}").json()["agent"]["state"] == "connected",
                15,
                0.1,
                "connected again",
            )
    finally:
        agent.stop()


def test_a_running_agent_whose_channel_fails_is_reported_from_its_log(tmp_path):
    # The agent's own log format, written by its LogBook.
    book = LogBook(tmp_path / "logs", max_bytes=1 << 20, backups=1, ring_lines=100)
    logger = book.install("info", stderr=False)
    try:
        log = logging.getLogger("agent.channel")
        log.info("connected to https://127.0.0.1:1 as ag_1; heartbeat every 5 s")
        log.warning(
            "channel failed: control plane closed the channel (4001 unauthenticated "
            "(unknown agent or bad signature)): unknown agent 'ag_1': enroll again"
        )
        log.info("reconnecting in 0.52 s")
    finally:
        book.close()
        logger.propagate = True
    report = Report()
    report_running_agent(report, 4242, tmp_path / "logs" / "agent.log")
    [check] = report.checks
    assert check.status is Status.FAIL
    assert "(pid 4242)" in check.detail and "unknown agent 'ag_1'" in check.detail
    assert "does not accept this identity" in check.detail
    assert "fleet agent enroll --force" in (check.fix or "")


def test_no_auth_leaves_the_channel_alone(agent_dir):
    doc = report_of(doctor(agent_dir, "--no-auth"))
    assert checks(doc, "upgrade", "ok") and checks(doc, "auth", "skip")
    assert "HTTP Date" in checks(doc, "clock", "ok")[0]["detail"]


# --------------------------------------------------------------------------
# --probe under the agent's policy


def test_probe_allowed_and_denied_by_the_local_allow_list(control_plane, agent_dir):
    port = control_plane.port
    (agent_dir / "agent.toml").write_text(
        f'allow_ports = ["{port}"]\nallow_cidrs = ["127.0.0.0/8"]\n'
    )
    doc = report_of(doctor(agent_dir, "--no-auth", "--probe", f"127.0.0.1:{port}"))
    [ok] = checks(doc, "probe", "ok")
    assert f"127.0.0.1:{port} allowed by the local policy" in ok["detail"]

    other = port + 1 if port < 65535 else port - 1
    done = doctor(agent_dir, "--no-auth", "--probe", f"127.0.0.1:{other}")
    [bad] = checks(report_of(done), "probe", "FAIL")
    assert done.returncode == 1
    assert f"port {other} is not in the agent's allow_ports" in bad["detail"]
    assert f'allow_ports = ["{other}"]' in bad["fix"] and f"--allow-port {other}" in bad["fix"]

    (agent_dir / "agent.toml").write_text(f'allow_ports = ["{port}"]\n')
    [bad] = checks(
        report_of(doctor(agent_dir, "--no-auth", "--probe", f"127.0.0.1:{port}")), "probe"
    )
    assert bad["status"] == "FAIL" and "allow_cidrs" in bad["detail"]
    assert 'allow_cidrs = ["127.0.0.1/32"]' in bad["fix"]


def test_probe_allowed_but_nothing_listening(agent_dir):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    (agent_dir / "agent.toml").write_text(
        f'allow_ports = ["{free}"]\nallow_cidrs = ["127.0.0.1/32"]\n'
    )
    [bad] = checks(
        report_of(doctor(agent_dir, "--no-auth", "--probe", f"127.0.0.1:{free}")), "probe"
    )
    assert bad["status"] == "FAIL" and "refused" in bad["detail"]
    assert "nothing listens" in bad["fix"]


# --------------------------------------------------------------------------
# The analysis and the judgements, on real certificates and handshakes


def _handshake_error(
    leaf_pem: bytes, key_pem: bytes, tmp_path: Path, trust: bytes
) -> tuple[bytes, BaseException]:
    """Serve ``leaf`` on loopback; handshake trusting ``trust``; return the leaf and the error."""
    cert_file = tmp_path / "leaf.pem"
    key_file = tmp_path / "leaf.key"
    cert_file.write_bytes(leaf_pem)
    key_file.write_bytes(key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert_file, key_file)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        try:
            server_ctx.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cadata=trust.decode())
    raw = socket.create_connection(listener.getsockname(), timeout=5)
    try:
        client_ctx.wrap_socket(raw, server_hostname="127.0.0.1")
    except ssl.SSLError as exc:
        error: BaseException = exc
    else:
        raise AssertionError("the handshake should have failed")
    finally:
        raw.close()
        thread.join(5)
        listener.close()
    return ssl.PEM_cert_to_DER_cert(leaf_pem.decode()), error


def test_explain_an_expired_server_certificate(tmp_path):
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)
    old = self_signed("127.0.0.1", not_before=start, lifetime=dt.timedelta(hours=1))
    der, error = _handshake_error(old.cert_pem, old.key_pem, tmp_path, old.cert_pem)
    finding = check_tls(der, "127.0.0.1", [old.cert_pem.decode()], error)
    assert [p.check for p in finding.problems] == ["validity"]
    assert "has expired" in finding.problems[0].detail
    assert "clock" in finding.problems[0].fix


def test_explain_a_chain_from_an_unknown_issuer(tmp_path):
    _, leaf = ca_and_leaf("Some Other CA")
    trusted, _ = ca_and_leaf("The Enrolled CA")
    der, error = _handshake_error(leaf.cert_pem, leaf.key_pem, tmp_path, trusted.cert_pem)
    finding = check_tls(der, "127.0.0.1", [trusted.cert_pem.decode()], error)
    assert [p.check for p in finding.problems] == ["chain"]
    assert "issued by 'CN=Some Other CA'" in finding.problems[0].detail
    assert "'The Enrolled CA'" in finding.problems[0].detail
    assert finding.names == ("localhost", "127.0.0.1")


def test_certificate_judgement_on_the_enrolled_certificate(agent_dir):
    identity = read_identity(agent_dir)
    info = cert_info(pem_to_der(identity.cert_path.read_text()))
    life = info.not_after - info.not_before
    report = Report()
    for now in (
        info.not_before + life / 2,  # before renewal is due
        info.not_after - life / 4,  # renewal overdue
        info.not_after + 60,  # expired
        info.not_before - 60,  # the clock is behind
    ):
        check_certificate(report, identity, now=now)
    statuses = [c.status for c in report.checks]
    assert statuses == [Status.OK, Status.FAIL, Status.FAIL, Status.FAIL]
    assert "seems stuck" in report.checks[1].detail
    assert "certificate renewal failed" in (report.checks[1].fix or "")
    assert "expired" in report.checks[2].detail and "enroll again" in (report.checks[2].fix or "")
    assert "not valid yet" in report.checks[3].detail and "clock" in (report.checks[3].fix or "")


def test_clock_judgement_from_the_channel_and_from_http_date():
    report = Report()
    check_clock(report, ChannelClock(offset_s=2.5, rtt_s=0.01), None)
    check_clock(report, ChannelClock(offset_s=-0.3, rtt_s=0.01), None)
    check_clock(report, ChannelClock(offset_s=1.2, rtt_s=1.0), None)  # within the margin
    # Date has whole seconds: 1000 means the server's clock read [1000, 1001).
    check_clock(report, None, HttpDate(server=1000.0, sent=1003.0, received=1003.1))
    check_clock(report, None, HttpDate(server=1000.0, sent=1001.5, received=1001.6))
    check_clock(report, None, None)
    statuses = [c.status for c in report.checks]
    assert statuses == [Status.FAIL, Status.OK, Status.OK, Status.FAIL, Status.OK, Status.SKIP]
    assert "2500 ms ahead of" in report.checks[0].detail
    assert "chrony" in (report.checks[0].fix or "")


def test_doctor_imports_nothing_heavy():
    loaded = packages_after("import agent.cli, agent.doctor")
    forbidden = {
        "httpx",
        "pydantic",
        "fastapi",
        "textual",
        "uvicorn",
        "controlplane",
        "cryptography",
    }
    assert loaded & forbidden == set()
