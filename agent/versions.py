"""``STATE/versions``: which agent version runs, the trial of a new one, the last step.

Standard library only: the supervisor (:mod:`agent.supervisor`) reads and writes
it too, and stays small.  Layout::

    STATE_DIR/
      release.pub               the release key (ed25519:BASE64), from enrollment
      downloads/SHA256.part     a release being downloaded (resumed with Range)
      versions/
        state.json              {"active", "previous", "trial", "last"}, below
        .lock                   flock held for each read-modify-write of state.json
        0.2.0/                  an unpacked release wheel: agent/, fleet/, ...,
                                fleet_health-0.2.0.dist-info/

``state.json``::

    {"active": "0.2.0" | null,       null: the base install (what systemd starts)
     "previous": "0.1.5" | null,     where a rollback goes (null: the base install)
     "trial": {"version", "from", "started_at", "deadline_s", "starts",
               "confirmed"} | null,  a new version not yet confirmed healthy
     "last": {"version", "step", "detail", "from_version", "at",
              "reported"} | null}    the last upgrade step, until the control
                                     plane has been told

Every version of the agent keeps this contract with the supervisor, which never
changes with a release (it is the base install's): with ``FLEET_AGENT_SUPERVISED=1``
``agent run`` runs the agent itself; exit code 75 (:data:`EXIT_RESTART`) asks
for a restart into what ``state.json`` says; a new version confirms its trial
(:func:`confirm`) after it connected and sent :data:`HEALTHY_HEARTBEATS` heartbeats.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

from fleet.files import write_public

__all__ = [
    "EXIT_RESTART",
    "HEALTHY_HEARTBEATS",
    "SUPERVISED_ENV",
    "LastStep",
    "Trial",
    "VersionState",
    "Versions",
    "begin_trial",
    "confirm",
    "interrupted",
    "record_step",
    "roll_back",
    "trial_of",
]

EXIT_RESTART = 75
"""The agent's exit code for "restart me into what state.json says" (EX_TEMPFAIL)."""

SUPERVISED_ENV = "FLEET_AGENT_SUPERVISED"
"""Set to ``1`` by the supervisor in its child's environment: run the agent itself."""

HEALTHY_HEARTBEATS = 3
"""A new version is confirmed once it connected and sent this many heartbeats."""

_INTERRUPTED_STEPS = ("downloading", "verifying", "installing")


# NamedTuple, not dataclasses: the supervisor imports this module, and dataclasses
# brings inspect, ast and tokenize (1.5 MiB of its resident memory).


class Trial(NamedTuple):
    """A new version on trial: the supervisor rolls back unless it confirms in time."""

    version: str
    from_version: str
    """The version it was upgraded from (as that one reported itself)."""
    started_at: float
    deadline_s: float
    starts: int = 0
    """How many times the supervisor started it."""
    confirmed: bool = False

    @property
    def deadline(self) -> float:
        return self.started_at + self.deadline_s


class LastStep(NamedTuple):
    """The last upgrade step, kept until the control plane has been told."""

    version: str
    step: str
    at: float
    detail: str = ""
    from_version: str | None = None
    reported: bool = False


class VersionState(NamedTuple):
    """What ``state.json`` holds (see the module's docstring)."""

    active: str | None = None
    previous: str | None = None
    trial: Trial | None = None
    last: LastStep | None = None

    def to_json(self) -> dict[str, Any]:
        trial = None
        if self.trial is not None:
            t = self.trial
            trial = {
                "version": t.version,
                "from": t.from_version,
                "started_at": t.started_at,
                "deadline_s": t.deadline_s,
                "starts": t.starts,
                "confirmed": t.confirmed,
            }
        last = None
        if self.last is not None:
            s = self.last
            last = {
                "version": s.version,
                "step": s.step,
                "detail": s.detail,
                "from_version": s.from_version,
                "at": s.at,
                "reported": s.reported,
            }
        return {"active": self.active, "previous": self.previous, "trial": trial, "last": last}

    @classmethod
    def from_json(cls, doc: Any) -> VersionState:
        """Read a ``state.json`` document.

        Raises:
            ValueError: it is not one.
        """
        if not isinstance(doc, dict):
            raise ValueError("not an object")
        trial = last = None
        raw = doc.get("trial")
        if raw is not None:
            trial = Trial(
                version=_text(raw["version"]),
                from_version=_text(raw["from"]),
                started_at=float(raw["started_at"]),
                deadline_s=float(raw["deadline_s"]),
                starts=int(raw.get("starts", 0)),
                confirmed=bool(raw.get("confirmed", False)),
            )
        raw = doc.get("last")
        if raw is not None:
            last = LastStep(
                version=_text(raw["version"]),
                step=_text(raw["step"]),
                at=float(raw["at"]),
                detail=str(raw.get("detail") or ""),
                from_version=_optional(raw.get("from_version")),
                reported=bool(raw.get("reported", False)),
            )
        return cls(_optional(doc.get("active")), _optional(doc.get("previous")), trial, last)


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{value!r} is not a version or a step")
    return value


