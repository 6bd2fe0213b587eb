"""Tones (ok, warn, bad, muted, busy) as component classes, styled from the theme.

A widget that colours parts of what it draws by tone lists :data:`TONE_CLASSES` in
its ``COMPONENT_CLASSES``, puts :func:`tone_css` in its ``DEFAULT_CSS`` and asks
:func:`tone_style` for the Rich style of a tone; the words and symbols carry the
meaning without colour (``NO_COLOR``).
"""

from __future__ import annotations

from rich.style import Style
from textual.widget import Widget

from ..rollouts import Tone

__all__ = ["TONE_CLASSES", "tone_css", "tone_markup", "tone_style"]

_VARIABLES = {
    "ok": "$success",
    "warn": "$warning",
    "bad": "$error",
    "muted": "$text-muted",
    "busy": "$accent",
}

_RULES = {
    "ok": "color: $success;",
    "warn": "color: $warning; text-style: bold;",
    "bad": "color: $error; text-style: bold;",
    "muted": "color: $text-muted;",
    "busy": "color: $accent;",
}

TONE_CLASSES = {f"tone--{name}" for name in _RULES}
"""The component classes of the tones."""


def tone_css(widget: str) -> str:
    """The tones' rules for the widget type named ``widget``."""
    return "\n".join(f"{widget} > .tone--{name} {{ {rule} }}" for name, rule in _RULES.items())


def tone_style(widget: Widget, tone: Tone) -> Style:
    """The Rich style of ``tone`` in ``widget`` (no style for the plain tone)."""
    if not tone:
        return Style()
    return widget.get_component_rich_style(f"tone--{tone}", partial=True)


def tone_markup(tone: Tone, text: str) -> str:
    """``text`` (already escaped) in the tone's colour, as Textual markup."""
    if not tone:
        return text
    return f"[{_VARIABLES[tone]}]{text}[/]"
