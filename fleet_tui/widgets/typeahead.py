"""Keys typed ahead of a focus change go where the user meant them.

Textual routes each key to the widget focused when the app reads it, and runs
bindings only once a key has bubbled back up to the app. A burst of keys (a
paste, fast typing, a slow SSH link delivering several at once) is routed before
the first of them has moved focus, so keys meant for the new widget reach the
old one. These helpers make focus moves that keys cause happen in the widget's
own queue, and pass on keys that arrive after focus has left.
"""

from __future__ import annotations

from collections.abc import Callable

from textual import events
from textual.widget import Widget
from textual.widgets import Input

__all__ = ["FilterInput", "pass_on_if_unfocused"]


def pass_on_if_unfocused(widget: Widget, event: events.Key) -> bool:
    """If focus has left ``widget`` since ``event`` was routed to it, hand the key
    to the widget focused now; True when it did (the caller should stop).

    Focus may have moved within the screen (to the filter) or to another screen
    (a modal pushed by an earlier key). A new screen focuses its first input when
    it resumes, so keys for it are delivered through its own queue, after that.
    """
    app = widget.app
    active = app.screen
    if widget.screen is active and active.focused is widget:
        return False
    event.stop()
    event.prevent_default()
    key = events.Key(event.key, event.character)

    def deliver() -> None:
        target = active.focused
        if target is not None:
            target.post_message(key)

    if widget.screen is active:
        deliver()
    else:
        active.call_later(deliver)
    return True


class FilterInput(Input):
    """An input whose Enter and Escape hand focus back at once.

    ``on_done(key)`` is called in this widget's queue order when Enter or Escape
    is pressed; it must move focus synchronously (``Screen.set_focus``), so the
    keys typed after it are passed on rather than typed into the filter.
    """

    def __init__(self, on_done: Callable[[str], None], *, placeholder: str, id: str) -> None:
        super().__init__(placeholder=placeholder, id=id)
        self._on_done = on_done

    async def _on_key(self, event: events.Key) -> None:
        if pass_on_if_unfocused(self, event):
            return
        if event.key in ("enter", "escape"):
            event.stop()
            event.prevent_default()
            self._on_done(event.key)
            return
        await super()._on_key(event)
