"""External binaries the tests start themselves (prometheus, promtool, …).

Missing, a test is skipped with the Debian package that brings the binary;
under CI (``CI=true``, where ``.ci/run`` installs the packages) it fails instead.
"""

from __future__ import annotations

import os
import shutil

import pytest


def require_binary(name: str, package: str) -> str:
    """The path of ``name`` on PATH (or in /usr/bin); skip, or fail under CI, without it."""
    found = shutil.which(name) or shutil.which(name, path="/usr/bin:/usr/sbin")
    if found is None:
        message = f"{name} is missing: install the Debian package '{package}'"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return found
