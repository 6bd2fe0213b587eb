"""Writing secret files: one rule, 0600 and atomic (a temporary file, then rename).

Standard library only.  ``agent/state.py`` and ``controlplane/pki.py`` hold older
copies of the same rule; new code uses this one.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_private"]


def write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` readable by its owner only, atomically.

    A reader sees the old content or the new one, never a part, and never a moment
    where the file is readable by others (the mode is set before the first byte).
    """
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.fchmod(fd, mode)  # O_CREAT's mode is masked by the umask; an old tmp kept its own
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
