"""Returning freed heap memory: glibc's malloc_trim where it exists."""

from __future__ import annotations

import platform

from controlplane.heap import malloc_trim


def test_malloc_trim_runs_on_glibc_and_is_a_no_op_elsewhere():
    freed = [bytearray(300_000) for _ in range(50)]  # mmap-sized and heap chunks
    freed += [bytearray(1000) for _ in range(5000)]
    del freed
    assert malloc_trim() is (platform.libc_ver()[0] == "glibc")
