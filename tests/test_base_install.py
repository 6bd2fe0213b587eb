"""The base distribution alone, in a fresh virtualenv, is a working agent host.

Builds the wheel from a copy of the sources, installs it without extras into a new
venv (websockets, psutil and cryptography come from the package index or pip's
cache), checks that the server and the dashboard are absent and say what to
install, then enrolls and runs a real agent from that venv against a control plane
from the full venv until it is connected.  Takes about 20 s.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fleet import __version__
from tests.agent.agents import agent_env
from tests.helpers.server import REPO, RunningServer, wait_for

SOURCES = ("pyproject.toml", "README.md", "agent", "controlplane", "fleet", "fleet_tui")
NOT_FOR_AGENTS = ("fastapi", "starlette", "uvicorn", "aiosqlite", "textual", "httpx", "pydantic")


def _run(
    args: list[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=240)


def _base_env() -> dict[str, str]:
    # Nothing of the full venv or the source tree may leak into the base venv.
    env = agent_env()
    for name in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP"):
        env.pop(name, None)
    return env


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("base-install")
    src = root / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in SOURCES:
        origin = REPO / name
        if origin.is_dir():
            shutil.copytree(origin, src / name, ignore=ignore)
        else:
            shutil.copy2(origin, src / name)
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", str(src), "-w", str(root)])
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = root.glob("fleet_health-*.whl")
    venv = root / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)])
    assert made.returncode == 0, made.stderr
    installed = _run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(wheel)],
        env=_base_env(),
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return venv


def test_the_base_install_has_neither_server_nor_dashboard(base_venv, tmp_path):
    probe = (
        "import importlib.util, agent, sys\n"
        "print(agent.__file__)\n"
        f"print(*[m for m in {NOT_FOR_AGENTS!r} if importlib.util.find_spec(m)])\n"
    )
    done = _run([str(base_venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=_base_env())
    assert done.returncode == 0, done.stderr
    where, present = done.stdout.splitlines()
    assert Path(where).is_relative_to(base_venv)  # the wheel's code, not the source tree
    assert present == ""
    fastapi = _run([str(base_venv / "bin" / "python"), "-c", "import fastapi"], env=_base_env())
    assert fastapi.returncode != 0 and "No module named 'fastapi'" in fastapi.stderr


@pytest.mark.parametrize(("command", "extra"), [("server", "server"), ("tui", "tui")])
def test_server_and_dashboard_say_what_to_install(base_venv, tmp_path, command, extra):
    done = _run(
        [str(base_venv / "bin" / "fleet"), command, "--data-dir", str(tmp_path)],
        cwd=tmp_path,
        env=_base_env(),
    )
    assert done.returncode == 2
    assert f"pip install 'fleet-health[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_wheel_ships_the_unit_and_install_service_points_at_this_install(base_venv, tmp_path):
    import pwd

    token = tmp_path / "token"
    token.write_text("flte_x\n")
    fleet = base_venv / "bin" / "fleet"
    done = _run(
        [
            *(str(fleet), "agent", "install-service", "--dry-run"),
            *("--user", pwd.getpwuid(os.getuid()).pw_name, "--config-dir", str(tmp_path / "etc")),
            *("--server", "https://127.0.0.1:1", "--ca-pin", "sha256:" + "0" * 64),
            *("--token-file", str(token)),
        ],
        cwd=tmp_path,
        env=_base_env(),
    )
    assert done.returncode == 0, done.stderr
    assert f"ExecStart={fleet} agent run --state-dir /var/lib/fleet-agent" in done.stdout


def test_an_agent_from_the_base_install_connects(base_venv, tmp_path):
    server = RunningServer(tmp_path / "cp").start()
    agent = None
    try:
        state = tmp_path / "agent"
        token_file = tmp_path / "enroll-token"
        token_file.write_text(server.enrollment_token() + "\n")
        fleet = str(base_venv / "bin" / "fleet")
        enrolled = _run(
            [
                *(fleet, "agent", "enroll", "--server", server.url, "--ca-pin", server.ca_pin),
                *("--token-file", str(token_file), "--state-dir", str(state), "--name", "base-1"),
            ],
            cwd=tmp_path,
            env=_base_env(),
        )
        assert enrolled.returncode == 0, enrolled.stderr
        log_path = tmp_path / "agent-run.log"
        with log_path.open("wb") as log:
            agent = subprocess.Popen(
                [fleet, "agent", "run", "--state-dir", str(state)],
                cwd=tmp_path,
                env=_base_env(),
                stdout=log,
                stderr=log,
            )

        def connected() -> dict[str, object] | None:
            assert agent.poll() is None, f"the agent exited: {log_path.read_text()}"
            with server.api() as api:
                agents = api.get("/v1/agents").json()
            return next(
                (a for a in agents if a["name"] == "base-1" and a["state"] == "connected"), None
            )

        seen = wait_for(connected, timeout=30, interval=0.2, what="the base-install agent")
        assert seen["version"] == __version__
    finally:
        if agent is not None and agent.poll() is None:
            agent.terminate()
            agent.wait(10)
        server.stop()
