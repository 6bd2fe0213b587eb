"""Releases for simulated agents: a minimal wheel, stored in a control plane's data dir.

Simulated agents (:mod:`fleet.simagent`) never download a release; the control
plane still needs one stored to send an upgrade (its hash, size and signature
go in the command).  :func:`sim_wheel` writes the smallest wheel the control
plane accepts as an agent release (``fleet-health``, pure Python, with
``agent`` and ``fleet`` packages that hold nothing), and :func:`store_release`
keeps one in a data directory whose control plane is not running, as
``PUT /v1/releases/{version}`` would: the demo and the tests use it.  A real
agent given such a release fails its import check and never runs it.
"""

from __future__ import annotations

import asyncio
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["sim_wheel", "store_release"]


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


def store_release(data_dir: Path, version: str, added_by: str = "simrelease") -> None:
    """Keep a simulated release of ``version`` in ``data_dir`` (its server stopped).

    Runs in a thread of its own, so that it may be called from a running event loop.
    """
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _store(data_dir, version, added_by)).result()


async def _store(data_dir: Path, version: str, added_by: str) -> None:
    from controlplane.release_key import ReleaseKey
    from controlplane.releases import ReleaseBook
    from controlplane.store.sqlite import SQLiteStore

    pki = data_dir / "pki"
    pki.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = SQLiteStore(data_dir / "fleet.db")
    await store.open()
    try:
        book = ReleaseBook(store, data_dir / "releases", ReleaseKey.load_or_create(pki))
        await book.load()
        upload = sim_wheel(book.directory / "upload", version)
        await book.add(version, upload, upload.name, added_by)
        upload.unlink(missing_ok=True)  # kept under its hash, unless stored already
        upload.parent.rmdir()
    finally:
        await store.close()
