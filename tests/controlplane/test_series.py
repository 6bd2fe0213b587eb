"""The packed sample ring behind sparklines."""

from __future__ import annotations

from controlplane.series import Series


def test_keeps_the_last_samples_to_a_tenth():
    cpu = Series(3, scale=10)
    cpu.extend([1.04, 12.34, 99.9, 250.0])  # a process may use more than one core
    assert list(cpu) == [12.3, 99.9, 250.0] and len(cpu) == 3


def test_counts_stay_whole_and_large():
    queue = Series(2)
    for depth in (0, 7, 10**12):
        queue.append(depth)
    assert list(queue) == [7, 10**12]
    assert all(isinstance(v, int) for v in queue)
