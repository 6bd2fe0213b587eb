"""A packed ring of recent samples, for sparklines.

Each connected agent keeps its last ``history_len`` CPU, memory and queue
samples. As deques of Python floats that is about 6 KiB per agent once full
(a deque and its block per series, 24 bytes per float object); packed into
``array`` buffers it is under 1 KiB. At 10,000 agents: 60 MB against 8 MB.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator

__all__ = ["Series"]


class Series:
    """The last ``maxlen`` samples, stored as integers in ``1/scale`` units.

    ``Series(60, scale=10)`` keeps percentages to a tenth (as heartbeats are
    rounded); ``Series(60)`` keeps whole counts such as queue depths.
    """

    __slots__ = ("_data", "_maxlen", "_scale")

    def __init__(self, maxlen: int, scale: int = 1) -> None:
        self._maxlen = maxlen
        self._scale = scale
        # int32 tenths reach 214 million per cent; int64 counts anything a queue holds.
        self._data = array("i" if scale != 1 else "q")

    def append(self, value: float) -> None:
        self._data.append(round(value * self._scale))
        if len(self._data) > self._maxlen:
            del self._data[0]

    def extend(self, values: Iterable[float]) -> None:
        for value in values:
            self.append(value)

    def units(self) -> list[int]:
        """The samples in ``1/scale`` units, as stored (C speed: what the write-behind
        flush keeps, for every agent, every flush)."""
        return self._data.tolist()

    def extend_units(self, values: Iterable[object]) -> None:
        """Append samples given in ``1/scale`` units (as :meth:`units` gave them);
        anything not a whole number is skipped (a store written by hand)."""
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool):
                self.append(value / self._scale)

    def __iter__(self) -> Iterator[float]:
        if self._scale == 1:
            return iter(self._data)
        return (v / self._scale for v in self._data)

    def counts(self) -> list[int]:
        """The samples as whole numbers (a series of counts, ``scale=1``)."""
        if self._scale != 1:
            raise ValueError("counts() is for a series of whole counts (scale=1)")
        return list(self._data)

    def __len__(self) -> int:
        return len(self._data)
