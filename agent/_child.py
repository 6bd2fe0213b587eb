"""Run ``python -m MODULE`` as a short-lived child: the agent's way to keep heavy work out.

``cryptography`` costs the long-running agent about 10 MB of resident memory, so
key operations (:mod:`agent.keys`) and the TLS analysis (:mod:`agent.tls`) run in
a child that exits at once.  One rule for both: no shell, stdin in, stdout and
stderr out, and no child left behind on a timeout or a cancellation.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["run_argv", "run_module"]


async def run_module(
    module: str, *args: str, stdin: bytes, timeout_s: float
) -> tuple[int, bytes, bytes]:
    """Run ``python -m module args`` with ``stdin``; its exit code, stdout and stderr.

    Raises:
        TimeoutError: it did not finish within ``timeout_s`` (it has been killed).
    """
    return await run_argv([sys.executable, "-m", module, *args], stdin=stdin, timeout_s=timeout_s)


async def run_argv(
    argv: list[str], *, stdin: bytes, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int, bytes, bytes]:
    """Run ``argv`` (no shell) with ``stdin`` and ``env``; its exit code, stdout, stderr.

    Raises:
        TimeoutError: it did not finish within ``timeout_s`` (it has been killed).
        OSError: ``argv[0]`` cannot be run.
    """
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate(stdin)
    finally:
        if proc.returncode is None:  # timed out or cancelled: leave no child behind
            proc.kill()
            await proc.wait()
    return proc.returncode if proc.returncode is not None else -1, out, err
