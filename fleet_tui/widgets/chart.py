"""A bar chart on a fixed scale, for the agent detail view.

Textual's ``Sparkline`` scales from the series' minimum to its maximum, so an
agent at 5 % memory drew full bars; a percentage needs 0 to 100.
"""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

from .. import format as fmt

__all__ = ["BarChart"]


class BarChart(Widget):
    """The latest samples as bars, newest on the right.

    Args:
        top: The value of a full bar (100 for percentages); None scales to the
            largest sample, for counts such as a queue's depth.
    """

    DEFAULT_CSS = """
    BarChart { height: 4; width: 1fr; color: $accent; }
    """

    data: reactive[tuple[float, ...]] = reactive((), layout=False)

    def __init__(self, top: float | None, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.top = top

    def render(self) -> Text:
        rows = fmt.bar_chart(self.data, self.size.width, self.size.height, self.top)
        return Text("\n".join(rows), no_wrap=True)
