"""Small agent release wheels for the control plane's tests (no pip, no build).

A wheel here is a zip with a ``.dist-info`` (METADATA, WHEEL) and stub ``agent``
and ``fleet`` packages: all the control plane checks (:mod:`fleet.wheels`). The
tests of real upgrades build real wheels from the repository instead.
"""

from __future__ import annotations

import base64
import os
import zipfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from fleet.protocol import RELEASE_KEY_PREFIX, release_message


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
