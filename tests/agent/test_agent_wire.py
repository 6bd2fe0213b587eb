"""The agent's pydantic-free codec is held to fleet.protocol, the one contract."""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import wire
from fleet import protocol as P


def test_constants_match_the_protocol_module():
    assert wire.PROTOCOL_VERSION == P.PROTOCOL_VERSION
    assert wire.MAX_FRAME_BYTES == P.MAX_FRAME_BYTES
    assert wire.AGENT_CHANNEL_PATH == P.AGENT_CHANNEL_PATH
    assert wire.CLOSE_RATE_LIMITED == P.CloseCode.RATE_LIMITED


def test_every_agent_frame_parses_with_the_protocol_module():
    frames = [
        wire.auth(agent_id="ag_1", certificate_pem="PEM", signature="c2ln", version="0.1.0"),
        wire.heartbeat(seq=0, sent_at=1.5, version="0.1.0", uptime_s=2.0, queue_depth=3),
        wire.heartbeat(
            seq=7,
            sent_at=1.5,
            version="0.1.0",
            uptime_s=2.0,
            queue_depth=0,
            cpu_percent=12.5,
            mem_rss_bytes=30_000_000,
            mem_host_percent=41.0,
            cert_not_after=2e9,
            config_hash="sha256:" + "0" * 64,
        ),
        wire.time_reply(probe_id=4, t1=1.0, t2=1.1, t3=1.2),
        wire.command_result("r1", {"kind": "logs", "lines": ["a", "b"], "truncated": False}),
        wire.command_result("r2", {"kind": "config", "config": {"samples": True}, "hash": "h"}),
        wire.command_result(
            "r3",
            {
                "kind": "probe",
                "host": "db",
                "port": 5432,
                "tls": False,
                "ok": False,
                "failure": "refused",
                "error": "ConnectionRefusedError",
                "resolved": ["127.0.0.1"],
                "dns_ms": 0.1,
                "connect_ms": 0.2,
            },
        ),
        wire.command_error("r4", "busy", "16 commands pending"),
        wire.renew_request("CSR"),
    ]
    parsed = [P.parse_agent_message(f) for f in frames]
    assert [type(m).__name__ for m in parsed] == [
        "Auth",
        "Heartbeat",
        "Heartbeat",
        "TimeReply",
        "CommandFinished",
        "CommandFinished",
        "CommandFinished",
        "CommandFinished",
        "RenewRequest",
    ]
    hb = parsed[2]
    assert isinstance(hb, P.Heartbeat)
    assert (hb.seq, hb.queue_depth, hb.mem_rss_bytes, hb.config_hash) == (
        7,
        0,
        30_000_000,
        "sha256:" + "0" * 64,
    )
    assert isinstance(parsed[7], P.CommandFinished) and parsed[7].error is not None
    assert parsed[7].error.code == "busy"


SERVER_MESSAGES = [
    P.Hello(protocol_version=1, server_version="0.1.0", nonce="ab" * 32),
    P.Welcome(agent_id="ag_1", heartbeat_interval_s=5, pinned_version="0.2.0"),
    P.Welcome(agent_id="ag_1", heartbeat_interval_s=0.5, time_probe_interval_s=2),
    P.TimeProbe(id=3, t1=1795749446.5),
    P.CommandRequest(request_id="r", timeout_s=5, command=P.ProbeCommand(host="db", port=5432)),
    P.CommandRequest(
        request_id="r",
        timeout_s=5,
        command=P.ProbeCommand(host="db", port=443, tls=True, server_name="x", timeout_s=2.5),
    ),
    P.CommandRequest(request_id="r", timeout_s=5, command=P.LogsCommand(lines=10, since=5.0)),
    P.CommandRequest(request_id="r", timeout_s=5, command=P.ConfigCommand()),
    P.RenewResponse(certificate_pem="C", ca_pem="A"),
    P.RenewResponse(error="no"),
    P.ErrorMessage(code=4004, message="revoked"),
]


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: type(m).__name__)
def test_every_server_frame_reads_back_unchanged(message):
    ours = wire.parse_server_message(P.dump(message))
    theirs = message.model_dump()
    theirs.pop("type")
    mine = _as_dict(ours)
    if "command" in theirs:
        theirs["command"].pop("kind")
    assert mine == {k: v for k, v in theirs.items()}


