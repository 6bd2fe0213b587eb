"""The selected rollout: how it was started, each wave's progress, every agent's step.

Waves and agents sit side by side when the widget is wide enough
(:data:`SIDE_BY_SIDE`), one under the other at 80 columns.
"""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.widget import Widget

from fleet.protocol import RolloutInfo, RolloutWave

from ... import format as fmt
from ...rollouts import (
    Tone,
    agents_in_order,
    rollout_phase,
    rollout_plan,
    rollout_tone,
    rollout_when,
    step_label,
    step_tone,
    wave_line,
)
from ..tones import TONE_CLASSES, tone_css, tone_style

__all__ = ["AGENTS_SHOWN", "SIDE_BY_SIDE", "RolloutDetail"]

SIDE_BY_SIDE = 110
"""From this width, the waves and the agents are drawn side by side."""

AGENTS_SHOWN = 200
"""Agents listed at most (those in trouble and upgrading come first); more are counted."""

_WAVE_TONE: dict[str, Tone] = {
    "pending": "muted",
    "upgrading": "busy",
    "soaking": "busy",
    "done": "ok",
    "failed": "bad",
}


class RolloutDetail(Widget):
    """One rollout in full, redrawn when it changed."""

    COMPONENT_CLASSES = TONE_CLASSES
    DEFAULT_CSS = "RolloutDetail { height: auto; padding: 0 1; }\n" + tone_css("RolloutDetail")

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rollout: RolloutInfo | None = None
        self.now = 0.0
        self._key: tuple[object, ...] = ()

    def show(self, rollout: RolloutInfo | None, now: float) -> None:
        """Show ``rollout`` (None: nothing selected); ages move on by the minute."""
        key = (rollout, int(now // 60))
        if key == self._key:
            return
        self._key = key
        self.rollout, self.now = rollout, now
        self.refresh(layout=True)

    def render(self) -> RenderableType:
        r = self.rollout
        if r is None:
            return Text("")
        head = Text()
        head.append(f"{r.pool} → {r.version}", style="bold")
        head.append(f"  {r.id}")
        phase = rollout_phase(r, self.now)
        head.append(f"\n{rollout_when(r, self.now)}{f' · {phase}' if phase else ''}")
        head.append(f" · {rollout_plan(r)}")
        if r.detail:
            head.append(f"\n{r.detail}", style=tone_style(self, rollout_tone(r)))
        waves = self._waves(r)
        agents = self._agents(r)
        if self.size.width >= SIDE_BY_SIDE:
            parts = Table.grid(padding=(0, 3))
            parts.add_column(no_wrap=True)
            parts.add_column(ratio=1)
            parts.add_row(waves, agents)
            return Group(head, Text(""), parts)
        return Group(head, Text(""), waves, Text(""), agents)

    def _waves(self, r: RolloutInfo) -> RenderableType:
        lines = [Text("Waves", style="bold underline")]
        bar = 20 if self.size.width >= SIDE_BY_SIDE else 10
        lines += [self._wave(w, bar) for w in r.waves]
        if not r.waves:
            lines.append(Text("(none yet)", style=tone_style(self, "muted")))
        return Group(*lines)

    def _wave(self, wave: RolloutWave, bar: int) -> Text:
        return Text(wave_line(wave, bar), style=tone_style(self, _WAVE_TONE.get(wave.state, "")))

    def _agents(self, r: RolloutInfo) -> RenderableType:
        ordered = agents_in_order(r)
        title = Text(f"Agents ({len(ordered)})", style="bold underline")
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)  # step
        grid.add_column(no_wrap=True)  # name
        grid.add_column(no_wrap=True)  # wave
        grid.add_column(ratio=1, overflow="fold")  # detail
        for agent in ordered[:AGENTS_SHOWN]:
            detail = agent.detail
            was = agent.from_version
            if was and agent.step != "pending" and was not in detail:
                detail = f"{detail} (from {was})" if detail else f"from {was}"
            grid.add_row(
                Text(step_label(agent), style=tone_style(self, step_tone(agent))),
                agent.name,
                "canary" if agent.wave == 0 else f"wave {agent.wave}",
                detail,
            )
        more: list[RenderableType] = []
        if len(ordered) > AGENTS_SHOWN:
            left = len(ordered) - AGENTS_SHOWN
            more.append(
                Text(
                    f"… and {fmt.count(left, 'more agent')} (fleet rollouts status {r.id})",
                    style=tone_style(self, "muted"),
                )
            )
        return Group(title, grid, *more)
