"""What ``fleet agent doctor`` found, and how it is printed.

Each check is one line: its status (``ok``, ``FAIL`` or ``skip``), the step it
belongs to and what was seen; a failed check adds a ``fix:`` line saying what to
do.  The text fits 80 columns; colour only on a terminal and never with
``NO_COLOR`` set.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Check", "Report", "Status", "render_json", "render_text"]

_WIDTH = 80
_STATUS_W = 5
_STEP_W = 8
_INDENT = " " * (_STATUS_W + 1 + _STEP_W + 1)
_COLOURS = {"ok": "\033[32m", "FAIL": "\033[31;1m", "skip": "\033[33m"}
_RESET = "\033[0m"


class Status(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    """One check of one step.

    Attributes:
        step: the step's short name (``files``, ``dns``, ``tcp``, ``tls``, ...).
        status: ok, FAIL or skip.
        detail: what was seen, in words.
        fix: what to do about a failure (``None`` when there is nothing to do).
    """

    step: str
    status: Status
    detail: str
    fix: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "step": self.step,
            "status": str(self.status),
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass
class Report:
    """Every check in order, and a header saying which agent was examined."""

    header: list[str] = field(default_factory=list)
    checks: list[Check] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    """Identity and target, for ``--output json``."""

    def add(self, step: str, status: Status, detail: str, fix: str | None = None) -> Check:
        """Record a check and return it."""
        check = Check(step, status, detail, fix)
        self.checks.append(check)
        return check

    def ok(self, step: str, detail: str) -> Check:
        """Record a passed check."""
        return self.add(step, Status.OK, detail)

    def fail(self, step: str, detail: str, fix: str) -> Check:
        """Record a failed check with what to do."""
        return self.add(step, Status.FAIL, detail, fix)

    def skip(self, step: str, detail: str) -> Check:
        """Record a check that does not apply."""
        return self.add(step, Status.SKIP, detail)

    @property
    def passed(self) -> bool:
        """True when no check failed."""
        return all(c.status is not Status.FAIL for c in self.checks)

    def failed(self, step: str) -> bool:
        """Whether a check of ``step`` failed."""
        return any(c.step == step and c.status is Status.FAIL for c in self.checks)


def _wrap(text: str, first: str) -> list[str]:
    return textwrap.wrap(
        text,
        width=_WIDTH,
        initial_indent=first,
        subsequent_indent=_INDENT,
        break_on_hyphens=False,
        break_long_words=False,
    ) or [first.rstrip()]


def _colour_wanted(env: Mapping[str, str], tty: bool) -> bool:
    return tty and "NO_COLOR" not in env and env.get("TERM") != "dumb"


def render_text(report: Report, *, env: Mapping[str, str], tty: bool) -> str:
    """The report as aligned lines of at most 80 columns (longer words excepted)."""
    colour = _colour_wanted(env, tty)
    lines = list(report.header)
    last_fix: str | None = None
    for check in report.checks:
        status = str(check.status)
        shown = f"{status:<{_STATUS_W}}"
        if colour:
            shown = f"{_COLOURS[status]}{shown}{_RESET}"
        prefix = f"{shown} {check.step:<{_STEP_W}} "
        wrapped = _wrap(check.detail, _INDENT)
        lines.append(prefix + wrapped[0][len(_INDENT) :])
        lines.extend(wrapped[1:])
        if check.fix:
            # The same fix twice in a row (both ports, say) is said once.
            shown_fix = "as above" if check.fix == last_fix else check.fix
            lines.extend(_wrap(f"fix: {shown_fix}", _INDENT))
        last_fix = check.fix
    failed = sum(c.status is Status.FAIL for c in report.checks)
    lines.append("")
    lines.append("all checks passed" if not failed else f"{failed} check(s) failed")
    return "\n".join(lines) + "\n"


def render_json(report: Report) -> str:
    """The report as one JSON document."""
    doc = {
        "ok": report.passed,
        **report.facts,
        "checks": [c.as_dict() for c in report.checks],
    }
    return json.dumps(doc, indent=2) + "\n"
