"""Each pool's remediation policy: kept as documents, set and cleared by an admin.

Remediation is off in a pool until an admin sets a policy (``PUT
/v1/pools/{pool}/remediation``).  Besides the shape the body's schema states
(:class:`~controlplane.remediation_rules.RemediationPolicy`: a 422 names the
field), a policy must fit the server: a check interval no shorter than
``remediation_min_check_s``, and a probe rule must name a connection of the pool
that the pool's probe policy lets its agents dial (a 400 says which and how to
fix it).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from .errors import BadRequest, NotFound
from .fleet import Fleet
from .operators import Principal
from .remediation_rules import ProbeFailing, RemediationPolicy, describe

__all__ = ["KIND", "PolicyBook", "StoredPolicy", "summary"]

log = logging.getLogger("controlplane.remediation")

KIND = "remediation_policy"
"""The documents' kind, keyed by pool."""


@dataclass(frozen=True)
class StoredPolicy:
    pool: str
    policy: RemediationPolicy
    set_by: str
    set_at: float

    def body(self) -> dict[str, Any]:
        return {"policy": self.policy.model_dump(), "set_by": self.set_by, "set_at": self.set_at}


def summary(policy: RemediationPolicy) -> str:
    """The policy in one line, for the audit."""
    rules = "; ".join(
        f"{describe(r)} -> {r.action} ({'automatic' if r.automatic else 'approval'})"
        for r in policy.rules
    )
    return (
        f"{rules}; every {policy.check_interval_s:g} s; budgets {policy.per_agent_per_hour} "
        f"per agent, {policy.per_pool_per_hour} per pool per hour"
    )


class PolicyBook:
    """The pools' policies, in memory and in the store.

    Args:
        fleet: the store, the audit, the connections and probe policies a policy must fit.
        min_check_s: the shortest check interval the server allows.
    """

    def __init__(self, fleet: Fleet, min_check_s: float) -> None:
        self.fleet = fleet
        self.min_check_s = min_check_s
        self.policies: dict[str, StoredPolicy] = {}

    async def load(self) -> None:
        for pool, body in await self.fleet.store.list_documents(KIND):
            try:
                policy = RemediationPolicy.model_validate(body["policy"])
                stored = StoredPolicy(pool, policy, str(body["set_by"]), float(body["set_at"]))
            except (ValidationError, KeyError, TypeError, ValueError) as exc:
                log.error(
                    "the remediation policy of pool %s cannot be read, so remediation is off "
                    "there until an admin sets it again: %s",
                    pool,
                    exc,
                )
                continue
            self.policies[pool] = stored

    def get(self, pool: str) -> StoredPolicy:
        """The pool's policy, or a 404 that says how to set one."""
        stored = self.policies.get(pool)
        if stored is None:
            raise NotFound(
                f"remediation is off in pool {pool!r} (no policy); an admin sets one with "
                f"PUT /v1/pools/{pool}/remediation (fleet remediation policy {pool} --file FILE)"
            )
        return stored

    def problem(self, pool: str, policy: RemediationPolicy) -> str | None:
        """Why ``policy`` cannot be used in ``pool`` on this server, or None."""
        if policy.check_interval_s < self.min_check_s:
            return (
                f"check_interval_s {policy.check_interval_s:g} is shorter than the server's "
                f"remediation_min_check_s ({self.min_check_s:g} s): check less often"
            )
        for number, rule in enumerate(policy.rules, 1):
            if not isinstance(rule, ProbeFailing):
                continue
            conn = self.fleet.connections.get(rule.connection)
            if conn is None:
                return (
                    f"rule {number}: no connection {rule.connection!r}; list them with "
                    "GET /v1/connections (fleet connections list)"
                )
            if pool not in conn.pools:
                return (
                    f"rule {number}: connection {conn.name} does not route through pool {pool} "
                    f"(its pools: {', '.join(conn.pools)}); a probe rule watches a connection "
                    "of its own pool"
                )
            probes = self.fleet.pools.get(pool)
            why = (
                "the pool has no probe policy"
                if probes is None
                else probes.check(conn.host, conn.port)
            )
            if why is not None:
                return (
                    f"rule {number}: the pool's agents may not probe {conn.host}:{conn.port} "
                    f"({why}); allow it with PUT /v1/pools/{pool}/policy"
                )
        return None

    async def put(
        self, actor: Principal, pool: str, policy: RemediationPolicy, now: float
    ) -> StoredPolicy:
        """Set (replace) the pool's policy; a 400 when it does not fit the server."""
        actor.require("admin")
        problem = self.problem(pool, policy)
        if problem is not None:
            await self.fleet.audit(
                actor.name, "remediation.policy", f"pool:{pool}", "refused", problem
            )
            raise BadRequest(problem)
        stored = StoredPolicy(pool, policy, actor.name, now)
        await self.fleet.store.put_document(KIND, pool, stored.body(), now)
        self.policies[pool] = stored
        await self.fleet.audit(
            actor.name, "remediation.policy", f"pool:{pool}", "ok", summary(policy)
        )
        return stored

    async def clear(self, actor: Principal, pool: str) -> StoredPolicy:
        """Turn remediation off in the pool; answers with the policy it had."""
        actor.require("admin")
        try:
            stored = self.get(pool)
        except NotFound:
            await self.fleet.audit(
                actor.name, "remediation.policy.clear", f"pool:{pool}", "refused", "none"
            )
            raise
        await self.fleet.store.delete_document(KIND, pool)
        del self.policies[pool]
        await self.fleet.audit(
            actor.name, "remediation.policy.clear", f"pool:{pool}", "ok", summary(stored.policy)
        )
        return stored
