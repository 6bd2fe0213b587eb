"""Agent release wheels for the tests: small stubs, and real ones built from this checkout.

:func:`release_wheel` writes a small wheel with no pip and no build: a zip with a
``.dist-info`` (METADATA, WHEEL) and stub ``agent`` and ``fleet`` packages, all
the control plane checks (:mod:`fleet.wheels`).

:func:`build_release` builds a real one, for the tests of real upgrades: it copies
the repository's files (``git ls-files``: tracked, and untracked ones not
ignored, as they are in the working tree) to a temporary directory, sets the
version in ``pyproject.toml`` and ``fleet/__init__.py``, optionally breaks it
(``broken="exit"``: ``agent run`` exits 1 at start, after its imports, so the
import check passes and only running it shows it; ``broken="hang"``: it never
connects), and runs ``pip wheel --no-deps`` with build isolation (the project
asks for a newer setuptools than the test environment has).  Built wheels are
cached under ``/tmp/fleet-release-wheels/KEY/``, KEY being the hash of the
sources, the version and the breakage: every test of a session (and of the
next, until the code changes) shares one build of each.  A lock file keeps two
sessions from building the same one at once.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet.protocol import RELEASE_KEY_PREFIX, release_message
from tests.helpers.server import REPO

__all__ = ["BROKEN_MARK", "Broken", "build_release", "release_wheel", "verify_release"]

CACHE = Path(tempfile.gettempdir()) / "fleet-release-wheels"

BROKEN_MARK = "this release is broken on purpose (tests/helpers/releases.py)"
"""What a broken release prints on stderr as it exits at start."""

_RUN = "def _run(args: argparse.Namespace) -> int:\n"
_BROKEN = {
    "exit": (
        f"    if os.environ.get('FLEET_AGENT_SUPERVISED') == '1':\n"
        f"        print({BROKEN_MARK!r}, file=sys.stderr)\n"
        f"        return 1\n"
    ),
    "hang": (
        f"    if os.environ.get('FLEET_AGENT_SUPERVISED') == '1':\n"
        f"        print({BROKEN_MARK!r}, file=sys.stderr, flush=True)\n"
        f"        import time\n"
        f"        time.sleep(3600)\n"
    ),
}
Broken = Literal["exit", "hang"] | None


def _sources() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    names = [name for name in out.decode().split("\0") if name]
    return sorted(n for n in names if (REPO / n).is_file())


def _key(files: list[str], version: str, broken: Broken) -> str:
    digest = hashlib.sha256(f"{version}\0{broken}\0".encode())
    for name in files:
        digest.update(name.encode() + b"\0" + (REPO / name).read_bytes() + b"\0")
    return digest.hexdigest()[:24]


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _set_version(src: Path, version: str, broken: Broken) -> None:
    pyproject = src / "pyproject.toml"
    text, count = re.subn(
        r'(?m)^version = "[^"]*"$', f'version = "{version}"', pyproject.read_text()
    )
    assert count == 1, "pyproject.toml has no version line"
    pyproject.write_text(text)
    init = src / "fleet" / "__init__.py"
    text, count = re.subn(
        r'(?m)^__version__ = "[^"]*"$', f'__version__ = "{version}"', init.read_text()
    )
    assert count == 1, "fleet/__init__.py has no __version__ line"
    init.write_text(text)
    if broken:
        cli = src / "agent" / "cli.py"
        text = cli.read_text()
        assert _RUN in text, "agent/cli.py has no _run to break"
        cli.write_text(text.replace(_RUN, _RUN + _BROKEN[broken], 1))


def build_release(version: str, *, broken: Broken = None) -> Path:
    """A wheel of this repository at ``version`` (built once, then cached); its path.

    Args:
        version: what ``pyproject.toml`` and ``fleet.__version__`` say.
        broken: ``agent run`` under the supervisor prints :data:`BROKEN_MARK` and
            exits 1 at start (``"exit"``), or never connects (``"hang"``).
    """
    files = _sources()
    key = _key(files, version, broken)
    done = CACHE / key
    with _lock(CACHE / f"{key}.lock"):
        wheels = sorted(done.glob("*.whl"))
        if wheels:
            return wheels[0]
        with tempfile.TemporaryDirectory(prefix="fleet-release-") as tmp:
            src = Path(tmp) / "src"
            for name in files:
                (src / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / name, src / name)
            _set_version(src, version, broken)
            out = Path(tmp) / "out"
            built = subprocess.run(
                [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(src)],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
            [wheel] = out.glob("*.whl")
            staging = CACHE / f".{key}.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            shutil.copy2(wheel, staging / wheel.name)
            staging.rename(done)
        return next(done.glob("*.whl"))


def release_wheel(
    directory: Path,
    version: str,
    *,
    name: str = "fleet-health",
    metadata_version: str | None = None,
    purelib: bool = True,
    extra: dict[str, bytes] | None = None,
    pad_bytes: int = 0,
) -> Path:
    """Write ``fleet_health-VERSION-py3-none-any.whl`` in ``directory``; its path.

    Args:
        name: the distribution the metadata names.
        metadata_version: the version the metadata says (default ``version``).
        purelib: ``Root-Is-Purelib``.
        extra: more members, by path inside the wheel (unsafe ones too).
        pad_bytes: random bytes stored uncompressed, to make the wheel this much larger
            (and every wheel made with them different).
    """
    said = metadata_version or version
    dist_info = f"fleet_health-{said}.dist-info"
    path = directory / f"fleet_health-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(
            f"{dist_info}/METADATA",
            f"Metadata-Version: 2.1\nName: {name}\nVersion: {said}\nRequires-Dist: msgspec\n",
        )
        archive.writestr(
            f"{dist_info}/WHEEL",
            "Wheel-Version: 1.0\nGenerator: tests\n"
            f"Root-Is-Purelib: {'true' if purelib else 'false'}\nTag: py3-none-any\n",
        )
        archive.writestr(f"{dist_info}/RECORD", "")
        archive.writestr("agent/__init__.py", "")
        archive.writestr("fleet/__init__.py", f'__version__ = "{said}"\n')
        if pad_bytes:
            archive.writestr(
                zipfile.ZipInfo("fleet/_pad.bin"), os.urandom(pad_bytes), zipfile.ZIP_STORED
            )
        for member, data in (extra or {}).items():
            archive.writestr(zipfile.ZipInfo(member), data)
    return path


def verify_release(public: str, version: str, sha256: str, size: int, signature: str) -> None:
    """Check a release's signature with the public key (``ed25519:BASE64``), as agents do.

    Raises:
        cryptography.exceptions.InvalidSignature: it does not verify.
    """
    assert public.startswith(RELEASE_KEY_PREFIX), public
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public[len(RELEASE_KEY_PREFIX) :]))
    key.verify(base64.b64decode(signature), release_message(version, sha256, size))
