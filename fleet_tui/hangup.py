"""Leave when the terminal goes away.

When an SSH session drops or a tmux server is killed, the process should get
SIGHUP; but one started under another process (``make demo``, ``sh -c``) may not,
and then Textual's input thread reads end-of-file from the dead terminal in a
loop: the dashboard spun 40 % of a core with nobody watching and kept the demo's
control plane and agents alive. So: SIGHUP exits cleanly, and each tick checks
that the terminal is still there (``tcgetattr`` fails with EIO once it is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import sys
import termios
from collections.abc import Callable

__all__ = ["terminal_fd", "terminal_gone", "watch_sighup"]


def terminal_fd() -> int | None:
    """The controlling terminal's descriptor (stdin), or None when not a terminal."""
    stream = sys.__stdin__
    if stream is None:
        return None
    try:
        fd = stream.fileno()
        termios.tcgetattr(fd)  # fails unless fd is a terminal
    except (OSError, ValueError, termios.error):
        return None
    return fd


def terminal_gone(fd: int) -> bool:
    """True once the terminal behind ``fd`` has hung up."""
    try:
        termios.tcgetattr(fd)
    except termios.error as exc:
        return bool(exc.args) and exc.args[0] in (errno.EIO, errno.EBADF)
    return False


def watch_sighup(on_hangup: Callable[[], None]) -> None:
    """Call ``on_hangup`` on SIGHUP (in the running loop's thread)."""
    with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, on_hangup)
