"""A release for simulated agents: the smallest wheel the control plane accepts.

Simulated agents (:mod:`fleet.simagent`) never download a release; the control
plane still needs one stored to send an upgrade (its hash, size and signature go
in the command).  :func:`sim_wheel` writes the smallest wheel the control plane
accepts as an agent release (``fleet-health``, pure Python, with ``agent`` and
``fleet`` packages that hold nothing), for ``PUT /v1/releases/{version}``: the
demo uploads one.  A real agent given such a release fails its import check and
never runs it.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

__all__ = ["sim_wheel"]


def sim_wheel(directory: Path, version: str) -> Path:
    """Write ``fleet_health-VERSION-py3-none-any.whl`` in ``directory``; returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"fleet_health-{version}-py3-none-any.whl"
    info = f"fleet_health-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as wheel:
        wheel.writestr("agent/__init__.py", '"""A simulated release: nothing to run."""\n')
        wheel.writestr("fleet/__init__.py", f'__version__ = "{version}"\n')
        wheel.writestr(
            f"{info}/METADATA", f"Metadata-Version: 2.1\nName: fleet-health\nVersion: {version}\n"
        )
        wheel.writestr(
            f"{info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: fleet.simrelease\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n",
        )
        wheel.writestr(f"{info}/RECORD", "")
    return path
