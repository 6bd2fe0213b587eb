"""The rollouts, one entry each: state, pool, version, progress, when, and what it
waits for or why it halted."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from fleet.protocol import RolloutInfo

from ...rollouts import rollout_label, rollout_progress, rollout_tone, rollout_when
from ..keyed_list import Entry, KeyedList
from ..tones import TONE_CLASSES, tone_css, tone_style

__all__ = ["RolloutList", "rollout_entry"]

LABEL_WIDTH = 11
"""``▶ soaking``, ``✗ halted``, ``○ waiting``, ``▶ wave 12``."""


class RolloutList(KeyedList):
    """The rollouts in :func:`~fleet_tui.rollouts.rollout_order`."""

    COMPONENT_CLASSES = TONE_CLASSES
    DEFAULT_CSS = tone_css("RolloutList")


def rollout_entry(r: RolloutInfo, now: float, widget: RolloutList) -> Entry:
    """Two lines beside the state: ``etl → 1.5.0 · 1/10 upgraded · started 30m ago by
    alice`` and the rollout's own words (what it waits for, why it halted), each cut
    to the width: the selected rollout's words are whole below the list."""
    grid = Table.grid(expand=True)
    grid.add_column(width=LABEL_WIDTH, no_wrap=True)
    grid.add_column(ratio=1)
    head = f"{r.pool} → {r.version} · {rollout_progress(r)} · {rollout_when(r, now)}"
    # The head alone is bold: a Text's own style would embolden every line.
    body = Text(no_wrap=True, overflow="ellipsis")
    body.append(head, style="bold")
    body.append(f"\n{r.detail or '-'}")
    label = rollout_label(r)
    grid.add_row(Text(label, style=tone_style(widget, rollout_tone(r))), body)
    return Entry(r.id, f"{label} {head}\n{r.detail}", grid)
