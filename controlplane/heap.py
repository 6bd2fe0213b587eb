"""Give freed heap memory back to the system (glibc only).

Enrolling or reconnecting thousands of agents leaves the C heap with free chunks
between live ones; glibc keeps them, so RSS stays at the storm's peak. Its
``malloc_trim(0)`` returns whole free pages anywhere in the heap (with
``madvise``), at the cost of a walk over the heap: milliseconds, done every
``heap_trim_s`` (30 s). With 10,000 agents it took RSS from 790 MB at the peak of
a reconnect storm back to 614 MB. Elsewhere (musl, macOS) this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
from collections.abc import Callable

__all__ = ["malloc_trim", "trim_periodically"]


def _load() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


_TRIM = _load()


def malloc_trim() -> bool:
    """Return free heap pages to the system; False where glibc is not there."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


async def trim_periodically(interval_s: float) -> None:
    """Trim the heap every ``interval_s`` until cancelled."""
    if _TRIM is None:
        return
    while True:
        await asyncio.sleep(interval_s)
        malloc_trim()
