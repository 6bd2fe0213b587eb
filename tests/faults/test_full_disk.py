"""A full disk under the data directory: writes say what to do, the rest goes on.

The data directory is a 2 MiB tmpfs, filled by the test.  An operator write
answers 503 with the next step; reads and the event stream go on from memory;
once space is freed writes work again, and SQLite's integrity check passes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.watch import EventLog
from tests.helpers.server import RunningServer
from tests.helpers.stream import start_agent, stop_agent

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MiB tmpfs; skipped where mounting is not permitted, except under CI=true."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        reason = f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + "; CI must run this test as root")
        pytest.skip(reason)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(path: Path) -> int:
    """Write ``path`` until the disk is full; returns the bytes written."""
    written = 0
    with path.open("wb", buffering=0) as f:
        for size in (1 << 16, 512, 1):
            chunk = b"\0" * size
            try:
                while True:
                    written += f.write(chunk) or 0
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    return written


def connection(name: str) -> dict[str, object]:
    return {"name": name, "host": "db.internal", "port": 5432, "pools": ["default"]}


async def test_a_full_disk_answers_503_with_what_to_do_and_reads_and_the_stream_go_on(
    tiny_disk, running
):
    server = RunningServer(tiny_disk).start()  # its log is written beside, off the tmpfs
    running.append(server)
    agent, task = await start_agent(server, "on-full-disk")
    events = await EventLog.open(server)
    try:
        async with server.aapi() as api:
            assert (await api.post("/v1/connections", json=connection("before"))).status_code == 201
            filler = tiny_disk / "filler"
            assert fill(filler) > 0
            filled_at, filled_wall = time.monotonic(), time.time()

            refused: list[str] = []
            for i in range(200):
                r = await api.post("/v1/connections", json=connection(f"full-{i}"))
                if r.status_code == 503:
                    refused.append(f"full-{i}")
                    detail = r.json()["detail"]
                    break
                assert r.status_code == 201, r.text
            else:
                raise AssertionError("200 writes on a full disk, none refused")
            assert "disk holding the data directory is full" in detail, detail
            assert "free space and retry" in detail, detail

            # Reads and the event stream go on from memory.
            r = await api.get("/v1/agents")
            assert r.status_code == 200
            [listed] = r.json()
            assert listed["state"] == "connected"
            await events.agent(
                agent.identity.agent_id,
                lambda a: (a.last_heartbeat_at or 0) > filled_wall,
                5,
                "a heartbeat on the stream while the disk is full",
                filled_at,
            )
            assert (await api.get("/v1/connections")).status_code == 200

            filler.unlink()
            r = await api.post("/v1/connections", json=connection("after"))
            assert r.status_code == 201, r.text
            created = {c["name"] for c in (await api.get("/v1/connections")).json()}
    finally:
        await events.close()
        await stop_agent(task)
    assert "before" in created and "after" in created
    assert not set(refused) & created
    print(f"{len(created) - 2} writes went through on the full disk before the first 503")

    server.stop()
    with contextlib.closing(sqlite3.connect(tiny_disk / "fleet.db")) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    server.start()
    with server.api() as api:
        stored = {c["name"] for c in api.get("/v1/connections").json()}
    assert stored == created, "what was acknowledged is what the store holds"
