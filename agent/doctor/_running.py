"""Whether ``fleet agent run`` already holds this identity's channel, and how it fares.

The control plane keeps one channel per agent: a second authenticated
connection takes over (close 4007 for the first), and when doctor then hangs up
the agent shows offline, with an alert, until it reconnects.  So when an agent
of the same state directory runs on this host, doctor does not authenticate by
default; it reads the running agent's own log instead, whose last word about
the channel ("connected to ...", "channel failed: ...") says whether the
control plane accepts the identity.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from fleet.protocol import CloseCode

from ._channel import CLOSE_FIXES
from ._report import Report

__all__ = ["ChannelEvent", "last_channel_event", "report_running_agent", "running_agent"]

_TAIL_BYTES = 256 * 1024
_CODE = re.compile(r"\((40\d\d) ")
_EVENT = re.compile(
    r"^(?P<at>\S+) \w+ agent\.channel: (?P<what>connected to .*|channel failed: .*"
    r"|the control plane revoked this agent.*|the agent's certificate expired.*)$"
)


def _flag(cmdline: list[str], name: str) -> str | None:
    for i, arg in enumerate(cmdline):
        if arg == name and i + 1 < len(cmdline):
            return cmdline[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _is_agent_run(cmdline: list[str]) -> bool:
    """``fleet agent run ...`` or ``python -m agent run ...``."""
    return "run" in cmdline and "agent" in cmdline[: cmdline.index("run")]


def running_agent(state_dir: Path) -> int | None:
    """The pid of a ``fleet agent run`` of ``state_dir`` on this host, if any."""
    import psutil

    target = state_dir.resolve()
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmdline = list(proc.info["cmdline"] or [])
            if proc.pid == os.getpid() or not _is_agent_run(cmdline):
                continue
            value = _flag(cmdline, "--state-dir")
            if value is None:
                continue
            path = Path(value)
            if not path.is_absolute():
                path = Path(proc.cwd()) / path
        except (psutil.Error, OSError):
            continue
        if path.resolve() == target:
            return int(proc.pid)
    return None


@dataclass(frozen=True)
class ChannelEvent:
    """The running agent's last log line about its channel.

    Attributes:
        at: the line's timestamp (UTC, as logged).
        connected: the line says it connected.
        message: the logged message.
    """

    at: str
    connected: bool
    message: str


def last_channel_event(log_file: Path) -> ChannelEvent | None:
    """The last line of ``log_file`` saying the channel connected or failed."""
    try:
        with log_file.open("rb") as f:
            f.seek(max(0, log_file.stat().st_size - _TAIL_BYTES))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return None
    for line in reversed(text.splitlines()):
        match = _EVENT.match(line)
        if match:
            what = match["what"]
            return ChannelEvent(match["at"], what.startswith("connected to "), what)
    return None


def report_running_agent(report: Report, pid: int, log_file: Path) -> None:
    """Report on authentication from the running agent's log, not by taking over."""
    who = f"`fleet agent run` (pid {pid}) holds this identity's channel"
    event = last_channel_event(log_file)
    if event is None:
        report.skip("auth", f"{who}; its log {log_file} says nothing about the channel yet")
        return
    if event.connected:
        report.ok(
            "auth",
            f"{who}: its log says it connected at {event.at} (doctor did not take the "
            "channel over; --auth does, for a moment)",
        )
        return
    code = _CODE.search(event.message)
    meaning, fix = CLOSE_FIXES.get(
        int(code.group(1)) if code else 0,
        ("its channel keeps failing", "follow the failed checks above, if any, and its log"),
    )
    if "revoked this agent" in event.message:
        meaning, fix = CLOSE_FIXES[CloseCode.REVOKED]
    elif "certificate expired" in event.message:
        meaning, fix = CLOSE_FIXES[CloseCode.CERT_EXPIRED]
    report.fail("auth", f"{who}, but {meaning}: its log at {event.at}: {event.message}", fix)
