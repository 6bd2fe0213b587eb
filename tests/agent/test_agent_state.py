"""The state directory's identity and where the channel is dialled."""

from __future__ import annotations

import json

import pytest

from agent.errors import StateError
from agent.keys import generate_key_pem
from agent.state import Identity, channel_url, load_identity, save_identity
from fleet.files import write_private


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
