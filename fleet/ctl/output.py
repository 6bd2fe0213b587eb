"""How the admin CLI prints: aligned tables for people, the API's JSON for scripts."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TextIO

from ..units import format_ago, format_duration

__all__ = ["Column", "ago", "emit", "print_fields", "print_table", "seconds", "stamp", "when"]

Column = tuple[str, Callable[[dict[str, Any]], object]]
"""A heading and how to get the cell from one item of the API's answer."""


def emit(data: Any, output: str, human: Callable[[], None], out: TextIO | None = None) -> None:
    """Print ``data`` as JSON (exactly the API's answer) or call ``human`` to print it."""
    if output == "json":
        print(json.dumps(data, indent=2), file=out or sys.stdout)
    else:
        human()


def _cell(value: object) -> str:
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    return str(value).replace("\n", " ")


def print_table(
    items: Iterable[dict[str, Any]],
    columns: Sequence[Column],
    empty: str,
    out: TextIO | None = None,
) -> None:
    """Items as rows under headings, columns aligned; ``empty`` when there are none."""
    stream = out or sys.stdout
    rows = [[_cell(get(item)) for _, get in columns] for item in items]
    if not rows:
        print(empty, file=stream)
        return
    heads = [head for head, _ in columns]
    widths = [max(len(r[i]) for r in [heads, *rows]) for i in range(len(heads))]
    for row in [heads, *rows]:
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(line.rstrip(), file=stream)


def print_fields(fields: Sequence[tuple[str, object]], out: TextIO | None = None) -> None:
    """``name: value`` lines, values aligned."""
    width = max((len(name) for name, _ in fields), default=0) + 1
    for name, value in fields:
        print(f"{name + ':':<{width}} {_cell(value)}", file=out or sys.stdout)


def ago(at: float | None) -> str:
    """``at`` (epoch seconds) relative to now: ``3m ago``, ``in 2h``, ``-``."""
    return format_ago(at, time.time())


def when(at: float | None) -> str:
    """``at`` as a UTC time and relative to now: ``2026-12-01 18:30:05Z (3m ago)``."""
    if at is None:
        return "-"
    return f"{stamp(at)} ({ago(at)})"


def stamp(at: float | None) -> str:
    """``at`` as a UTC time, ``2026-12-01 18:30:05Z``."""
    if at is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(at))


def seconds(value: float | None) -> str:
    """A duration in seconds as ``1h30m``; ``-`` when unknown."""
    return "-" if value is None else format_duration(value)
