"""The agent's logs: ring and rotating file, last N or since, redacted on the way out."""

from __future__ import annotations

import logging
import time

import pytest

from agent.logs import MAX_BUNDLE_BYTES, LogBook
from agent.redaction import MAX_LINE_CHARS, Redactor, redact

SECRET_URL = "postgres://app:Sup3rS3cret!@db.internal:5432/orders"


@pytest.fixture
def book(tmp_path):
    book = LogBook(tmp_path / "logs", max_bytes=4096, backups=2, ring_lines=50)
    book.install("debug", stderr=False)
    yield book
    book.close()


log = logging.getLogger("agent.test")


def test_last_lines_are_redacted_but_keep_host_and_port(book):
    for i in range(5):
        log.info("line %d", i)
    log.warning("cannot connect to %s: timeout after 5.0 s", SECRET_URL)
    lines, truncated = book.tail(3)
    assert not truncated
    assert len(lines) == 3
    assert lines[0].endswith("line 3") and lines[1].endswith("line 4")
    assert "Sup3rS3cret" not in lines[2]
    assert "db.internal:5432" in lines[2] and "timeout after 5.0 s" in lines[2]


def test_since_returns_only_newer_lines(book):
    log.info("old")
    time.sleep(0.02)
    cut = time.time()
    time.sleep(0.02)
    log.info("new")
    lines, _ = book.tail(100, since=cut)
    assert [line.split(": ", 1)[1] for line in lines] == ["new"]


def test_file_rotates_and_older_lines_come_from_the_files(tmp_path, book):
    for i in range(400):  # far more than the ring holds and than one file holds
        log.info("entry %04d %s", i, "x" * 40)
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert files == ["agent.log", "agent.log.1", "agent.log.2"]
    lines, _ = book.tail(80)
    assert len(lines) == 80
    assert lines[-1].split(": ", 1)[1].startswith("entry 0399")
    assert lines[0].split(": ", 1)[1].startswith("entry 0320")


def test_lines_of_an_earlier_run_are_served_from_the_file(tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "agent.log").write_text(
        f"2026-01-01T00:00:00.000Z ERROR agent.channel: lost {SECRET_URL}\n"
    )
    book = LogBook(log_dir, max_bytes=1 << 20, backups=1, ring_lines=50)
    book.install("info", stderr=False)
    try:
        log.info("started again")
        lines, _ = book.tail(10)
    finally:
        book.close()
    assert len(lines) == 2
    assert "lost postgres://" in lines[0] and "Sup3rS3cret" not in lines[0]
    assert lines[1].endswith("started again")


def test_tracebacks_stay_whole_lines(book):
    try:
        raise RuntimeError("boom with token=flte_" + "A" * 40)
    except RuntimeError:
        log.exception("handler failed")
    lines, _ = book.tail(20)
    assert any(line.startswith("Traceback") for line in lines)
    assert not any("A" * 40 in line for line in lines)


def test_bundle_is_capped_below_the_frame_limit(book):
    for _ in range(40):
        log.info("%s", "y " * 8_000)  # 16,000 chars: under the line cut, 640 KB in all
    lines, truncated = book.tail(40)
    assert truncated
    assert sum(len(line) + 1 for line in lines) <= MAX_BUNDLE_BYTES


def test_a_huge_line_comes_back_cut_with_a_marker(book):
    log.info("%s password=hunter2", "z " * 20_000)
    lines, _ = book.tail(1)
    assert len(lines[0]) <= MAX_LINE_CHARS + 40
    assert lines[0].endswith(" more chars]")
    assert "hunter2" not in lines[0]


def test_log_file_is_private(tmp_path, book):
    log.info("x")
    assert (tmp_path / "logs" / "agent.log").stat().st_mode & 0o077 == 0


