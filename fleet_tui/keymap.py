"""Keymap ids: which exist, and a keymap that names one that does not.

Textual ignores a keymap entry whose id no binding has, so a typo
(``"fleet.revok"``) used to leave the key as it was without a word.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from pathlib import Path

from textual.binding import Binding
from textual.dom import DOMNode

from .errors import ConfigError

__all__ = ["binding_ids", "check_keymap"]


def _subclasses(cls: type[DOMNode]) -> Iterator[type[DOMNode]]:
    sub: type[DOMNode]
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def binding_ids() -> set[str]:
    """Every binding id the dashboard declares (on its app, screens and widgets).

    Found from the classes themselves, so a binding added anywhere in
    ``fleet_tui`` is known without a list to keep; call it once the app's
    modules are imported (``fleet_tui.app`` imports them all).
    """
    ids: set[str] = set()
    for cls in {DOMNode, *_subclasses(DOMNode)}:
        if not cls.__module__.startswith("fleet_tui"):
            continue
        for binding in cls.__dict__.get("BINDINGS", ()):
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return ids


def check_keymap(keymap: Mapping[str, str], path: Path | str) -> None:
    """Raise :class:`ConfigError` naming every id in ``keymap`` that no binding has."""
    known = binding_ids()
    unknown = sorted(set(keymap) - known)
    if not unknown:
        return
    said = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        said.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise ConfigError(
        f"keymap {path}: no binding has the id {', '.join(said)}; the ids are "
        f"{', '.join(sorted(known))} (see docs/dashboard.md, 'Remapping keys')"
    )
