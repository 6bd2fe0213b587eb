"""Writing files atomically, with their mode set before the first byte: the one rule.

Standard library only, so that the agent, the control plane and the admin CLI
all use it.  A reader sees the old content or the new one, never a part (a
temporary file in the same directory, fsync, then rename), and a secret is never
readable by others, not even for a moment.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = [
    "check_private",
    "replace_durably",
    "sync_dir",
    "write_atomic",
    "write_private",
    "write_public",
]


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` with ``mode``, atomically.

    Raises:
        OSError: the directory cannot be written; no temporary file is left behind.
    """
    # As tempfile.mkstemp does (O_EXCL, 0600, a random name), without importing
    # tempfile: the agent's supervisor writes with this and stays small.
    tmp = path.parent / f".{path.name}.{os.urandom(6).hex()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)  # made 0600; the umask plays no part
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_private(path: Path) -> None:
    """Refuse a secret (a private key) that its group or others may read.

    Raises:
        PermissionError: the mode lets others read or write it; the message gives
            the ``chmod`` to run.
        OSError: ``path`` cannot be examined.
    """
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(
            f"{path} may be read by other users (mode {mode:04o}); run `chmod 600 {path}`"
        )


def write_private(path: Path, data: bytes) -> None:
    """Write a file only its owner may read (0600): keys, tokens."""
    write_atomic(path, data, 0o600)


def write_public(path: Path, data: bytes) -> None:
    """Write a file anyone may read (0644): certificates, ``agent.json``, ``endpoint``."""
    write_atomic(path, data, 0o644)


def sync_dir(directory: Path) -> None:
    """Make the renames in ``directory`` so far durable (fsync the directory itself).

    A rename is atomic but, until its directory is synced, a power cut may undo
    it; where one rename must not outlive an earlier one (a key and its
    certificate), sync between them.
    """
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace_durably(src: Path, dst: Path) -> None:
    """Rename ``src`` over ``dst`` (same directory), then sync the directory."""
    os.replace(src, dst)
    sync_dir(dst.parent)
