"""The dashboard leaves when its terminal goes away (a dropped SSH session)."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import time

from fleet_tui.hangup import terminal_gone


def test_terminal_gone_once_the_other_end_closes():
    master, slave = pty.openpty()
    try:
        assert not terminal_gone(slave)
        os.close(master)
        assert terminal_gone(slave)
    finally:
        os.close(slave)


def test_dashboard_exits_when_its_terminal_hangs_up_without_a_sighup(tmp_path):
    # Started the way `make demo` starts it: the terminal is not its controlling
    # one, so closing it sends no SIGHUP. Textual alone would spin on end-of-file.
    token = tmp_path / "token"
    token.write_text("flta_" + "x" * 40)
    token.chmod(0o600)
    ca = tmp_path / "ca.pem"
    ca.write_text("")
    master, slave = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    args = ["--server", "https://127.0.0.1:9", "--token-file", str(token), "--ca-file", str(ca)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", "tui", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    try:
        deadline = time.monotonic() + 20
        seen = b""
        while b"fleet" not in seen and time.monotonic() < deadline:  # it drew its screen
            try:
                seen += os.read(master, 65536)
            except OSError:
                break
        assert proc.poll() is None, "the dashboard should be running"
        os.close(master)
        assert proc.wait(timeout=10) == 1
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
