"""Installing a version: the ``release`` driver and the ``command`` driver.

``release``: download the release over HTTPS (:mod:`agent.download`, resumed,
capped at the signed size), check its size, sha256 and the release key's
signature in a short-lived child (:func:`agent.keys.verify_release_isolated`: the
agent's own process never loads ``cryptography``), unpack it into
``STATE/versions/V`` (:func:`fleet.wheels.unpack_wheel`), check in a child run
with that directory first on ``PYTHONPATH`` that the base environment holds the
release's requirements and that ``agent.cli`` imports and says it is V, then
switch to it on trial (:func:`agent.versions.begin_trial`).  A file that fails a
check is deleted, never unpacked; an unpacked version that fails the import
check is deleted, never run.

``command``: run the operator's argv with ``{version}`` replaced, no shell, under
a timeout; on exit 0 the base install (which the command upgraded) is active.

Both end with the caller restarting the agent (exit 75); each step is reported
through ``report(step, detail)`` as it begins, and a failure raises
:class:`UpgradeFailed` with the reason the control plane shows.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import ssl
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from agent._child import run_argv
from agent.download import DownloadRefused, Incomplete, Request, fetch_once
from agent.keys import verify_release_isolated
from agent.versions import SUPERVISED_ENV, Versions, VersionState, begin_trial
from fleet import __version__
from fleet.protocol import UpgradeCommand
from fleet.wheels import MAX_UNPACKED_BYTES, WheelError, unpack_wheel

__all__ = ["FETCH_ATTEMPTS", "Fetcher", "UpgradeFailed", "install_release", "run_command"]

log = logging.getLogger("agent.upgrader")

Report = Callable[[str, str], Awaitable[None]]
"""``report(step, detail)``: tell the control plane (and ``state.json``) a step began."""

FETCH_ATTEMPTS = 5
"""Attempts at a download within one upgrade command, each resuming the last."""
_RETRY_BASE_S = 1.0
_CHECK_TIMEOUT_S = 60.0

_CHECK = """\
import importlib.metadata as metadata, re, sys
try:
    from packaging.requirements import Requirement
except ImportError:
    try:
        from pip._vendor.packaging.requirements import Requirement
    except ImportError:
        Requirement = None
problems = []
for line in sys.argv[1:]:
    name = re.match(r"\\s*([A-Za-z0-9][A-Za-z0-9._-]*)", line).group(1)
    req = None
    if Requirement is not None:
        try:
            req = Requirement(line)
        except Exception:
            req = None
    if req is not None and req.marker is not None and not req.marker.evaluate():
        continue
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        problems.append(name + " is missing")
        continue
    if req is not None and req.specifier and not req.specifier.contains(
        dist.version, prereleases=True
    ):
        problems.append(name + " " + dist.version + " is installed, it needs " + str(req.specifier))
if problems:
    print("the base environment does not fit the release: " + "; ".join(problems))
    sys.exit(3)
