"""The link banner: shown only while the data is not live."""

from __future__ import annotations

from textual.widgets import Static

__all__ = ["LinkBanner"]


class LinkBanner(Static):
    """``reconnecting… data as of 12 s ago``; hidden while the stream is live."""

    DEFAULT_CSS = """
    LinkBanner { height: auto; width: 100%; padding: 0 1; display: none;
                 background: $warning; color: $text; text-style: bold; }
    LinkBanner.-refused { background: $error; }
    LinkBanner.-shown { display: block; }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.text = ""

    def show(self, text: str, refused: bool = False) -> None:
        """Show ``text`` (an empty text hides the banner)."""
        self.set_class(bool(text), "-shown")
        self.set_class(refused, "-refused")
        if text != self.text:
            self.text = text
            self.update(text)
