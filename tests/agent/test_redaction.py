"""Tests for :mod:`agent.redaction` on a corpus of realistic log lines."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.redaction import REDACTED, Redactor, redact
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
