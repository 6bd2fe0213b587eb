"""Before it runs a release the agent checks the base environment against the
release's requirements: each installed, in a version the release accepts (markers
honoured), then the release imports. A release needing a newer dependency than the
host has is refused with what is missing, not run to crash."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

from agent.upgrader import _CHECK
from fleet.wheels import inspect_wheel
from tests.helpers.releases import release_wheel

REPO = Path(__file__).resolve().parents[2]
MSGSPEC = importlib.metadata.version("msgspec")


def check(*requirements: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-P", "-c", _CHECK, *requirements],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=60,
    )


def test_requirements_met_in_name_and_version_pass_and_the_release_imports() -> None:
    done = check("msgspec>=0.1", "websockets")
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1]  # the version the release says


def test_a_version_the_host_does_not_have_is_refused_saying_which() -> None:
    done = check("msgspec>=999", "websockets")
    assert done.returncode == 3, done.stdout + done.stderr
    assert done.stdout.strip() == (
        f"the base environment does not fit the release: msgspec {MSGSPEC} is installed, "
        "it needs >=999"
    )


def test_a_missing_distribution_is_named_and_a_marker_that_does_not_apply_is_skipped() -> None:
    done = check("no-such-distribution-fleet", "other-missing; python_version < '3'")
    assert done.returncode == 3
    assert "no-such-distribution-fleet is missing" in done.stdout
    assert "other-missing" not in done.stdout


def test_the_wheel_gives_its_requirements_whole(tmp_path: Path) -> None:
    made = release_wheel(tmp_path, "0.9.0")
    wheel = tmp_path / "rewritten" / made.name
    wheel.parent.mkdir()
    metadata = "fleet_health-0.9.0.dist-info/METADATA"
    with zipfile.ZipFile(made) as source, zipfile.ZipFile(wheel, "w") as archive:
        for member in source.namelist():
            if member != metadata:
                archive.writestr(member, source.read(member))
        archive.writestr(
            metadata,
            "Metadata-Version: 2.1\nName: fleet-health\nVersion: 0.9.0\n"
            "Requires-Dist: msgspec>=0.18\nRequires-Dist: pytest; extra == 'test'\n"
            "Requires-Dist: tomli; python_version < '3.11'\n",
        )
    info = inspect_wheel(wheel)
    assert info.requirements == ("msgspec>=0.18", "tomli; python_version < '3.11'")
    assert info.requires == ("msgspec", "tomli")
