"""schemathesis hooks for tests/controlplane/test_openapi_fuzz.py (``hooks =`` in its config).

The fuzz runs as admin too, and the stateful phase feeds names from ``GET
/v1/users`` into ``DELETE /v1/users/{name}`` and ``.../rotate``: left alone it
would revoke or rotate the very tokens the run (and the test's checks after it)
authenticate with, and the rest of the run would be 401s that prove nothing. So a
call aimed at one of those principals is sent to a user that does not exist.
"""

from __future__ import annotations

from typing import Any

import schemathesis

PROTECTED_PREFIXES = ("admin", "fuzz-")
"""The bootstrap admin and the test's own users (``fuzz-<role>``, ``fuzz-other-<role>``)."""


@schemathesis.hook
def before_call(context: schemathesis.HookContext, case: schemathesis.Case, kwargs: Any) -> None:
    """Steer a revoke or rotation away from the principals the test relies on."""
    if not case.path.startswith("/v1/users/{name}") or case.method.upper() == "GET":
        return
    name = str((case.path_parameters or {}).get("name", ""))
    if name.startswith(PROTECTED_PREFIXES):
        case.path_parameters = {**(case.path_parameters or {}), "name": "absent-user"}
