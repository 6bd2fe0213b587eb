"""Schema step "certificates pending their first use": a database from before keeps
its certificates (none pending, the revoked ones still refused); from then on a
new-key certificate is pending until it first authenticates, and that first use
refuses the agent's other certificates in one transaction, kept across a restart."""

from __future__ import annotations

from controlplane.store.base import AgentRecord
from controlplane.store.sqlite import MIGRATIONS

# Found by its description: the step's number is set when branches merge.
STEP = next(
    i for i, m in enumerate(MIGRATIONS) if m.description == "certificates pending their first use"
)


async def test_certificates_from_before_are_not_pending_and_a_first_use_supersedes(backend):
    steps = backend.steps
    old = backend.make(steps[:STEP])
    await old.open()
    await old.add_agent(AgentRecord("ag_1", "edge-1", "p", {}, 1.0, "a1", 1000.0))
    await old.close()
    await backend.execute(
        "INSERT INTO certificates (serial, agent_id, not_after, revoked_at) VALUES"
        " ('a0', 'ag_1', 500.0, 50.0), ('a1', 'ag_1', 1000.0, NULL)"
    )

    store = backend.make(steps[: STEP + 1])
    await store.open()
    assert [step.version for step in store.applied] == [steps[STEP].version]
    assert await store.pending_serials() == set()
    assert await store.revoked_serials() == {"a0"}
    # A renewal with a new key: pending, and nothing is refused yet.
    await store.add_certificate("b2", "ag_1", 2000.0, pending=True)
    assert await store.pending_serials() == {"b2"}
    assert await store.revoked_serials() == {"a0"}
    [agent] = await store.list_agents()
    assert (agent.cert_serial, agent.cert_not_after) == ("a1", 1000.0)
    await store.close()

    again = backend.make(steps[: STEP + 1])
    await again.open()
    assert again.applied == []
    assert await again.pending_serials() == {"b2"}  # kept across a restart
    # Its first use: the others refused, it no longer pending, and the agent's own.
    assert await again.supersede_certificates("ag_1", "b2", 3.0) == ["a1"]
    assert await again.pending_serials() == set()
    assert await again.revoked_serials() == {"a0", "a1"}
    # What the control plane loads at start: only the refused ones not yet expired.
    assert await again.revoked_serials(valid_at=600.0) == {"a1"}
    [agent] = await again.list_agents()
    assert (agent.cert_serial, agent.cert_not_after) == ("b2", 2000.0)
    # A revoked pending certificate is not pending (its agent was revoked).
    await again.add_certificate("c3", "ag_1", 3000.0, pending=True)
    await again.revoke_agent("ag_1", 4.0)
    assert await again.pending_serials() == set()
    await again.close()
