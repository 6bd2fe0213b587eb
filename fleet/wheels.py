"""Agent releases are wheels: read one, and unpack one safely.

Standard library only: the control plane checks a release with it when an admin
adds one, and the agent checks and unpacks it again before it runs it.  A release
is a pure-Python wheel of this distribution (``pip wheel --no-deps .``); its
dependencies come from the environment the agent was installed in, so unpacking
is all an install needs (docs/decisions.md, "Agent releases are unpacked wheels").
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import zipfile
from dataclasses import dataclass
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

__all__ = ["DISTRIBUTION", "WheelError", "WheelInfo", "inspect_wheel", "unpack_wheel"]

DISTRIBUTION = "fleet-health"
"""The distribution every release must be."""

REQUIRED_PACKAGES = ("agent", "fleet")
"""Top-level packages a release must carry for the agent to run from it."""

MAX_MEMBERS = 5_000
MAX_UNPACKED_BYTES = 256 << 20
"""Bounds on what unpacking may write: a zip bomb is refused, not unpacked."""

_MARKER = re.compile(r";\s*(.*)$")
_REQ_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


class WheelError(ValueError):
    """The file is not a usable release; ``str()`` says what is wrong and what to do."""


@dataclass(frozen=True)
class WheelInfo:
    """What a release wheel says about itself."""

    name: str
    version: str
    requires: tuple[str, ...]
    """Distributions it needs at run time (not those of extras)."""
    packages: tuple[str, ...]
    """Its top-level packages."""
    requirements: tuple[str, ...] = ()
    """Those requirements whole, as written (``msgspec>=0.18; python_version<'3.13'``):
    the agent checks the versions installed against them before it runs the release."""


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _safe_members(archive: zipfile.ZipFile) -> list[zipfile.ZipInfo]:
    members = archive.infolist()
    if len(members) > MAX_MEMBERS:
        raise WheelError(f"the wheel has {len(members)} files, over {MAX_MEMBERS}: not a release")
    total = 0
    for member in members:
        path = PurePosixPath(member.filename)
        if path.is_absolute() or ".." in path.parts or "\\" in member.filename:
            raise WheelError(f"the wheel holds an unsafe path {member.filename!r}: refused")
        kind = stat.S_IFMT(member.external_attr >> 16)
        if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise WheelError(f"the wheel holds a link or device {member.filename!r}: refused")
        total += member.file_size
    if total > MAX_UNPACKED_BYTES:
        raise WheelError(
            f"the wheel unpacks to {total} bytes, over {MAX_UNPACKED_BYTES}: not a release"
        )
    return members


def inspect_wheel(path: Path) -> WheelInfo:
    """Read a release wheel's metadata and check it is one.

    Raises:
        WheelError: not a zip, not a wheel of :data:`DISTRIBUTION`, not pure Python,
            or unsafe paths inside.
    """
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WheelError(f"{path.name} is not a wheel (not a zip file: {exc})") from None
    with archive:
        members = _safe_members(archive)
        names = [m.filename for m in members]
        dist_infos = {
            n.split("/", 1)[0] for n in names if n.split("/", 1)[0].endswith(".dist-info")
        }
        if len(dist_infos) != 1:
            raise WheelError(
                f"{path.name} is not a wheel: it has {len(dist_infos)} .dist-info folders; "
                "build one with `pip wheel --no-deps .`"
            )
        info = dist_infos.pop()
        try:
            metadata = HeaderParser().parsestr(archive.read(f"{info}/METADATA").decode())
            wheel = HeaderParser().parsestr(archive.read(f"{info}/WHEEL").decode())
        except KeyError as exc:
            raise WheelError(f"{path.name} is not a wheel: {exc.args[0]} is missing") from None
        except UnicodeDecodeError:
            raise WheelError(f"{path.name} is not a wheel: its metadata is not text") from None
    name, version = metadata.get("Name", ""), metadata.get("Version", "")
    if _normal(name) != DISTRIBUTION:
        raise WheelError(
            f"{path.name} is a wheel of {name or 'nothing'!r}, not of {DISTRIBUTION}: "
            "an agent release is this project's own wheel"
        )
    if (wheel.get("Root-Is-Purelib") or "").strip().lower() != "true":
        raise WheelError(f"{path.name} is not pure Python: an agent release must be")
    packages = tuple(sorted({n.split("/", 1)[0] for n in names if "/" in n} - {info}))
    missing = [p for p in REQUIRED_PACKAGES if p not in packages]
    if missing:
        raise WheelError(f"{path.name} carries no {', '.join(missing)} package: not an agent")
    requires = []
    requirements = []
    for line in metadata.get_all("Requires-Dist") or []:
        marker = _MARKER.search(line)
        if marker and "extra" in marker.group(1):
            continue
        match = _REQ_NAME.match(line)
        if match:
            requires.append(_normal(match.group(1)))
            requirements.append(line.strip())
    return WheelInfo(_normal(name), version.strip(), tuple(requires), packages, tuple(requirements))


def unpack_wheel(path: Path, target: Path) -> WheelInfo:
    """Unpack a release wheel into ``target`` (made here; must not exist), atomically:
    into a sibling first, renamed when complete.

    Raises:
        WheelError: as :func:`inspect_wheel`.
        FileExistsError: ``target`` exists.
    """
    info = inspect_wheel(path)
    if target.exists():
        raise FileExistsError(f"{target} exists")
    staging = target.with_name(f".{target.name}.unpacking")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True, mode=0o755)
    try:
        with zipfile.ZipFile(path) as archive:
            for member in _safe_members(archive):
                dest = staging.joinpath(*PurePosixPath(member.filename).parts)
                if member.is_dir():
                    dest.mkdir(parents=True, exist_ok=True)
                    continue
                dest.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as src, dest.open("wb") as out:
                    shutil.copyfileobj(src, out)
                os.chmod(dest, 0o644)
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return info
