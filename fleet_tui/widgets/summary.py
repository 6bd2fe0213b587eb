"""The summary bar: counts by state and open alerts."""

from __future__ import annotations

from collections import Counter

from textual.widgets import Static

from fleet.protocol import Presence

from .. import format as fmt

__all__ = ["SummaryBar", "summary_markup"]

_TONE = {
    Presence.CONNECTED: "$success",
    Presence.DEGRADED: "$warning",
    Presence.STALE: "$error",
    Presence.OFFLINE: "$error",
    Presence.REVOKED: "$text-muted",
    Presence.PENDING: "$text-muted",
    Presence.STOPPED: "$secondary",
}

_ORDER = (
    Presence.CONNECTED,
    Presence.DEGRADED,
    Presence.STALE,
    Presence.OFFLINE,
    Presence.STOPPED,
    Presence.REVOKED,
    Presence.PENDING,
)


def summary_markup(counts: Counter[Presence], alerts: int, extra: str = "") -> str:
    """Counts by state, e.g. ``✓ 48 connected  ▲ 2 degraded  …  3 alerts``."""
    parts = []
    for state in _ORDER:
        n = counts.get(state, 0)
        if n or state in (Presence.CONNECTED, Presence.DEGRADED, Presence.OFFLINE):
            style = _TONE[state] if n and state is not Presence.CONNECTED else ""
            text = f"{fmt.STATE_SYMBOL[state]} {n:,} {state.value}"
            parts.append(f"[{style}]{text}[/]" if style else text)
    alert_text = f"{alerts} alert{'s' if alerts != 1 else ''} open"
    parts.append(f"[b $error]{alert_text}[/]" if alerts else alert_text)
    if extra:
        parts.append(extra)
    return "  ".join(parts)


class SummaryBar(Static):
    """One line of fleet counts; :meth:`show` redraws only on a change."""

    DEFAULT_CSS = """
    SummaryBar { height: 1; padding: 0 1; background: $boost; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id)
        self._text = ""

    def show(self, markup: str) -> None:
        """Show ``markup`` unless it is already shown."""
        if markup != self._text:
            self._text = markup
            self.update(markup)
