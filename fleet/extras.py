"""Which optional parts of the distribution a command needs, and a clear stop without them.

The base install (``pip install fleet-health``) is an agent host's: websockets,
psutil and cryptography.  The control plane and the dashboard come with the
extras ``server`` and ``tui`` (``all`` is both).  A command run without its
extra stops here with the ``pip install`` line to type, never a traceback.
"""

from __future__ import annotations

import importlib.util
import sys

__all__ = [
    "ADMIN_MODULES",
    "ALL_MODULES",
    "DISTRIBUTION",
    "EXIT_MISSING_EXTRA",
    "SERVER_MODULES",
    "TUI_MODULES",
    "missing_modules",
    "require_extra",
]

DISTRIBUTION = "fleet-health"
"""The name to ``pip install``."""

EXIT_MISSING_EXTRA = 2
"""A usage error: the command cannot run on this install as it is."""

SERVER_MODULES = (
    "fastapi",
    "starlette",
    "uvicorn",
    "aiosqlite",
    "pydantic",
    "pydantic_settings",
    "httpx",
)
"""What ``fleet server`` imports beyond the base install (the ``server`` extra)."""

TUI_MODULES = ("textual", "rich", "httpx")
"""What ``fleet tui`` imports beyond the base install (the ``tui`` extra)."""

ALL_MODULES = tuple(dict.fromkeys(SERVER_MODULES + TUI_MODULES))
"""What ``fleet demo`` imports: the control plane and the dashboard (the ``all`` extra)."""

ADMIN_MODULES = ("httpx",)
"""What the admin commands over the REST API import.

Both extras carry it; the hint names ``tui`` because a host with neither is an
agent host, where an operator wanting the admin CLI wants the client tools.
"""


def missing_modules(modules: tuple[str, ...]) -> list[str]:
    """The top-level ``modules`` this interpreter cannot import (without importing any)."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require_extra(extra: str, modules: tuple[str, ...], *, command: str) -> None:
    """Stop with exit code 2 and the install line when ``modules`` are not all installed.

    Args:
        extra: the extra that brings them, as in ``fleet-health[EXTRA]``.
        modules: top-level module names the command imports.
        command: the command as the user typed it, for the message (``fleet server``).

    Raises:
        SystemExit: with code 2, after printing what is missing and what to install.
    """
    missing = missing_modules(modules)
    if not missing:
        return
    print(
        f"{command}: needs {', '.join(missing)}, not in this install of {DISTRIBUTION} "
        "(the base install is an agent host's).\n"
        f"install the '{extra}' extra:  pip install '{DISTRIBUTION}[{extra}]'",
        file=sys.stderr,
    )
    raise SystemExit(EXIT_MISSING_EXTRA)
