"""Fields of the action dialogs that keep keys typed in a burst in order.

Textual resolves a key's binding when the key has bubbled up to the app, against
the widget focused *then*; and it routes each key, on arrival, to the widget
focused *then*.  Typed faster than the dialog handles them (a slow SSH link
delivers them at once), ``Tab 14:00 Enter`` in the maintenance dialog lost the
start and planned the window from now; ``Down Enter Tab +1h`` submitted from the
start field with the first scope.  These fields do what their keys mean in their
own queue order: Tab moves focus at once (so the keys behind it are passed on to
the next field, :func:`~fleet_tui.widgets.typeahead.pass_on_if_unfocused`), and
Enter submits from the field it was typed in.
"""

from __future__ import annotations

from textual import events
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Input, RadioSet

from .typeahead import pass_on_if_unfocused

__all__ = ["FormInput", "FormRadioSet"]


def _moved_focus(widget: Widget, key: str) -> bool:
    """Tab or Shift+Tab: focus moves now; True when ``key`` was one of them."""
    if key == "tab":
        widget.screen.focus_next()
    elif key == "shift+tab":
        widget.screen.focus_previous()
    else:
        return False
    return True


class FormInput(Input):
    """An input of a dialog: Tab, Shift+Tab and Enter act in the order typed."""

    async def _on_key(self, event: events.Key) -> None:
        if pass_on_if_unfocused(self, event):
            return
        if event.key in ("tab", "shift+tab", "enter"):
            event.stop()
            event.prevent_default()
            if not _moved_focus(self, event.key):
                await self.action_submit()
            return
        await super()._on_key(event)


class FormRadioSet(RadioSet):
    """A choice of a dialog, as in a web form: the arrow keys choose, Space chooses
    the highlighted one, Enter submits the dialog, Tab moves on; in the order typed."""

    class Submitted(Message):
        """Enter was pressed on the choice: submit the dialog."""

        def __init__(self, radio_set: FormRadioSet) -> None:
            super().__init__()
            self.radio_set = radio_set

        @property
        def control(self) -> FormRadioSet:
            return self.radio_set

    async def _on_key(self, event: events.Key) -> None:
        if pass_on_if_unfocused(self, event):
            return
        step = {"down": 1, "right": 1, "up": -1, "left": -1}.get(event.key)
        if event.key not in ("tab", "shift+tab", "enter", "space") and step is None:
            await super()._on_key(event)
            return
        event.stop()
        event.prevent_default()
        if _moved_focus(self, event.key):
            return
        if event.key == "enter":
            self.post_message(self.Submitted(self))
            return
        if step is not None:
            self.action_next_button() if step > 0 else self.action_previous_button()
        self.action_toggle_button()
