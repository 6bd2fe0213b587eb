"""An option list of things with ids that keeps the cursor on its thing as the list
changes, and redraws only the prompts whose text changed."""

from __future__ import annotations

from dataclasses import dataclass

from textual.visual import VisualType
from textual.widgets import OptionList
from textual.widgets.option_list import Option

__all__ = ["Entry", "KeyedList"]


@dataclass(frozen=True)
class Entry:
    """One line of a :class:`KeyedList`."""

    id: str | None
    """The thing's id; None for a heading or a note, which cannot be highlighted."""
    plain: str
    """What the prompt says, as text: the prompt is redrawn only when this changed."""
    prompt: VisualType


class KeyedList(OptionList):
    """Entries with ids, and ``None`` for a line between sections."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._shown: list[tuple[str | None, str]] = []

    def show(self, entries: list[Entry | None]) -> None:
        """Show ``entries``; the cursor stays on its id, else goes to the first one."""
        real = [e for e in entries if e is not None]
        shown = [(e.id, e.plain) for e in real]
        if shown == self._shown:
            return
        if [i for i, _ in shown] == [i for i, _ in self._shown]:
            # The same things in the same order: only their words moved on.
            for index, (new, old) in enumerate(zip(shown, self._shown, strict=True)):
                if new != old:
                    self.replace_option_prompt_at_index(index, real[index].prompt)
            self._shown = shown
            return
        keep = self.selected_id
        self.clear_options()
        self.add_options(
            [
                None if e is None else Option(e.prompt, id=e.id, disabled=e.id is None)
                for e in entries
            ]
        )
        ids = [i for i, _ in shown if i is not None]
        if keep is not None and keep in ids:
            self.highlighted = self.get_option_index(keep)
        elif ids:
            self.highlighted = self.get_option_index(ids[0])
        self._shown = shown

    def notify_style_update(self) -> None:
        # The prompts carry the styles of the theme they were made with.
        super().notify_style_update()
        self._shown = [(i, "") for i, _ in self._shown]

    def select(self, item_id: str) -> None:
        """Put the cursor on ``item_id`` (shown already)."""
        self.highlighted = self.get_option_index(item_id)

    @property
    def selected_id(self) -> str | None:
        """The id under the cursor."""
        option = self.highlighted_option
        return None if option is None else option.id
