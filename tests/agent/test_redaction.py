"""Tests for :mod:`agent.redaction` on a corpus of realistic log lines."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from agent.redaction import MAX_LINE_CHARS, REDACTED, Redactor, redact
from tests.agent.redaction_corpus import (
    API,
    ENROLL,
    JWT,
    KEPT,
    MASKED,
    PEM_BODY,
    SECRETS,
)

PEM_KINDS = ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"]


@pytest.mark.parametrize(("line", "expected"), MASKED, ids=[str(i) for i in range(len(MASKED))])
def test_masks_secret_and_keeps_the_rest(line: str, expected: str) -> None:
    assert redact(line) == expected


@pytest.mark.parametrize("line", KEPT, ids=[str(i) for i in range(len(KEPT))])
def test_keeps_diagnostic_lines_unchanged(line: str) -> None:
    assert redact(line) == line


def test_no_corpus_secret_survives_in_the_whole_log() -> None:
    text = "\n".join(line for line, _ in MASKED)
    out = redact(text)
    for secret in SECRETS:
        assert secret not in out
    assert out.count("\n") == text.count("\n")


def test_whole_corpus_as_one_text_matches_line_by_line() -> None:
    lines = [line for line, _ in MASKED] + KEPT
    expected = [exp for _, exp in MASKED] + KEPT
    assert redact("\n".join(lines)).split("\n") == expected


@pytest.mark.parametrize("kind", PEM_KINDS)
def test_pem_block_in_one_call_masks_every_inner_line(kind: str) -> None:
    text = "\n".join(
        [
            "2026-11-27T03:12:58Z ERROR loaded key:",
            f"-----BEGIN {kind}-----",
            *PEM_BODY,
            f"-----END {kind}-----",
            "2026-11-27T03:12:59Z INFO connected to cp.example.com:8443 in 41 ms",
        ]
    )
    out = redact(text).split("\n")
    assert out[0] == "2026-11-27T03:12:58Z ERROR loaded key:"
    assert out[1] == f"-----BEGIN {kind}-----"
    assert out[2 : 2 + len(PEM_BODY)] == ["[REDACTED:private-key]"] * len(PEM_BODY)
    assert out[2 + len(PEM_BODY)] == f"-----END {kind}-----"
    assert out[-1] == "2026-11-27T03:12:59Z INFO connected to cp.example.com:8443 in 41 ms"


def test_pem_block_keeps_indentation_blank_lines_and_headers_masked() -> None:
    text = (
        "tls:\n"
        "  key: |\n"
        "    -----BEGIN RSA PRIVATE KEY-----\n"
        "    Proc-Type: 4,ENCRYPTED\n"
        "    DEK-Info: AES-128-CBC,3F17F5316E2BAC89\n"
        "\n"
        f"    {PEM_BODY[0]}\n"
        f"    {PEM_BODY[3]}\n"
        "    -----END RSA PRIVATE KEY-----\n"
        "  ca_pin: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
    )
    expected = (
        "tls:\n"
        "  key: |\n"
        "    -----BEGIN RSA PRIVATE KEY-----\n"
        "    [REDACTED:private-key]\n"
        "    [REDACTED:private-key]\n"
        "\n"
        "    [REDACTED:private-key]\n"
        "    [REDACTED:private-key]\n"
        "    -----END RSA PRIVATE KEY-----\n"
        "  ca_pin: sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
    )
    assert redact(text) == expected


def test_pem_block_without_end_is_masked_to_the_end() -> None:
    text = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(PEM_BODY[:2]) + "\nAbc"
    out = redact(text).split("\n")
    assert out == ["-----BEGIN PRIVATE KEY-----"] + ["[REDACTED:private-key]"] * 3


def test_pem_block_with_crlf_line_endings() -> None:
    text = "-----BEGIN PRIVATE KEY-----\r\n" + PEM_BODY[3] + "\r\n-----END PRIVATE KEY-----\r\n"
    expected = (
        "-----BEGIN PRIVATE KEY-----\r\n[REDACTED:private-key]\r\n-----END PRIVATE KEY-----\r\n"
    )
    assert redact(text) == expected


def test_pem_end_line_with_prefix_and_trailing_secret() -> None:
    text = f"-----BEGIN PRIVATE KEY-----\n{PEM_BODY[3]}-----END PRIVATE KEY----- password=hunter2"
    assert redact(text) == (
        f"-----BEGIN PRIVATE KEY-----\n[REDACTED:private-key]-----END PRIVATE KEY----- "
        f"password={REDACTED}"
    )


def test_certificate_block_is_not_a_private_key() -> None:
    text = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
    assert redact(text) == text


def test_streaming_redactor_tracks_pem_blocks_across_calls() -> None:
    redactor = Redactor()
    assert redactor.redact_line("-----BEGIN OPENSSH PRIVATE KEY-----") == (
        "-----BEGIN OPENSSH PRIVATE KEY-----"
    )
    assert redactor.in_private_key
    assert redactor.redact_line(PEM_BODY[3]) == "[REDACTED:private-key]"
    assert redactor.redact_line("-----END OPENSSH PRIVATE KEY-----") == (
        "-----END OPENSSH PRIVATE KEY-----"
    )
    assert not redactor.in_private_key
    assert redactor.redact_line("token expired for agent ag_1") == "token expired for agent ag_1"
    redactor.redact_line("-----BEGIN PRIVATE KEY-----")
    redactor.reset()
    assert redactor.redact_line("abc") == "abc"


def test_preserves_line_terminators_exactly() -> None:
    text = f"a password=x\r\nb {ENROLL}\n\nc\rd {API}\n"
    out = redact(text)
    assert out == (
        f"a password={REDACTED}\r\nb [REDACTED:enrollment-token]\n\nc\rd [REDACTED:api-token]\n"
    )
    assert out.splitlines(keepends=True)[0].endswith("\r\n")


def test_empty_text() -> None:
    assert redact("") == ""


def test_token_lookalikes_of_the_wrong_length_are_kept() -> None:
    short = "flte_" + "a" * 39
    assert redact(f"got {short}") == f"got {short}"
    assert redact(f"got {ENROLL}x") == f"got {ENROLL}x"


def test_redacted_output_is_stable_for_the_corpus() -> None:
    for line, expected in MASKED:
        assert redact(expected) == expected, line


def test_jwt_kind_is_kept_when_it_appears_under_a_secret_key() -> None:
    assert redact(f"id_token={JWT}") == "id_token=[REDACTED:jwt]"


# ---------------------------------------------------------------------------
# Properties.

_FRAGMENTS = (
    [line for line, _ in MASKED]
    + KEPT
    + [
        "-----BEGIN RSA PRIVATE KEY-----",
        "-----END RSA PRIVATE KEY-----",
        "-----BEGIN PRIVATE KEY-----",
        "password",
        "token",
        "Authorization: ",
        "Bearer ",
        "://",
        "@",
        "=",
        ": ",
        '"',
        "'",
        "\\",
        "[REDACTED]",
        "[REDACTED:jwt]",
        "eyJ",
        "AKIA",
        "flte_",
        " ",
        "\n",
        "\r\n",
        "\r",
    ]
)

_TEXT = st.lists(
    st.one_of(st.sampled_from(_FRAGMENTS), st.text(max_size=12)),
    max_size=12,
).map("".join)


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_property_same_number_of_lines(text: str) -> None:
    out = redact(text)
    assert len(out.splitlines()) == len(text.splitlines())
    assert out.count("\n") == text.count("\n")


@settings(max_examples=400, deadline=None)
@given(_TEXT)
def test_property_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_property_arbitrary_text(text: str) -> None:
    once = redact(text)
    assert len(once.splitlines()) == len(text.splitlines())
    assert redact(once) == once


@settings(max_examples=400, deadline=None)
@given(st.lists(_TEXT, max_size=8).map("\n".join))
def test_property_each_line_redacts_alone_from_the_state_follow_found(text: str) -> None:
    # What LogBook.tail relies on to redact newest first: following lines gives the
    # state before each, and a redactor started there redacts it as redact() does.
    lines = text.splitlines()
    tracker = Redactor()
    alone = []
    for line in lines:
        alone.append(Redactor(in_private_key=tracker.in_private_key).redact_line(line))
        tracker.follow(line)
    assert alone == redact("\n".join(lines)).split("\n")[: len(lines)]


def test_follow_moves_through_a_key_block_without_redacting() -> None:
    redactor = Redactor()
    redactor.follow("key: -----BEGIN EC PRIVATE KEY-----")
    assert redactor.in_private_key
    redactor.follow("password=hunter2")
    assert redactor.in_private_key
    redactor.follow("-----END EC PRIVATE KEY----- and on")
    assert not redactor.in_private_key
    inside = Redactor(in_private_key=True)
    assert inside.redact_line("  plain words") == "  [REDACTED:private-key]"


def test_throughput_sanity() -> None:
    """Not a timed assertion: prints how long 10,000 realistic lines take."""
    lines = ([line for line, _ in MASKED] + KEPT) * (10_000 // (len(MASKED) + len(KEPT)) + 1)
    text = "\n".join(lines[:10_000])
    start = time.perf_counter()
    out = redact(text)
    elapsed = time.perf_counter() - start
    print(f"redact: 10,000 lines in {elapsed * 1000:.0f} ms")
    assert out.count("\n") == 9_999


_SHAPE_SECRETS = [
    ENROLL,
    API,
    JWT,
    *(s for s in SECRETS if s.startswith(("gh", "xox", "sk_", "AKIA"))),
]
_SEPARATORS = st.text(alphabet=" \t,;:=()[]{}<>\"'|", min_size=1, max_size=3)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(_FRAGMENTS), max_size=4).map(" ".join),
    _SEPARATORS,
    st.sampled_from(_SHAPE_SECRETS),
    _SEPARATORS,
    st.lists(st.sampled_from(_FRAGMENTS), max_size=4).map(" ".join),
)
def test_property_shaped_tokens_never_survive(
    before: str, left: str, secret: str, right: str, after: str
) -> None:
    text = before + left + secret + right + after
    assert secret not in redact(text)


# ---------------------------------------------------------------------------
# Time: linear in the length of a line, and long lines cut with a marker.

_TRIGGERS = [
    "password: x",
    "password=",
    "password",
    '"password": "',
    "'secret': '",
    "  - token: ",
    "token ",
    "--password ",
    "-p",
    "mysql -p",
    '"auth": "',
    "auth: ",
    "Authorization: ",
    "Authorization: Bearer ",
    "X-Api-Key: ",
    "Cookie: ",
    "postgres://app:",
    "jdbc:oracle:thin:a/",
    "?sig=",
    "<password>",
    "curl -u admin:",
    "AKIA" + "IOSFODNN7EXAMPLE ",
    "eyJ",
    "-----BEGIN PRIVATE KEY-----",
    "hooks.slack.com/services/",
]
# What follows a trigger, repeated: blanks, separators, quotes, flags, base64.
_RUNS = [
    " ",
    "\t",
    "=",
    ":",
    '"',
    "'",
    "-p",
    "\\",
    '\\"',
    "a",
    "aZ09+/",
    "a=",
    ":a",
    "a: ",
    "@",
    "${",
    "[",
    "[REDACTED:",
    "-",
    " #",
    "a.",
    "x;",
]


def _best_time(fn: Callable[[], object], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _benign(length: int) -> str:
    """A realistic line of ``length`` characters: corpus lines joined by blanks."""
    words = " ".join([line for line, _ in MASKED] + KEPT)
    return (words * (length // len(words) + 1))[:length]


# Quadratic redaction of a 16 KiB line takes seconds, a linear one milliseconds;
# the floor keeps timer noise on short, fast lines from failing the test.
_MAX_RATIO = 20
_FLOOR_S = 0.002


def test_every_trigger_and_run_is_linear() -> None:
    """Each trigger followed by 8,000 characters of each run, against one benign baseline."""
    length = 8_192
    baseline = _best_time(lambda: redact(_benign(length)), runs=5)
    for trigger in _TRIGGERS:
        for run in _RUNS:
            line = (trigger + run * length)[: length - 1] + "y"
            elapsed = _best_time(partial(redact, line), runs=1)
            if elapsed > _MAX_RATIO * max(baseline, _FLOOR_S):
                elapsed = _best_time(partial(redact, line))
                baseline = min(baseline, _best_time(lambda: redact(_benign(length))))
            assert elapsed <= _MAX_RATIO * max(baseline, _FLOOR_S), (
                f"{elapsed * 1000:.1f} ms for {trigger!r} + {run!r} * {length},"
                f" benign {baseline * 1000:.1f} ms"
            )


@settings(max_examples=40, deadline=None)
@example(trigger="password: x", run=" ", repeat=1_000_000, length=40_000, tail="y")
@given(
    trigger=st.sampled_from(_TRIGGERS),
    run=st.one_of(st.sampled_from(_RUNS), st.text(min_size=1, max_size=8)),
    repeat=st.sampled_from([1, 4, 64, 1_000_000, 1_000_000, 1_000_000]),
    length=st.sampled_from([2_048, 8_192, MAX_LINE_CHARS, 40_000, 64 * 1024]),
    tail=st.sampled_from(["", "y", " y", "@h", '"']),
)
def test_redaction_time_is_linear_in_line_length(
    trigger: str, run: str, repeat: int, length: int, tail: str
) -> None:
    """Adversarial lines cost at most a constant times a benign line of the same length.

    A line is a trigger word followed by a run of one character class (``repeat``
    large), or the trigger and a short run repeated (many triggers in one line).
    """
    run = "".join(c if len(f"a{c}b".splitlines()) == 1 else " " for c in run)  # one line
    unit = trigger + run * min(repeat, length)
    line = (unit * (length // len(unit) + 1))[: length - len(tail)] + tail
    benign = _benign(len(line))
    adversarial = _best_time(lambda: redact(line), runs=1)
    baseline = _best_time(lambda: redact(benign))
    if adversarial > _MAX_RATIO * max(baseline, _FLOOR_S):
        adversarial = _best_time(lambda: redact(line))  # measure again before failing
        baseline = _best_time(lambda: redact(benign))
    assert adversarial <= _MAX_RATIO * max(baseline, _FLOOR_S), (
        f"{adversarial * 1000:.1f} ms for {trigger!r} + {run!r} (x{repeat}) in {len(line)} chars,"
        f" benign {baseline * 1000:.1f} ms"
    )


@settings(max_examples=15, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=8), st.integers(1_000, 64 * 1024))
def test_random_long_lines_are_linear_and_idempotent(pieces: list[str], length: int) -> None:
    unit = "".join(pieces) or "x"
    line = (unit * (length // len(unit) + 1))[:length].replace("\n", " ").replace("\r", " ")
    line = "".join(c if not c.isspace() or c in " \t" else " " for c in line)
    once = redact(line)
    assert redact(once) == once
    elapsed = _best_time(lambda: redact(line), runs=1)
    baseline = _best_time(lambda: redact(_benign(len(line))))
    assert elapsed <= _MAX_RATIO * max(baseline, _FLOOR_S)


@pytest.mark.parametrize("blanks", [20_000, 40_000])
def test_the_reported_quadratic_lines_are_fast(blanks: int) -> None:
    """``password: x``, 20,000 or 40,000 blanks, ``y``: 1.2 s and 4.3 s before the fix."""
    line = "password: x" + " " * blanks + "y"
    elapsed = _best_time(lambda: redact(line))
    baseline = _best_time(lambda: redact(_benign(len(line))))
    assert elapsed <= _MAX_RATIO * max(baseline, _FLOOR_S), f"{elapsed * 1000:.1f} ms"
    assert redact(line).startswith(f"password: {REDACTED}")


def test_long_line_is_cut_at_a_blank_with_a_marker() -> None:
    words = ["alpha", "beta", "gamma"] * 4000
    line = " ".join(words) + f" password={ENROLL}"
    out = redact(line)
    head, _, marker = out.rpartition(" [cut: ")
    assert len(head) <= MAX_LINE_CHARS
    assert line.startswith(head)
    assert marker == f"{len(line) - len(head)} more chars]"
    assert ENROLL not in out and "password" not in out
    assert redact(out) == out


def test_cut_never_shows_part_of_a_secret() -> None:
    """The word that straddles the cut is dropped whole, not cut into a partial token."""
    pad = "x" * (MAX_LINE_CHARS - 20) + " "
    out = redact(pad + ENROLL + " more")
    assert out == pad + f" [cut: {len(ENROLL) + 5} more chars]"
    assert ENROLL[:10] not in out
    assert redact(out) == out


def test_a_line_that_is_one_long_word_is_dropped_with_a_marker() -> None:
    line = PEM_BODY[0] * 400
    assert redact(line) == f" [cut: {len(line)} more chars]"


def test_cut_line_secrets_before_the_cut_are_masked() -> None:
    line = f"password={SECRETS[-1]} token: {API} " + "z " * MAX_LINE_CHARS
    out = redact(line)
    assert out.startswith(f"password={REDACTED} token: [REDACTED:api-token] ")
    assert out.endswith(" more chars]")
    assert redact(out) == out


def test_a_line_ending_like_a_marker_is_still_redacted() -> None:
    line = "password=hunter2 [cut: 12 more chars]"
    assert redact(line) == f"password={REDACTED} [cut: 12 more chars]"
    huge = "password=hunter2 " + "a " * (8 * MAX_LINE_CHARS) + "[cut: 12 more chars]"
    out = redact(huge)
    assert len(out) < 2 * MAX_LINE_CHARS
    assert "hunter2" not in out
    assert redact(out) == out