def test_since_reaches_into_rotated_files_of_earlier_runs(tmp_path):
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    (log_dir / "agent.log.2").write_text("2026-01-01T00:00:00.000Z INFO agent: oldest\n")
    (log_dir / "agent.log.1").write_text(
        "2026-01-01T01:00:00.000Z INFO agent: before\n"
        "2026-01-01T02:00:00.000Z ERROR agent: failed\n"
        "Traceback (most recent call last):\n"
        "2026-01-01T03:00:00.000Z INFO agent: after\n"
    )
    (log_dir / "agent.log").write_text("2026-01-01T04:00:00.000Z INFO agent: latest\n")
    book = LogBook(log_dir, max_bytes=1 << 20, backups=2, ring_lines=10)
    try:
        since = 1767229200.0  # 2026-01-01T01:00:00Z
        lines, _ = book.tail(100, since=since + 1)
    finally:
        book.close()
    assert [line.split(": ", 1)[-1] for line in lines] == [
        "failed",
        "Traceback (most recent call last):",
        "after",
        "latest",
    ]


def _redacted_then_trimmed(picked: list[str]) -> tuple[list[str], bool]:
    """What ``tail`` returned before it redacted newest first: all lines, then the budget."""
    redacted = redact("\n".join(picked)).split("\n") if picked else []
    truncated = False
    size = sum(len(line.encode()) + 1 for line in redacted)
    while redacted and size > MAX_BUNDLE_BYTES:
        size -= len(redacted.pop(0).encode()) + 1
        truncated = True
    return redacted, truncated


def test_a_long_log_redacts_only_the_lines_that_fit_the_bundle(tmp_path, monkeypatch):
    book = LogBook(tmp_path / "logs", max_bytes=1 << 26, backups=1, ring_lines=10_000)
    book.install("info", stderr=False)
    try:
        for i in range(10_000):  # 10 MB: twenty bundles' worth
            secret = "password=hunter2 " if i % 100 == 99 else ""
            log.info("entry %05d %s%s", i, secret, "word " * 200)
        redacted_lines = 0
        redact_line = Redactor.redact_line

        def counting(self: Redactor, line: str) -> str:
            nonlocal redacted_lines
            redacted_lines += 1
            return redact_line(self, line)

        monkeypatch.setattr(Redactor, "redact_line", counting)
        lines, truncated = book.tail(10_000)
        monkeypatch.undo()
    finally:
        book.close()
    assert truncated and 400 < len(lines) < 600
    # The lines sent, and the one that did not fit: not the 10,000 picked.
    assert redacted_lines <= len(lines) + 1
    written = (tmp_path / "logs" / "agent.log").read_text().splitlines()
    assert (lines, truncated) == _redacted_then_trimmed(written)
    assert lines[-1].split(": ", 1)[1].startswith("entry 09999 password=[REDACTED] word")


def test_a_key_block_cut_by_the_budget_is_masked_from_the_first_line_sent(tmp_path):
    # The block opens in a line the budget drops: its lines that are sent must
    # still be masked, exactly as when every line was redacted oldest first.
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    body = [" " * 1000 + f"key material line {i}" for i in range(700)]
    (log_dir / "agent.log").write_text(
        "\n".join(
            [
                "2026-01-01T00:00:00.000Z ERROR agent.keys: cannot load key:",
                "-----BEGIN PRIVATE KEY-----",
                *body,
                "-----END PRIVATE KEY-----",
                "2026-01-01T00:00:01.000Z INFO agent.channel: connect token=flte_" + "B" * 40,
                "2026-01-01T00:00:02.000Z INFO agent.channel: connected",
            ]
        )
        + "\n"
    )
    book = LogBook(log_dir, max_bytes=1 << 26, backups=1, ring_lines=10)
    try:
        lines, truncated = book.tail(10_000)
    finally:
        book.close()
    written = (log_dir / "agent.log").read_text().splitlines()
    assert (lines, truncated) == _redacted_then_trimmed(written)
    assert truncated and lines[0] == " " * 1000 + "[REDACTED:private-key]"
    assert not any("key material" in line or "B" * 40 in line for line in lines)
    assert lines[-3:] == [
        "-----END PRIVATE KEY-----",
        "2026-01-01T00:00:01.000Z INFO agent.channel: connect token=[REDACTED:enrollment-token]",
        "2026-01-01T00:00:02.000Z INFO agent.channel: connected",
    ]
