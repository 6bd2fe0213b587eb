"""The state directory's identity and where the channel is dialled."""

from __future__ import annotations

import json
import logging

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from agent.errors import StateError
from agent.keys import generate_key_pem
from agent.state import Identity, channel_url, install_renewal, load_identity, save_identity
from fleet.files import write_private
from tests.agent.certs import self_signed


def test_channel_url_uses_the_agents_port_on_the_enrolled_host():
    assert channel_url("https://cp.example:8443", 8444) == "wss://cp.example:8444/v1/agent/connect"
    assert channel_url("https://[::1]:8443", 9000) == "wss://[::1]:9000/v1/agent/connect"
    # Without a port of its own (an older control plane): the API port's route.
    assert channel_url("https://cp.example:8443", None) == "wss://cp.example:8443/v1/agent/connect"


def _enrolled(tmp_path, **doc):
    identity = Identity(tmp_path, "ag_1", "edge-1", "edge", "https://cp:8443", 8444)
    save_identity(identity)
    write_private(tmp_path / "key.pem", generate_key_pem())
    (tmp_path / "cert.pem").write_text("cert")
    (tmp_path / "ca.pem").write_text("ca")
    if doc:
        path = tmp_path / "agent.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), **doc}))
    return identity


def test_identity_round_trips_with_its_channel_port(tmp_path):
    saved = _enrolled(tmp_path)
    assert load_identity(tmp_path) == saved


def test_state_from_before_channel_ports_still_loads(tmp_path):
    _enrolled(tmp_path, channel_port=None)
    assert load_identity(tmp_path).channel_port is None


def test_a_bad_channel_port_says_enroll_again(tmp_path):
    _enrolled(tmp_path, channel_port="8444; rm -rf /")
    with pytest.raises(StateError, match="incomplete; enroll again"):
        load_identity(tmp_path)


# --------------------------------------------------------------------------
# A renewal's key and certificate swap, and a crash at each point of it


def _pairs(tmp_path):
    """An enrolled state directory holding the old pair; the new pair, not yet written."""
    identity = _enrolled(tmp_path)
    old, new = self_signed("old"), self_signed("new")
    write_private(identity.key_path, old.key_pem)
    identity.cert_path.write_bytes(old.cert_pem)
    return identity, old, new


def _matching_pair(identity) -> bytes:
    """The certificate on disk, once checked against the key on disk: they match."""
    key = serialization.load_pem_private_key(identity.key_path.read_bytes(), None)
    cert_pem = identity.cert_path.read_bytes()
    assert x509.load_pem_x509_certificate(cert_pem).public_key() == key.public_key()
    assert identity.key_path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in identity.state_dir.iterdir() if "new" in p.name) == []
    return cert_pem


def test_a_renewal_installs_the_new_key_and_certificate_together(tmp_path):
    identity, _old, new = _pairs(tmp_path)
    write_private(identity.new_key_path, new.key_pem)
    install_renewal(identity, new.cert_pem)
    assert _matching_pair(identity) == new.cert_pem


def test_an_install_whose_new_key_vanished_keeps_the_old_pair(tmp_path):
    # key.pem.new gone before its rename (another process discarded it): undone,
    # never the new certificate over the old key.
    identity, old, new = _pairs(tmp_path)
    with pytest.raises(FileNotFoundError):
        install_renewal(identity, new.cert_pem)
    assert _matching_pair(identity) == old.cert_pem


@pytest.mark.parametrize(
    ("crash", "expect", "said"),
    [
        ("before the certificate came", "old", "discarded key.pem.new"),
        ("while writing cert.pem.new", "old", "discarded key.pem.new"),
        ("before the key's rename", "new", "completed"),
        ("between the key's rename and the certificate's", "new", "completed"),
        ("after the swap", "new", None),
    ],
)
def test_load_identity_finishes_or_undoes_an_interrupted_renewal(
    tmp_path, caplog, crash, expect, said
):
    identity, old, new = _pairs(tmp_path)
    # The state directory as install_renewal leaves it when the agent dies there.
    write_private(identity.new_key_path, new.key_pem)
    if crash == "while writing cert.pem.new":
        write_private(tmp_path / ".cert.pem.new.x1y2z3.tmp", new.cert_pem[:100])
    if crash in ("before the key's rename", "between the key's rename and the certificate's"):
        identity.new_cert_path.write_bytes(new.cert_pem)
    if crash in ("between the key's rename and the certificate's", "after the swap"):
        identity.new_key_path.replace(identity.key_path)
    if crash == "after the swap":
        identity.cert_path.write_bytes(new.cert_pem)

    # Heard on the logger itself: a test that installed the agent's LogBook stops
    # the "agent" logger from propagating to the root, where caplog listens.
    logger = logging.getLogger("agent.state")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.WARNING, logger="agent.state"):
            assert load_identity(tmp_path) == identity
        assert _matching_pair(identity) == (new if expect == "new" else old).cert_pem
        assert (said in caplog.text) if said else caplog.text == ""
        # Done once: a second start finds nothing left to do.
        caplog.clear()
        load_identity(tmp_path)
        assert caplog.text == ""
    finally:
        logger.removeHandler(caplog.handler)
