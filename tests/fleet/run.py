"""Run the real ``fleet`` command in a subprocess, in an environment of the test's own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.server import REPO


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment without FLEET_* variables, with a profile directory under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLEET_", "XDG_"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "config"), NO_PROXY="127.0.0.1")
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def fleet(
    *args: str, env: dict[str, str], cwd: Path | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    """``python -m fleet ARGS`` with stdin not a terminal; returns the finished process."""
    return subprocess.run(
        [sys.executable, "-m", "fleet", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd or Path(env["HOME"]),
        input=stdin,
        timeout=60,
    )
