"""The wire protocol: round trips, and bad input rejected with a clear ProtocolError."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleet.protocol import (
    MAX_FRAME_BYTES,
    PROTOCOL_VERSION,
    AgentRemoved,
    AgentState,
    AgentUpdate,
    Auth,
    CommandFinished,
    CommandRequest,
    ConnectionRemoved,
    Heartbeat,
    Hello,
    LogsCommand,
    Presence,
    ProbeCommand,
    ProbeResult,
    ProtocolError,
    Snapshot,
    Subscribe,
    TimeProbe,
    TimeReply,
    Welcome,
    dump,
    parse_agent_message,
    parse_client_message,
    parse_server_message,
    parse_stream_message,
)

AGENT_MESSAGES = [
    Auth(protocol_version=1, agent_id="ag_1", certificate_pem="x", signature="c2ln", version="1"),
    Heartbeat(seq=3, sent_at=time.time(), version="1.2.3", uptime_s=10.5, queue_depth=2),
    TimeReply(id=1, t1=1.0, t2=2.0, t3=2.1),
    CommandFinished(
        request_id="r1", result=ProbeResult(host="db", port=5432, tls=False, ok=True, dns_ms=1.0)
    ),
]
SERVER_MESSAGES = [
    Hello(protocol_version=PROTOCOL_VERSION, server_version="0.1", nonce="ab"),
    Welcome(agent_id="ag_1", heartbeat_interval_s=5),
    TimeProbe(id=1, t1=1.0),
    CommandRequest(request_id="r", timeout_s=5, command=ProbeCommand(host="db", port=1)),
    CommandRequest(request_id="r", timeout_s=5, command=LogsCommand(lines=10)),
]
STATE = AgentState(id="ag_1", name="a", pool="p", state=Presence.DEGRADED, reasons=["skew"])


@pytest.mark.parametrize("message", AGENT_MESSAGES, ids=lambda m: m.type)
def test_agent_messages_round_trip(message):
    assert parse_agent_message(dump(message)) == message


@pytest.mark.parametrize("message", SERVER_MESSAGES, ids=lambda m: m.type)
def test_server_messages_round_trip(message):
    assert parse_server_message(dump(message)) == message


def test_stream_messages_round_trip():
    snap = Snapshot(protocol_version=1, seq=4, server_time=1.0, agents=[STATE], role="admin")
    assert parse_stream_message(dump(snap)) == snap
    update = AgentUpdate(seq=5, agent=STATE)
    assert parse_stream_message(dump(update)) == update
    sub = Subscribe(protocol_version=1, since=3)
    assert parse_client_message(dump(sub)) == sub
    removed = AgentRemoved(seq=6, agent_id="ag_1")
    assert parse_stream_message(dump(removed)) == removed
    assert '"type":"agent_removed"' in dump(removed)
    gone = ConnectionRemoved(seq=7, name="pg")
    assert parse_stream_message(dump(gone)) == gone
    assert '"type":"connection_removed"' in dump(gone)


@pytest.mark.parametrize(
    ("frame", "says"),
    [
        ("{", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"seq": 1}', "no string 'type'"),
        ('{"type": "launch_missiles"}', "does not match any of the expected tags"),
        ('{"type": "heartbeat", "seq": -1}', "heartbeat.seq"),
        ('{"type": "heartbeat", "seq": "x", "sent_at": 1, "version": "1", "uptime_s": 1}', "seq"),
        ("x" * (MAX_FRAME_BYTES + 1), "exceeds the"),
    ],
)
def test_malformed_frames_get_clear_errors(frame, says):
    with pytest.raises(ProtocolError, match=says):
        parse_agent_message(frame)


def test_unknown_fields_are_ignored_for_forward_compatibility():
    raw = json.loads(dump(AGENT_MESSAGES[1]))
    raw["gpu_percent"] = 12
    assert parse_agent_message(json.dumps(raw)) == AGENT_MESSAGES[1]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | st.text(max_size=200))
def test_random_bytes_never_escape_as_other_exceptions(data):
    for parse in (parse_agent_message, parse_server_message, parse_stream_message):
        try:
            parse(data)
        except ProtocolError as exc:
            assert str(exc)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(["auth", "heartbeat", "time_reply", "command_result", "renew_request", "x"]),
    st.dictionaries(st.text(max_size=12), json_values, max_size=6),
)
def test_random_objects_with_known_types_are_rejected_cleanly(kind, fields):
    frame = json.dumps({**fields, "type": kind})
    try:
        parse_agent_message(frame)
    except ProtocolError as exc:
        assert kind[:10] in str(exc) or "type" in str(exc) or "invalid" in str(exc)
