"""The supervisor: ``fleet agent run`` keeps the agent running, in the version it should.

``fleet agent run ARGS`` (and ``python -m agent run``) replaces itself (``exec``,
same pid, so systemd's main process stays the same) with ``python -P -m
agent.supervisor ARGS``: this module, standard library only, about 12 MiB of
resident memory where the ``fleet`` command line's imports hold 23.  It runs the
agent as its child, ``python -P -m agent run ARGS`` with ``FLEET_AGENT_SUPERVISED=1``
and, when ``STATE/versions/state.json`` names an active version, that version's
directory first on ``PYTHONPATH`` (``-P``: not the working directory before it).

The child's exit code decides what follows:

* 75 (:data:`~agent.versions.EXIT_RESTART`): start the child again at once, in the
  version ``state.json`` names now (an upgrade, a rollback, a restart command);
* 0 (stopped), 2 (usage), 3 (revoked), 4 (certificate expired): end with that code;
* anything else (a crash): start it again after 1 s, doubling to 60 s, back to 1 s
  once a child ran for 60 s.

A version on trial (:func:`~agent.versions.begin_trial`) must confirm itself (it
connected and sent 3 heartbeats) before its deadline; if it exits before that
(any code but a stop asked for) twice, or the deadline passes, the supervisor
stops it, switches back to the previous version (``last``: rolled_back, with why)
and starts that.  SIGTERM, SIGINT and SIGHUP are passed on to the child; the
supervisor then ends with the child's code.  The child watches its parent and
stops when the supervisor is gone, so a SIGKILL of the supervisor leaves no
orphan.
"""

from __future__ import annotations

import contextlib
import functools
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, NamedTuple

from agent.versions import (
    EXIT_RESTART,
    HEALTHY_HEARTBEATS,
    SUPERVISED_ENV,
    Versions,
    VersionState,
    roll_back,
    trial_of,
)

__all__ = [
    "BACKOFF_CAP_S",
    "Decision",
    "after_exit",
    "before_start",
    "child_command",
    "exec_supervisor",
    "main",
    "past_deadline",
]

BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 60.0
STABLE_AFTER_S = 60.0
"""A child that ran this long resets the crash backoff."""
STOP_GRACE_S = 10.0
"""How long a child stopped by the supervisor (a rollback) gets before SIGKILL."""
FINAL_CODES = frozenset({0, 2, 3, 4})
"""Child exit codes that end the supervisor (stopped, usage, revoked, expired)."""
TRIAL_STARTS = 2
"""A version on trial that exits this many times before it confirms is rolled back."""
_FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _say(message: str) -> None:
    print(f"fleet agent supervisor[{os.getpid()}]: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Decisions: pure functions of state.json, the exit code and the time


class Decision(NamedTuple):
    """What the supervisor does after its child exited.

    Attributes:
        state: ``state.json`` as it must be now (written when changed).
        exit_code: end the supervisor with this code; None to start a child again.
        delay_s: wait this long before the next start.
        note: what to log.
    """

    state: VersionState
    exit_code: int | None = None
    delay_s: float = 0.0
    note: str = ""


def describe_exit(code: int) -> str:
    """``exit code 1`` or ``signal SIGKILL``."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"signal {signal.Signals(-code).name}"
        return f"signal {-code}"
    return f"exit code {code}"


def before_start(state: VersionState, versions: Versions, now: float) -> Decision:
    """Count a start of a version on trial; fall back if the active version is gone."""
    if state.active is not None and not versions.installed(state.active):
        why = f"{versions.path(state.active)} is missing or incomplete"
        back = roll_back(state, why, now)
        if back.active is not None and not versions.installed(back.active):
            back = back._replace(active=None)
        where = back.active or "the base install"
        return Decision(back, note=f"{why}: back to {where}")
    trial = trial_of(state)
    if trial is not None:
        return Decision(state._replace(trial=trial._replace(starts=trial.starts + 1)))
    return Decision(state)


def after_exit(
    state: VersionState, code: int, *, stopping: bool, ran_s: float, crashes: int, now: float
) -> Decision:
    """What to do once the child exited with ``code``.

    Args:
        state: ``state.json`` as read after the exit.
        code: the child's exit code (negative: the signal that killed it).
        stopping: the supervisor was asked to stop (a signal it passed on).
        ran_s: how long the child ran.
        crashes: crashes in a row before this one (for the backoff).
        now: the wall clock.
    """
    if stopping:
        final = 0 if code == EXIT_RESTART else code if code >= 0 else 128 - code
        return Decision(state, exit_code=final, note=f"the agent stopped ({describe_exit(code)})")
    trial = trial_of(state)
    if trial is not None and code != EXIT_RESTART:
        if trial.starts >= TRIAL_STARTS:
            why = (
                f"{trial.version} exited ({describe_exit(code)}) {trial.starts} times before "
                f"it connected and sent {HEALTHY_HEARTBEATS} heartbeats"
            )
            return Decision(roll_back(state, why, now), note=f"rolled back: {why}")
        return Decision(
            state,
            delay_s=BACKOFF_BASE_S,
            note=f"{trial.version} on trial exited ({describe_exit(code)}); starting it again",
        )
    if code == EXIT_RESTART:
        return Decision(state, note=f"restarting into {state.active or 'the base install'}")
    if code in FINAL_CODES:
        return Decision(state, exit_code=code, note=f"the agent ended ({describe_exit(code)})")
    delay = crash_delay(0 if ran_s >= STABLE_AFTER_S else crashes)
    return Decision(
        state,
        delay_s=delay,
        note=f"the agent crashed ({describe_exit(code)}); again in {delay:g} s",
    )


def _exited(state: VersionState, **facts: Any) -> Decision:
    return after_exit(state, now=time.time(), **facts)


def crash_delay(crashes: int) -> float:
    """1 s doubling to 60 s, after ``crashes`` crashes in a row before this one."""
    return min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2.0 ** min(crashes, 16))


def past_deadline(state: VersionState, now: float) -> Decision | None:
    """The rollback when a version on trial missed its deadline, else None."""
    trial = trial_of(state)
    if trial is None or now < trial.deadline:
        return None
    why = (
        f"{trial.version} did not connect and send {HEALTHY_HEARTBEATS} heartbeats "
        f"within {trial.deadline_s:g} s"
    )
    return Decision(roll_back(state, why, now), note=f"rolled back: {why}")


# --------------------------------------------------------------------------
# The process


def child_command(args: list[str]) -> list[str]:
    """The child's command line: this interpreter, ``-P``, the agent, ``args``."""
    return [sys.executable, "-P", "-m", "agent", "run", *args]


def child_env(versions: Versions, active: str | None) -> dict[str, str]:
    env = dict(os.environ)
    env[SUPERVISED_ENV] = "1"
    path = versions.python_path(active)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH")) if p)
    return env


class _Supervisor:
    def __init__(self, state_dir: Path, args: list[str]) -> None:
        self.versions = Versions(state_dir)
        self.args = args
        self.child: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True
        child = self.child
        if child is not None and child.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signum)

    def install_handlers(self) -> None:
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        for sig in _FORWARDED:
            signal.signal(sig, self._on_signal)
        # A handler (not SIG_DFL) so that a child's exit writes to the wakeup pipe.
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)

    def _sleep(self, timeout: float | None) -> None:
        """Until a signal (the child's exit among them) or ``timeout`` seconds."""
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 512):
                pass

    def _start(self, active: str | None) -> subprocess.Popen[bytes]:
        _say(f"starting the agent ({active or 'the base install'})")
        return subprocess.Popen(  # noqa: S603 (our interpreter, our arguments, no shell)
            child_command(self.args),
            env=child_env(self.versions, active),
            stdin=subprocess.DEVNULL,
        )

    def _stop_child(self, child: subprocess.Popen[bytes]) -> int:
        with contextlib.suppress(ProcessLookupError):
            child.terminate()
        deadline = time.monotonic() + STOP_GRACE_S
        while child.poll() is None and time.monotonic() < deadline:
            self._sleep(max(0.0, deadline - time.monotonic()))
        if child.poll() is None:
            child.kill()
        return child.wait()

    def _wait(self, child: subprocess.Popen[bytes]) -> int | None:
        """The child's exit code; None if its trial's deadline passed first (the child
        has been stopped then)."""
        while True:
            code = child.poll()
            if code is not None:
                return code
            timeout: float | None = None
            trial = trial_of(self.versions.read())
            if trial is not None and not self.stopping:
                timeout = trial.deadline - time.time()
                if timeout <= 0:
                    self._stop_child(child)
                    return None
            self._sleep(timeout)

    def _apply(self, decide: Callable[[VersionState], Decision]) -> Decision:
        """Decide under the lock of ``state.json``, write the state it says, log the note."""
        made: list[Decision] = []

        def change(state: VersionState) -> VersionState:
            made[:] = [decide(state)]
            return made[0].state

        self.versions.update(change)
        if made[0].note:
            _say(made[0].note)
        return made[0]

    def run(self) -> int:
        crashes = 0
        while not self.stopping:
            start = self._apply(lambda s: before_start(s, self.versions, time.time()))
            began = time.monotonic()
            self.child = child = self._start(start.state.active)
            if self.stopping:  # a signal that came while there was no child to pass it to
                child.terminate()
            code = self._wait(child)
            ran_s = time.monotonic() - began
            if code is None:
                self._apply(lambda s: past_deadline(s, time.time()) or Decision(s))
                crashes = 0
                continue
            done = self._apply(
                functools.partial(
                    _exited, code=code, stopping=self.stopping, ran_s=ran_s, crashes=crashes
                )
            )
            if done.exit_code is not None:
                return done.exit_code
            if done.delay_s:
                crashes = (0 if ran_s >= STABLE_AFTER_S else crashes) + 1
                self._sleep(done.delay_s)
            else:
                crashes = 0
        return 0


def exec_supervisor(args: list[str]) -> None:
    """Replace this process with the supervisor of ``agent run args`` (never returns)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-P", "-m", "agent.supervisor", *args])  # noqa: S606


def _state_dir(args: list[str]) -> Path | None:
    for i, arg in enumerate(args):
        if arg == "--state-dir" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--state-dir="):
            return Path(arg.split("=", 1)[1])
    return None


def main(args: list[str]) -> int:
    """``python -m agent.supervisor ARGS``: supervise ``python -m agent run ARGS``."""
    state_dir = _state_dir(args)
    if state_dir is None:
        print(
            "usage: python -m agent.supervisor --state-dir DIR [agent run flags]", file=sys.stderr
        )
        return 2
    supervisor = _Supervisor(state_dir, args)
    supervisor.install_handlers()
    return supervisor.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
