"""The fleet table's columns: what each shows and how the set shrinks to fit."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from fleet.protocol import AgentState, Presence

from ... import format as fmt
from ...model import History, SortKey
from ...rollouts import upgrade_mark

__all__ = ["Cell", "Column", "agent_cells", "layout_columns"]

Tone = Literal["", "ok", "warn", "bad", "muted"]
"""How a cell is coloured; the words carry the meaning without colour."""

Cell = tuple[str, Tone]


@dataclass(frozen=True)
class Column:
    """One column of the fleet table."""

    key: str
    title: str
    width: int
    sort: SortKey | None
    right: bool = False
    """Right-align numbers."""
    middle: bool = False
    """Cut a value too long in its middle, not at its end: names often differ at the
    end (``db-gateway-eu-1``, ``db-gateway-eu-2``), and a cut end hides it."""


_STATE_TONE: dict[Presence, Tone] = {
    Presence.CONNECTED: "ok",
    Presence.DEGRADED: "warn",
    Presence.STALE: "bad",
    Presence.OFFLINE: "bad",
    Presence.REVOKED: "muted",
    Presence.PENDING: "muted",
    Presence.STOPPED: "muted",
}

NAME_MIN = 12


def _full(spark: int) -> list[Column]:
    cols = [
        Column("state", "state", 11, SortKey.HEALTH),
        Column("name", "name", NAME_MIN, SortKey.NAME, middle=True),
        Column("pool", "pool", 10, SortKey.POOL, middle=True),
        Column("beat", "heartbeat", 9, SortKey.HEARTBEAT, right=True),
        Column("skew", "skew", 7, SortKey.SKEW, right=True),
        Column("cpu", "cpu", 4, SortKey.CPU, right=True),
    ]
    if spark:
        cols.append(Column("cpu_spark", "", spark, None))
    cols.append(Column("mem", "mem", 4, SortKey.MEM, right=True))
    if spark:
        cols.append(Column("mem_spark", "", spark, None))
    cols += [
        Column("queue", "queue", 6, SortKey.QUEUE, right=True),
        Column("cert", "cert", 10, SortKey.CERT),
        Column("version", "version", 10, SortKey.VERSION),
    ]
    return cols


def _without(cols: list[Column], *keys: str) -> list[Column]:
    return [c for c in cols if c.key not in keys]


def _narrow(cols: list[Column]) -> list[Column]:
    widths = {"pool": 8, "version": 8, "beat": 7}
    titles = {"beat": "beat"}
    return [
        replace(c, width=widths.get(c.key, c.width), title=titles.get(c.key, c.title)) for c in cols
    ]


def _total(cols: list[Column]) -> int:
    return sum(c.width for c in cols) + len(cols)


def layout_columns(width: int) -> list[Column]:
    """The richest set of columns that fits ``width``; the name column takes the rest."""
    candidates = [
        # Sparklines of 10 samples: wider ones cost more bytes on every tick
        # (each block character is 3 bytes and all of them shift per sample).
        _full(10),
        _full(6),
        _full(0),
        _without(_full(0), "skew"),
        _narrow(_without(_full(0), "skew")),
        _narrow(_without(_full(0), "skew", "cert")),
        _narrow(_without(_full(0), "skew", "cert", "queue", "version")),
    ]
    for cols in candidates:
        spare = width - _total(cols)
        if spare >= 0:
            name_width = NAME_MIN + min(spare, 28)
            return [replace(c, width=name_width) if c.key == "name" else c for c in cols]
    return candidates[-1]


def agent_cells(
    agent: AgentState, hist: History | None, cols: list[Column], now: float
) -> list[Cell]:
    """The text and tone of every cell of one agent's row."""
    cells: list[Cell] = []
    for col in cols:
        cells.append(_cell(col, agent, hist, now))
    return cells


def _cell(col: Column, a: AgentState, hist: History | None, now: float) -> Cell:
    key = col.key
    if key == "state":
        state = fmt.shown_state(a, now)
        return fmt.state_label(state), _STATE_TONE[state]
    if key == "name":
        return a.name, ""
    if key == "pool":
        return a.pool, ""
    if key == "beat":
        return fmt.heartbeat_age(a, now), "bad" if fmt.heartbeat_late(a, now) else ""
    if key == "skew":
        bad = a.skew_ms is not None and abs(a.skew_ms) >= 500
        return fmt.skew(a.skew_ms), "warn" if bad else ""
    if key == "cpu":
        return fmt.percent(a.cpu_percent), ""
    if key == "mem":
        return fmt.percent(a.mem_host_percent), ""
    if key == "cpu_spark":
        # In the text's own style: the numbers and their sparklines then go
        # out as one run of characters, with one escape sequence.
        return fmt.sparkline(hist.cpu if hist else (), col.width, top=100.0), ""
    if key == "mem_spark":
        return fmt.sparkline(hist.mem if hist else (), col.width, top=100.0), ""
    if key == "queue":
        return ("-" if a.queue_depth is None else str(a.queue_depth)), ""
    if key == "cert":
        warn = fmt.cert_warning(a.cert_not_after, now)
        return fmt.cert_expiry(a.cert_not_after, now), "warn" if warn else ""
    if key == "version":
        upgrade = upgrade_mark(a)
        if upgrade is not None:  # →1.5.0 while it upgrades, ↺1.4.2 once rolled back
            return upgrade
        version = a.version or "-"
        if a.pinned_version and a.version and a.version != a.pinned_version:
            return f"≠{version}", "warn"
        return version, ""
    return "", ""
