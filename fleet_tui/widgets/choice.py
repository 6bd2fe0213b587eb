"""A radio button that reads without colour."""

from __future__ import annotations

from textual.content import Content
from textual.widgets import RadioButton

__all__ = ["Choice"]


class Choice(RadioButton):
    """A radio button marked ``●`` when chosen and ``○`` when not.

    Textual draws ``●`` for both and tells them apart by colour alone, so with
    ``NO_COLOR``, or at a glance, "this agent" and "its whole pool" looked both chosen.
    """

    @property
    def _button(self) -> Content:
        self.BUTTON_INNER = "●" if self.value else "○"
        return super()._button