def _optional(value: Any) -> str | None:
    return None if value is None else _text(value)


# --------------------------------------------------------------------------
# Transitions: pure, so the supervisor's and the agent's decisions are tested alone


def trial_of(state: VersionState) -> Trial | None:
    """The trial of the active version, if it is on trial and not confirmed yet."""
    trial = state.trial
    if trial is not None and not trial.confirmed and trial.version == state.active:
        return trial
    return None


def begin_trial(
    state: VersionState, version: str, from_version: str, deadline_s: float, now: float
) -> VersionState:
    """Switch to the installed ``version`` on trial; the current one becomes ``previous``."""
    return VersionState(
        active=version,
        previous=state.active,
        trial=Trial(version, from_version, now, deadline_s),
        last=LastStep(version, "restarting", now, from_version=from_version),
    )


def confirm(state: VersionState, running: str, now: float) -> VersionState:
    """What ``state.json`` says once ``running`` (the version that answers) is healthy.

    A trial of ``running`` ends (``last``: running); a restart after the ``command``
    driver ran ends too: running if the version is the one asked for, else failed.
    Anything else is left as it is.
    """
    trial = state.trial
    if trial is not None and trial.version == running and not trial.confirmed:
        step = LastStep(running, "running", now, from_version=trial.from_version)
        return state._replace(trial=None, last=step)
    last = state.last
    if trial is None and last is not None and last.step == "restarting":
        if last.version == running:
            step = LastStep(running, "running", now, from_version=last.from_version)
        else:
            step = LastStep(
                last.version,
                "failed",
                now,
                detail=f"the upgrade command succeeded, but the agent still runs {running}",
                from_version=last.from_version,
            )
        return state._replace(last=step)
    return state


def roll_back(state: VersionState, why: str, now: float) -> VersionState:
    """Back to ``previous`` (the base install when null), ``last`` saying why.

    ``last.from_version`` is left for the version that reports it to fill in
    (the one running again).  ``previous`` becomes the base install.
    """
    left = state.active or (state.trial.version if state.trial else None)
    step = LastStep(left or "base", "rolled_back", now, detail=why[:300])
    return VersionState(active=state.previous, previous=None, trial=None, last=step)


def record_step(
    state: VersionState,
    version: str,
    step: str,
    now: float,
    detail: str = "",
    from_version: str | None = None,
) -> VersionState:
    """``last`` becomes this step, not reported yet."""
    return state._replace(last=LastStep(version, step, now, detail[:300], from_version))


def interrupted(state: VersionState, now: float) -> VersionState:
    """An upgrade step left half-way by a restart of the agent becomes ``failed``."""
    last = state.last
    if last is None or last.step not in _INTERRUPTED_STEPS:
        return state
    why = f"interrupted while {last.step}: the agent restarted"
    return record_step(state, last.version, "failed", now, why, last.from_version)


# --------------------------------------------------------------------------
# The directory


class Versions:
    """``STATE_DIR/versions``: the installed releases and ``state.json``.

    Args:
        state_dir: the agent's state directory.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "versions"
        self.state_file = self.root / "state.json"
        self.downloads = state_dir / "downloads"
        self.release_key_file = state_dir / "release.pub"

    def path(self, version: str) -> Path:
        """Where ``version`` is unpacked."""
        if "/" in version or version.startswith("."):
            raise ValueError(f"{version!r} is not a version")
        return self.root / version

    def installed(self, version: str) -> bool:
        """``version`` is unpacked and carries the agent."""
        return (self.path(version) / "agent" / "__init__.py").is_file()

    def python_path(self, version: str | None) -> str | None:
        """The ``PYTHONPATH`` that runs ``version`` (None: the base install)."""
        return None if version is None else str(self.path(version).absolute())

    def read(self) -> VersionState:
        """The current state; the base install when there is none or it is unreadable.

        An unreadable file is not fatal: running the base install is always safe.
        """
        try:
            return VersionState.from_json(json.loads(self.state_file.read_text("utf-8")))
        except FileNotFoundError:
            return VersionState()
        except (OSError, ValueError, KeyError, TypeError):
            return VersionState()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.root / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the lock

    def update(self, change: Callable[[VersionState], VersionState]) -> VersionState:
        """Read, change and write ``state.json`` under the lock; the new state."""
        with self._locked():
            before = self.read()
            after = change(before)
            if after != before:
                text = json.dumps(after.to_json(), indent=2) + "\n"
                write_public(self.state_file, text.encode("utf-8"))
            return after

    def prune(self, state: VersionState) -> list[str]:
        """Remove unpacked versions that are neither active, previous nor on trial."""
        import shutil  # here: the supervisor, which imports this module, never prunes

        keep = {state.active, state.previous, state.trial.version if state.trial else None}
        removed: list[str] = []
        if not self.root.is_dir():
            return removed
        for entry in self.root.iterdir():
            if entry.is_dir() and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        return sorted(removed)
