"""Every import is declared for the role that runs it, and every declaration is used.

Each source file belongs to roles: the agent's files to the base install, the control
plane's to ``server``, the dashboard's to ``tui``.  A file may import only the
distributions its roles bring (a file shared by two roles: only what both bring),
and only first-party modules whose roles it has.  This is what keeps ``pip install
fleet-health`` an agent host's install; ``tests/test_base_install.py`` runs it.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from functools import cache
from importlib.metadata import packages_distributions

import pytest

from tests.helpers.server import REPO

FIRST_PARTY = ("fleet", "controlplane", "agent", "fleet_tui")

ROLES: dict[str, tuple[str, ...]] = {
    "agent/": ("base",),
    "controlplane/": ("server",),
    "fleet_tui/": ("tui",),
    "fleet/ctl/": ("tui",),  # the admin CLI: httpx, which the server extra has too
    "fleet/demo.py": ("all",),
    "fleet/simagent.py": ("all",),
    "fleet/simfleet.py": ("all",),
    "fleet/": ("base",),
}
"""Longest prefix wins: a new module in fleet/ is the base install's unless listed."""

DISPATCHERS = {"fleet/cli.py"}
"""Import each role's package lazily, after fleet.extras.require_extra checked the extra."""

KNOWN_UNDECLARED: set[tuple[str, str]] = set()
"""(file, distribution) imports not yet declared for the file's roles."""

KNOWN_UNUSED = {
    "pydantic-settings",  # imported by the config-file branch (controlplane settings)
}
"""Declared distributions that no module imports yet."""


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@cache
def _declared() -> dict[str, frozenset[str]]:
    """Distribution names per role: base, each extra (self-references expanded)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    me = _norm(project["name"])

    def names(requirements: list[str]) -> set[str]:
        out: set[str] = set()
        for requirement in requirements:
            match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(\[([^\]]*)\])?", requirement)
            assert match, requirement
            name = _norm(match.group(1))
            if name == me:
                for extra in (match.group(3) or "").split(","):
                    out |= names(project["optional-dependencies"][extra.strip()])
            else:
                out.add(name)
        return out

    roles = {"base": frozenset(names(project["dependencies"]))}
    for extra, requirements in project["optional-dependencies"].items():
        if extra != "test":
            roles[extra] = frozenset(names(requirements))
    return roles


def _allowed(roles: tuple[str, ...]) -> frozenset[str]:
    declared = _declared()
    return frozenset.intersection(*(declared["base"] | declared[role] for role in roles))


def _roles_of(path: str) -> tuple[str, ...]:
    prefix = max((p for p in ROLES if path.startswith(p)), key=len)
    return ROLES[prefix]


def _sources() -> list[str]:
    return sorted(
        str(path.relative_to(REPO))
        for package in FIRST_PARTY
        for path in (REPO / package).rglob("*.py")
    )


def _imports(path: str) -> set[str]:
    """Absolute imports anywhere in the file, lazy ones included."""
    tree = ast.parse((REPO / path).read_text(), filename=path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
    return found


def _module_file(module: str) -> str | None:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        base = REPO.joinpath(*parts[:n])
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return str(candidate.relative_to(REPO))
    return None


@cache
def _installed() -> dict[str, frozenset[str]]:
    """Top-level module to the distributions that provide it (slow: computed once)."""
    return {
        top: frozenset(_norm(name) for name in names)
        for top, names in packages_distributions().items()
    }


def _distributions(top: str) -> frozenset[str]:
    return _installed().get(top, frozenset())


def test_every_third_party_import_is_declared_for_the_files_roles():
    problems = []
    for path in _sources():
        roles = _roles_of(path)
        allowed = _allowed(roles)
        for module in sorted(_imports(path)):
            top = module.split(".")[0]
            if top in sys.stdlib_module_names or top in FIRST_PARTY:
                continue
            dists = _distributions(top)
            if not dists:
                problems.append(f"{path} imports {top}, which no installed distribution provides")
            elif not dists & allowed and not {(path, d) for d in dists} & KNOWN_UNDECLARED:
                problems.append(
                    f"{path} imports {top} ({', '.join(sorted(dists))}), not declared for "
                    f"{' and '.join(roles)} in pyproject.toml"
                )
    assert problems == []


def test_first_party_imports_stay_within_the_files_roles():
    problems = []
    for path in _sources():
        if path in DISPATCHERS:
            continue
        allowed = _allowed(_roles_of(path))
        for module in sorted(_imports(path)):
            if module.split(".")[0] not in FIRST_PARTY:
                continue
            target = _module_file(module)
            assert target is not None, f"{path} imports {module}, which does not exist"
            if not _allowed(_roles_of(target)) <= allowed:
                problems.append(
                    f"{path} ({', '.join(_roles_of(path))}) imports {module} "
                    f"({', '.join(_roles_of(target))})"
                )
    assert problems == []


def test_every_declared_distribution_is_imported():
    imported = {
        dist
        for path in _sources()
        for module in _imports(path)
        for dist in _distributions(module.split(".")[0])
    }
    declared = set().union(*_declared().values())
    assert sorted(declared - imported - KNOWN_UNUSED) == []


def test_the_base_install_is_only_what_an_agent_needs():
    assert _declared()["base"] == {"websockets", "psutil", "cryptography", "msgspec"}
    assert _declared()["all"] == _declared()["server"] | _declared()["tui"]


@pytest.mark.parametrize("package", ["fastapi", "textual"])
def test_the_check_sees_a_forbidden_import(package):
    # What the first test would report if the agent imported the server or the dashboard.
    assert _distributions(package) and not _distributions(package) & _allowed(("base",))