def _as_dict(obj):
    import dataclasses

    return {
        f.name: _as_dict(getattr(obj, f.name))
        if dataclasses.is_dataclass(getattr(obj, f.name))
        else getattr(obj, f.name)
        for f in dataclasses.fields(obj)
    }


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[]",
        '{"type": "nope"}',
        '{"type": "hello", "protocol_version": 1, "server_version": "x"}',
        '{"type": "welcome", "agent_id": "a", "heartbeat_interval_s": "soon"}',
        '{"type": "time_probe", "id": 1}',
        '{"type": "error", "code": 4004}',
        '{"type": "command", "request_id": "r", "timeout_s": 5,'
        ' "command": {"kind": "probe", "host": "h", "port": 0}}',
        '{"type": "command", "request_id": "r", "timeout_s": 5,'
        ' "command": {"kind": "probe", "host": "h", "port": 1, "timeout_s": 61}}',
        '{"type": "command", "request_id": "r", "timeout_s": 5,'
        ' "command": {"kind": "logs", "lines": 0}}',
        '{"type": "command", "request_id": "r", "timeout_s": 5, "command": {"kind": "shell"}}',
    ],
)
def test_what_the_protocol_module_rejects_the_agent_rejects(frame):
    with pytest.raises(P.ProtocolError):
        P.parse_server_message(frame)
    with pytest.raises(wire.WireError):
        wire.parse_server_message(frame)


def test_unknown_fields_are_ignored_like_the_protocol_module():
    frame = json.dumps({"type": "time_probe", "id": 1, "t1": 2.0, "future": {"x": 1}})
    assert wire.parse_server_message(frame) == wire.TimeProbe(id=1, t1=2.0)


def test_oversized_frame_is_rejected():
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.parse_server_message("x" * (wire.MAX_FRAME_BYTES + 1))


def test_an_unknown_command_still_yields_its_request_id_for_an_unsupported_answer():
    frame = json.dumps(
        {"type": "command", "request_id": "r9", "timeout_s": 5, "command": {"kind": "upgrade"}}
    )
    with pytest.raises(wire.WireError, match="unknown command kind 'upgrade'"):
        wire.parse_server_message(frame)
    assert wire.command_request_id(frame) == "r9"
    answer = P.parse_agent_message(wire.command_error("r9", "unsupported", "upgrade"))
    assert isinstance(answer, P.CommandFinished) and answer.error is not None
    assert answer.error.code == "unsupported"
    assert wire.command_request_id('{"type": "time_probe", "id": 1}') is None
    assert wire.command_request_id("not json") is None


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_TYPES = st.sampled_from(
    ["hello", "welcome", "time_probe", "command", "renew_response", "error", "x"]
)
_KEYS = st.sampled_from(
    [
        "protocol_version",
        "server_version",
        "nonce",
        "agent_id",
        "heartbeat_interval_s",
        "pinned_version",
        "time_probe_interval_s",
        "id",
        "t1",
        "request_id",
        "timeout_s",
        "command",
        "certificate_pem",
        "ca_pem",
        "error",
        "code",
        "message",
        "kind",
        "host",
        "port",
        "tls",
        "server_name",
        "lines",
        "since",
    ]
)


@given(_TYPES, st.dictionaries(_KEYS, _JSON, max_size=8), st.dictionaries(_KEYS, _JSON, max_size=6))
@settings(max_examples=400, deadline=None)
def test_any_frame_parses_or_is_a_wire_error(kind, fields, command):
    frame = {**fields, "type": kind}
    if kind == "command" and "command" not in fields:
        frame["command"] = {**command, "kind": command.get("kind", "probe")}
    try:
        text = json.dumps(frame)
    except (ValueError, OverflowError):
        return
    with contextlib.suppress(wire.WireError):
        wire.parse_server_message(text)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"time_probe","id":1,"t1":1' + "0" * 400 + "}",
        '{"type":"welcome","agent_id":"a","heartbeat_interval_s":1e400}',
        '{"type":"time_probe","id":1,"t1":NaN}',
    ],
)
def test_numbers_out_of_range_are_wire_errors(frame):
    with pytest.raises(wire.WireError):
        wire.parse_server_message(frame)
