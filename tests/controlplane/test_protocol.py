"""The wire protocol: round trips, and bad input rejected with a clear ProtocolError."""

from __future__ import annotations

import ast
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
    CloseCode,
    CommandFinished,
    CommandRequest,
    ConnectionRemoved,
    Heartbeat,
    Hello,
    LogsCommand,
    LogsResult,
    Presence,
    ProbeCommand,
    ProbeResult,
    ProtocolError,
    Snapshot,
    Subscribe,
    TimeProbe,
    TimeReply,
    Welcome,
    command_request_id,
    command_result,
    dump,
    parse_agent_message,
    parse_client_message,
    parse_server_message,
    parse_stream_message,
)
from tests.helpers.server import REPO

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
        ("[1, 2]", "expected a JSON object, got `array`"),
        ('{"seq": 1}', "has no 'type' field"),
        ('{"type": 7}', "'type' must be a string"),
        ('{"type": "launch_missiles"}', "unknown agent message type 'launch_missiles'"),
        ('{"type": "heartbeat", "seq": -1}', "'heartbeat': seq: Expected `int` >= 0"),
        ('{"type": "heartbeat", "seq": "x", "sent_at": 1, "version": "1", "uptime_s": 1}', "seq"),
        pytest.param("[" * 100_000, "JSON object|not valid JSON|nested too deeply", id="deep"),
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


# Frames the pydantic models accepted by coercion while the agent's own parser
# refused them (issue 8, l): with one strict definition both sides refuse.
LAX_SERVER_FRAMES = [
    ('{"type":"welcome","agent_id":"a","heartbeat_interval_s":0}', "heartbeat_interval_s"),
    ('{"type":"time_probe","id":1.0,"t1":1}', "id: Expected `int`, got `float`"),
    (
        '{"type":"hello","protocol_version":true,"server_version":"1","nonce":"ab"}',
        "protocol_version: Expected `int`, got `bool`",
    ),
    (
        '{"type":"command","request_id":"r","timeout_s":5,'
        '"command":{"kind":"probe","host":"db","port":5432,"tls":1}}',
        "command.tls: Expected `bool`, got `int`",
    ),
    ('{"type":"welcome","agent_id":"a","heartbeat_interval_s":"5"}', "Expected `float`"),
    ('{"type":"time_probe","id":1,"t1":1e400}', "out of range"),
]


@pytest.mark.parametrize(("frame", "says"), LAX_SERVER_FRAMES)
def test_no_lax_coercion(frame, says):
    with pytest.raises(ProtocolError, match=says):
        parse_server_message(frame)


def test_an_integer_is_a_number_where_a_float_is_asked():
    welcome = parse_server_message('{"type":"welcome","agent_id":"a","heartbeat_interval_s":5}')
    assert isinstance(welcome, Welcome) and welcome.heartbeat_interval_s == 5.0


def test_agent_and_server_share_one_definition():
    # The agent's modules speak fleet.protocol itself: there is no second copy to drift.
    import agent.channel
    import agent.doctor._channel

    for module in (agent.channel, agent.doctor._channel):
        assert module.parse_server_message is parse_server_message
        assert module.Welcome is Welcome
    assert not (REPO / "agent" / "wire.py").exists()


# 4xxx codes are ours and mean nothing else: any such number is a close code.
_OUR_CLOSES = {v for k, v in vars(CloseCode).items() if k.isupper() and v >= 4000}
# The standard codes also occur as plain numbers (1000 ms in a second), so one of
# them counts as a close code only next to a name or word that says "code" or "close".
_STANDARD_CLOSES = {1000, 1001, 1006, 1008, 1009, 1011}
_CONTAINERS = (ast.Tuple, ast.List, ast.Set, ast.Starred)


