"""What the write-behind flush stores of an agent, and how a restart reads it back:
samples as whole tenths (cheap to build and encode at 19,000 agents), and the
floats an older control plane wrote still read."""

from __future__ import annotations

import json

from controlplane.live import LiveAgent
from controlplane.store.base import AgentRecord


def agent(status: dict | None = None) -> LiveAgent:
    return LiveAgent(AgentRecord("ag_1", "a1", "p", {}, 0.0, "01", 2e9, status=status or {}), 60)


def test_samples_are_stored_in_tenths_and_read_back_the_same():
    live = agent()
    for cpu, mem, queue in ((5.0, 40.2, 0), (12.3, 41.0, 7), (99.9, 0.1, 12)):
        live.cpu.append(cpu)
        live.mem.append(mem)
        live.queue.append(queue)
    stored = json.loads(json.dumps(live.status()))
    assert stored["cpu_x10"] == [50, 123, 999] and stored["mem_x10"] == [402, 410, 1]
    assert stored["queue"] == [0, 7, 12] and "cpu" not in stored
    back = agent(stored)
    assert list(back.cpu) == [5.0, 12.3, 99.9] and list(back.mem) == [40.2, 41.0, 0.1]
    assert back.queue.counts() == [0, 7, 12]


def test_floats_written_by_an_older_control_plane_still_read():
    back = agent({"cpu": [5.0, 12.3], "mem": [40.2], "queue": [3, 4], "ever_connected": True})
    assert list(back.cpu) == [5.0, 12.3] and list(back.mem) == [40.2]
    assert back.queue.counts() == [3, 4]


def test_a_hand_edited_series_of_other_things_is_skipped_not_fatal():
    back = agent({"cpu_x10": [50, "x", None, True, 70], "queue": ["9", 2]})
    assert list(back.cpu) == [5.0, 7.0] and back.queue.counts() == [2]
