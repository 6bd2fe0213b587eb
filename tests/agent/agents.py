"""Real agent processes (``python -m agent``) for end-to-end tests.

``python -m agent run`` is a supervisor (``agent/supervisor.py``) whose child runs
the agent: :meth:`AgentProcess.child` finds that child, for tests that stop,
measure or kill the agent itself rather than its supervisor.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.helpers.server import REPO, RunningServer, wait_for


def agent_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEET_")}
    env["NO_PROXY"] = "127.0.0.1,127.0.0.2,127.0.0.3,localhost"
    env.update(extra)
    return env


def enroll(
    server: RunningServer,
    state_dir: Path,
    *,
    token: str | None = None,
    name: str | None = None,
    pin: str | None = None,
    url: str | None = None,
    via_env: bool = False,
    env: dict[str, str] | None = None,
    args: list[str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m agent enroll`` and return the finished process."""
    token = token if token is not None else server.enrollment_token()
    extra = list(args or [])
    args = [sys.executable, "-m", "agent", "enroll", "--server", url or server.url]
    args += ["--ca-pin", pin or server.ca_pin, "--state-dir", str(state_dir), *extra]
    if name:
        args += ["--name", name]
    env = dict(env) if env is not None else agent_env()
    if via_env:
        env["FLEET_ENROLL_TOKEN"] = token
    else:
        token_file = state_dir.parent / f"{state_dir.name}.token"
        token_file.write_text(token + "\n")
        args += ["--token-file", str(token_file)]
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)


@dataclass
class AgentProcess:
    """``python -m agent run`` in a subprocess, its stderr kept in a file."""

    state_dir: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=agent_env)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def stderr_path(self) -> Path:
        return self.state_dir.parent / f"{self.state_dir.name}-run.log"

    def start(self) -> AgentProcess:
        cmd = [sys.executable, "-m", "agent", "run", "--state-dir", str(self.state_dir)]
        with self.stderr_path.open("ab") as err:
            self.proc = subprocess.Popen(
                cmd + self.args, cwd=REPO, env=self.env, stdout=err, stderr=err
            )
        return self

    def output(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def wait(self, timeout: float = 15.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def child(self, timeout: float = 15.0, other_than: int | None = None) -> psutil.Process:
        """The supervisor's child that runs the agent (``python -P -m agent run``),
        once it runs; with ``other_than``, a child with another pid (after a restart)."""
        assert self.proc is not None

        def found() -> psutil.Process | None:
            try:
                children = psutil.Process(self.proc.pid).children()  # type: ignore[union-attr]
            except psutil.NoSuchProcess:
                return None
            for child in children:
                try:
                    if child.cmdline()[1:5] == ["-P", "-m", "agent", "run"] and child.pid != (
                        other_than or -1
                    ):
                        return child
                except psutil.Error:
                    continue
            return None

        return wait_for(found, timeout, 0.02, "the agent's child process")  # type: ignore[no-any-return]

    @property
    def child_pid(self) -> int:
        """The pid of :meth:`child`."""
        return self.child().pid

    @property
    def agent_id(self) -> str:
        import json

        return str(json.loads((self.state_dir / "agent.json").read_text())["agent_id"])
