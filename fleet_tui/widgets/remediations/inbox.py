"""Remediations, one entry each: what it does to which agent, what held, why it waits
for a person or who decided it and how it went."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType

from fleet.protocol import RemediationInfo

from ... import format as fmt
from ...remediations import (
    action_words,
    decided_words,
    remediation_label,
    remediation_tone,
)
from ...rollouts import ago
from ..keyed_list import Entry, KeyedList
from ..tones import TONE_CLASSES, tone_css, tone_style

__all__ = ["RemediationList", "remediation_entry"]


class RemediationList(KeyedList):
    """The inbox: those waiting for approval, then the recent others."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "select", "Agent detail", id="inbox.agent"),
    ]
    """Enter opens the highlighted remediation's agent (OptionList's own select)."""

    COMPONENT_CLASSES = TONE_CLASSES
    DEFAULT_CSS = tone_css("RemediationList")


def remediation_entry(r: RemediationInfo, now: float, widget: RemediationList) -> Entry:
    """``⚑ restart build-us-0001 · pool build-us`` over ``stale or offline for 3
    checks · waits: budget spent: … · 4m ago``; a decided one says its state on the
    first line and who decided it, when, and how it went on the second."""
    label = remediation_label(r)
    mark, _, word = label.partition(" ")
    grid = Table.grid(expand=True)
    grid.add_column(width=2, no_wrap=True)
    grid.add_column(ratio=1)
    head = f"{action_words(r)} · pool {r.pool}"
    if r.state == "pending_approval":
        second = f"{r.condition} · waits: {r.why_approval or 'approval'} · "
        second += ago(r.created_at, now)
        if r.expires_at is not None:
            second += f", expires {fmt.cert_expiry(r.expires_at, now)}"
    else:
        head += f" · {word}"
        second = f"{r.condition} · {decided_words(r, now)}"
    body = Text()
    body.append(head, style="bold")
    body.append(f"\n{second}", style="" if r.state == "pending_approval" else "dim")
    grid.add_row(Text(mark, style=tone_style(widget, remediation_tone(r))), body)
    return Entry(r.id, f"{label} {head}\n{second}", grid)
