"""On a terminal: destructive verbs ask ('n' changes nothing), login asks for the token."""

from __future__ import annotations

import fcntl
import os
import pty
import subprocess
import sys
import termios
import time

from tests.agent.agents import agent_env, enroll
from tests.fleet.run import fleet


def _controlling_terminal() -> None:
    # In the child: a session of its own whose terminal is the pty (getpass opens /dev/tty).
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _on_a_terminal(
    args, env, answer: bytes, prompt: bytes = b"[y/N]", timeout: float = 30.0
) -> tuple[int, str]:
    """Run ``fleet ARGS`` on a pseudo-terminal; type ``answer`` once ``prompt`` shows."""
    main, child = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "fleet", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env=env,
        cwd=env["HOME"],
        preexec_fn=_controlling_terminal,
    )
    os.close(child)
    seen = b""
    deadline = time.monotonic() + timeout
    try:
        while prompt not in seen:
            assert time.monotonic() < deadline, f"no prompt; saw {seen!r}"
            seen += os.read(main, 4096)
        os.write(main, answer + b"\n")
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        while True:  # the rest of the output, until the terminal closes
            try:
                chunk = os.read(main, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(main)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, seen.decode(errors="replace")


def test_revoke_asks_and_a_no_changes_nothing(shared_cp, env, tmp_path):
    assert fleet("login", "--data-dir", str(shared_cp.data_dir), env=env).returncode == 0
    assert enroll(shared_cp, tmp_path / "a", name="asked", env=agent_env()).returncode == 0
    code, text = _on_a_terminal(["agents", "revoke", "asked"], env, b"n")
    assert code == 1 and "Revoke agent asked (" in text and "cancelled" in text
    with shared_cp.api() as api:
        states = {a["name"]: a["state"] for a in api.get("/v1/agents").json()}
    assert states["asked"] == "pending"
    code, text = _on_a_terminal(["agents", "revoke", "asked"], env, b"y")
    assert code == 0 and "revoked agent asked" in text
    with shared_cp.api() as api:
        states = {a["name"]: a["state"] for a in api.get("/v1/agents").json()}
    assert states["asked"] == "revoked"


def test_login_asks_for_the_token_on_a_terminal_and_does_not_echo_it(shared_cp, env, home):
    args = ["login", "--server", shared_cp.url, "--ca-file", str(shared_cp.ca_file)]
    token = shared_cp.user("typist", "viewer")
    code, text = _on_a_terminal(args, env, token.encode(), prompt=b"API token")
    assert code == 0 and "as typist (viewer)" in text, text
    assert token not in text
    assert (home / "config" / "fleet" / "token").read_text().strip() == token