import agent.cli, fleet
print(fleet.__version__)
"""
"""Run with the new version first on ``PYTHONPATH``: its requirements are installed in
the versions it asks for (where ``packaging`` can be imported, as pip's copy of it
usually can; else by name), their markers honoured, and it imports."""


class UpgradeFailed(Exception):
    """The upgrade stopped; ``str()`` is the reason the control plane shows."""


@dataclass(frozen=True)
class Fetcher:
    """Where and how the release driver downloads (the channel's settings).

    Attributes:
        server: the control plane's API URL.
        context: makes the TLS context of the channel.
        proxy: the channel's proxy setting.
    """

    server: str
    context: Callable[[], ssl.SSLContext]
    proxy: str | None = None


async def _download(spec: UpgradeCommand, part: Path, fetcher: Fetcher) -> None:
    req = Request(
        server=fetcher.server,
        path=spec.download_path,
        token=spec.token,
        size=spec.size,
        part=part,
        context=fetcher.context(),
        proxy=fetcher.proxy,
    )
    for attempt in range(1, FETCH_ATTEMPTS + 1):
        try:
            start, _ = await asyncio.to_thread(fetch_once, req)
        except DownloadRefused as exc:
            raise UpgradeFailed(str(exc)) from None
        except Incomplete as exc:
            if attempt == FETCH_ATTEMPTS:
                raise UpgradeFailed(
                    f"download incomplete after {attempt} attempts ({exc}); the part is "
                    "kept, and the next upgrade command resumes it"
                ) from None
            delay = _RETRY_BASE_S * 2 ** (attempt - 1)
            log.warning("download of %s cut (%s); resuming in %g s", spec.version, exc, delay)
            await asyncio.sleep(delay)
            continue
        if start:
            log.info("download of %s resumed at byte %d of %d", spec.version, start, spec.size)
        return


async def _check(versions: Versions, version: str, requires: tuple[str, ...]) -> None:
    env = dict(os.environ)
    env.pop(SUPERVISED_ENV, None)
    env["PYTHONPATH"] = str(versions.python_path(version))
    try:
        code, out, err = await run_argv(
            [sys.executable, "-P", "-c", _CHECK, *requires],
            stdin=b"",
            timeout_s=_CHECK_TIMEOUT_S,
            env=env,
        )
    except TimeoutError:
        raise UpgradeFailed(f"import check: it did not finish in {_CHECK_TIMEOUT_S:g} s") from None
    said = out.decode("utf-8", errors="replace").strip()
    if code != 0:
        lines = (said or err.decode("utf-8", errors="replace")).strip().splitlines()
        raise UpgradeFailed(f"import check failed (exit {code}): {lines[-1] if lines else '?'}")
    if said.splitlines()[-1:] != [version]:
        raise UpgradeFailed(f"import check: the release says it is {said!r}, not {version}")


def _discard(path: Path) -> None:
    path.unlink(missing_ok=True)


def _install(part: Path, target: Path, version: str) -> tuple[str, ...]:
    """Unpack ``part`` as ``target``; the release's requirements."""
    shutil.rmtree(target, ignore_errors=True)
    try:
        info = unpack_wheel(part, target)
    except WheelError as exc:
        raise UpgradeFailed(f"unpack error: {exc}") from None
    if info.version != version:
        shutil.rmtree(target, ignore_errors=True)
        raise UpgradeFailed(f"unpack error: the wheel says it is {info.version}, not {version}")
    return info.requirements or info.requires


async def install_release(
    spec: UpgradeCommand, versions: Versions, fetcher: Fetcher, report: Report
) -> VersionState:
    """Download, verify, install and check ``spec``'s release; then switch to it on trial.

    Returns:
        ``state.json`` after the switch (the caller restarts).

    Raises:
        UpgradeFailed: with the reason; nothing was switched.
    """
    version = spec.version
    key_file = versions.release_key_file
    if spec.size > MAX_UNPACKED_BYTES:
        raise UpgradeFailed(f"download refused: {spec.size} bytes is over {MAX_UNPACKED_BYTES}")
    part = versions.downloads / f"{spec.sha256}.part"
    await report("downloading", f"{spec.size} bytes from {fetcher.server}")
    await _download(spec, part, fetcher)
    await report("verifying", f"sha256 {spec.sha256[:12]}…, release key signature")
    try:
        why = await verify_release_isolated(
            key_file, part, version, spec.sha256, spec.size, spec.signature
        )
    except (RuntimeError, OSError) as exc:
        raise UpgradeFailed(f"verification did not run: {exc}") from None
    if why is not None:
        _discard(part)  # never unpacked, never run
        raise UpgradeFailed(why)
    target = versions.path(version)
    await report("installing", f"unpacking into {target}")
    try:
        requires = await asyncio.to_thread(_install, part, target, version)
        await _check(versions, version, requires)
    except UpgradeFailed:
        shutil.rmtree(target, ignore_errors=True)
        raise
    finally:
        _discard(part)
    deadline = spec.deadline_s
    return await asyncio.to_thread(
        versions.update, lambda s: begin_trial(s, version, __version__, deadline, time.time())
    )


async def run_command(argv: list[str], version: str, timeout_s: float, report: Report) -> None:
    """Run the ``command`` driver's argv for ``version`` (no shell).

    Raises:
        UpgradeFailed: it could not start, timed out or exited with another code than 0.
    """
    command = [arg.replace("{version}", version) for arg in argv]
    await report("installing", f"running {command[0]} for {version}")
    env = dict(os.environ)
    env.pop(SUPERVISED_ENV, None)
    try:
        code, out, err = await run_argv(command, stdin=b"", timeout_s=timeout_s, env=env)
    except TimeoutError:
        raise UpgradeFailed(f"the upgrade command timed out after {timeout_s:g} s") from None
    except OSError as exc:
        raise UpgradeFailed(f"the upgrade command could not start: {exc}") from None
    if code != 0:
        lines = (err or out).decode("utf-8", errors="replace").strip().splitlines()
        said = f": {lines[-1][:200]}" if lines else ""
        raise UpgradeFailed(f"the upgrade command exited with code {code}{said}")
    log.info("the upgrade command for %s exited 0", version)