def _close_code_numbers(source: str) -> list[tuple[int, int]]:
    """(line, number) of each close code written as a number in ``source``."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and type(node.value) is int):
            continue
        if _inside_close_code_class(node, parents):
            continue
        if node.value in _OUR_CLOSES or (
            node.value in _STANDARD_CLOSES and _beside_a_close_code(node, parents)
        ):
            found.append((node.lineno, node.value))
    return found


def _inside_close_code_class(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.ClassDef) and node.name == "CloseCode":
            return True
    return False


def _beside_a_close_code(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    context = parents[node]
    while isinstance(context, _CONTAINERS) and context in parents:
        context = parents[context]
    if isinstance(context, (ast.MatchValue, ast.MatchOr, ast.match_case)):
        while not isinstance(context, ast.Match):
            context = parents[context]
        context = context.subject
    words = []
    for sub in ast.walk(context):
        if isinstance(sub, ast.Name):
            words.append(sub.id)
        elif isinstance(sub, ast.Attribute):
            words.append(sub.attr)
        elif isinstance(sub, ast.keyword) and sub.arg:
            words.append(sub.arg)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            words.append(sub.value)
    return any("code" in word.lower() or "close" in word.lower() for word in words)


@pytest.mark.parametrize(
    "source",
    [
        'await ws.close(1000, "agent stopping")',
        "ws.close(code=1001)",
        "if self.close_code == 4004: pass",
        "stop = ws.close_code not in (1000, 1001)",
        "code = exc.rcvd.code if exc.rcvd is not None else 1006",
        'MEANINGS = {CloseCode.NORMAL: "normal", 1011: "internal error"}',
        'code = message.get("code", 1008)',
        "raise ChannelClosed(1009)",
        "match exc.code:\n    case 1000 | 1001: pass",
    ],
)
def test_a_close_code_written_as_a_number_is_found(source):
    assert _close_code_numbers(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "ms = round(seconds * 1000, 2)",
        "if abs(ms) >= 1000: pass",
        "TIMEOUT_MS = 1000",
        "if ws.close_code != CloseCode.NORMAL: pass",
        "class CloseCode:\n    NORMAL = 1000\n    REVOKED = 4004",
    ],
)
def test_a_number_that_is_no_close_code_is_left_alone(source):
    assert _close_code_numbers(source) == []


def test_close_codes_are_named_not_numbers():
    # Close codes are CloseCode's names wherever they are sent or compared (issue 8, l):
    # in the agent, the simulated agents and demo, and the dashboard.
    found = []
    for package in ("agent", "controlplane", "fleet", "fleet_tui"):
        for path in sorted((REPO / package).rglob("*.py")):
            for line, number in _close_code_numbers(path.read_text()):
                found.append(f"{path.relative_to(REPO)}:{line}: {number}")
    assert found == []


def test_an_unknown_command_still_yields_its_request_id_for_an_unsupported_answer():
    frame = json.dumps(
        {"type": "command", "request_id": "r9", "timeout_s": 5, "command": {"kind": "teleport"}}
    )
    with pytest.raises(ProtocolError, match=r"command\.kind"):
        parse_server_message(frame)
    assert command_request_id(frame) == "r9"
    assert command_request_id('{"type": "time_probe", "id": 1}') is None
    assert command_request_id("not json") is None
    assert command_request_id("[1]") is None


_SERVER_TYPES = st.sampled_from(
    ["hello", "welcome", "time_probe", "command", "renew_response", "error", "x"]
)
_SERVER_KEYS = st.sampled_from(
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


@given(
    _SERVER_TYPES,
    st.dictionaries(_SERVER_KEYS, json_values, max_size=8),
    st.dictionaries(_SERVER_KEYS, json_values, max_size=6),
)
@settings(max_examples=400, deadline=None)
def test_any_server_frame_parses_or_is_a_protocol_error(kind, fields, command):
    frame = {**fields, "type": kind}
    if kind == "command" and "command" not in fields:
        frame["command"] = {**command, "kind": command.get("kind", "probe")}
    try:
        text = json.dumps(frame)
    except (ValueError, OverflowError):
        return
    try:
        parse_server_message(text)
    except ProtocolError as exc:
        assert str(exc)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type":"time_probe","id":1,"t1":1' + "0" * 400 + "}",
        '{"type":"welcome","agent_id":"a","heartbeat_interval_s":1e400}',
        '{"type":"time_probe","id":1,"t1":NaN}',
    ],
)
def test_numbers_out_of_range_are_protocol_errors(frame):
    with pytest.raises(ProtocolError):
        parse_server_message(frame)


def test_results_built_as_plain_data_are_held_to_the_protocol():
    ok = command_result({"kind": "logs", "lines": ["a"], "truncated": False})
    assert ok == LogsResult(lines=["a"])
    with pytest.raises(ProtocolError, match="port"):
        command_result({"kind": "probe", "host": "db", "port": "5432", "tls": False, "ok": True})
