"""What a fresh interpreter has imported after running some code: import budgets."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.server import REPO


def modules_after(code: str) -> list[str]:
    """Every module in ``sys.modules`` after ``code`` ran in a new interpreter."""
    probe = f"{code}\nimport json as _j, sys as _s\nprint(_j.dumps(sorted(_s.modules)))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(out.stdout.splitlines()[-1]))


def packages_after(code: str) -> set[str]:
    """The top-level packages of :func:`modules_after`."""
    return {name.split(".")[0] for name in modules_after(code)}
