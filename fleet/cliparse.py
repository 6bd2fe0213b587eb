"""What every ``fleet`` parser shares: one help style, duration and name types.

Standard library only (plus :mod:`fleet.units`), so that building the parser of
``fleet agent`` loads nothing of the server or the dashboard.
"""

from __future__ import annotations

import argparse
import difflib
import re
import textwrap
import time
from collections.abc import Callable
from typing import Any, NoReturn

from .units import check_name, parse_duration, parse_start

__all__ = ["FleetParser", "HelpFormatter", "duration", "name_of", "start_time"]


class HelpFormatter(argparse.HelpFormatter):
    """Wraps prose, keeps laid-out text, shows each option's default after its help.

    A paragraph of a description or epilog that spans several lines (a table of
    exit codes, an example) is printed as written; a one-line paragraph is wrapped.

    Flags (``store_true``) and options whose default is "not given" show nothing:
    their help says what happens without them.  Required options say so.
    """

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        paragraphs = text.split("\n\n")
        return "\n\n".join(
            p
            if "\n" in p.strip("\n")
            else textwrap.fill(
                " ".join(p.split()), width, initial_indent=indent, subsequent_indent=indent
            )
            for p in paragraphs
        )

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.help is argparse.SUPPRESS or "%(default)" in text:
            return action.help
        if action.required and action.option_strings:
            return f"{text} (required)"
        quiet = action.default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0
        if quiet or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


class FleetParser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` with :class:`HelpFormatter` by default.

    Subparsers are made of the same class, so the whole tree shares the style.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Exit 2 with ``message``; an unknown command or verb gets a suggestion."""
        match = _INVALID_CHOICE.fullmatch(message)
        if match:
            kind, given = match.group(1).lower(), match.group(2)
            choices = re.findall(r"'([^']*)'", match.group(3))
            close = difflib.get_close_matches(given, choices, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            message = f"unknown {kind} {given!r}: {hint}see '{self.prog} --help'"
        super().error(message)


_INVALID_CHOICE = re.compile(
    r"argument (COMMAND|VERB): invalid choice: '(.*)' \(choose from (.*)\)"
)


def duration(text: str) -> float:
    """An argparse ``type``: seconds from ``30m``, ``24h``, ``7d`` (a bare number is refused)."""
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def start_time(text: str) -> float:
    """An argparse ``type``: epoch seconds from ``+30m``, ``now`` or an ISO 8601 time
    (local without a zone); a time in the past is refused."""
    try:
        return parse_start(text, time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def name_of(kind: str) -> Callable[[str], str]:
    """An argparse ``type`` that checks a ``kind`` name (agent, pool, user, connection)."""

    def check(text: str) -> str:
        try:
            return check_name(kind, text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    check.__name__ = f"{kind} name"
    return check
