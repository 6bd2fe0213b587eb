"""Renewals with a new key: the new certificate supersedes the older ones at its first use.

A renewal whose CSR carries another key than the one the channel authenticated
with is recorded *pending*: in the store (a restart keeps it) and in
:attr:`Rekeys.pending`, loaded at start, so that an ordinary authentication costs
one set lookup and no write.  The first time the pending certificate
authenticates, every other certificate of the agent is refused from then on (one
transaction, :meth:`~controlplane.store.base.Store.supersede_certificates`) and the
supersession is audited ``cert.supersede``.

Why at first use and not at issuance: the answer carrying the new certificate can
be lost with the connection.  An agent that never received it still holds only
its old key and certificate; superseded at issuance, they would be refused and the
agent locked out.  Superseded at first use, the old pair stays good until the
agent proves it holds the new key, and an agent that lost the answer simply
renews again.  The agent reconnects with the new pair as soon as it installed it
(docs/agent.md), so the old key stops working seconds after a renewal.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = ["RekeyStore", "Rekeys"]

log = logging.getLogger("controlplane.rekeys")

Audit = Callable[[str, str, str, str, str], Awaitable[None]]
"""``audit(actor, action, target, result, detail)``."""


class RekeyStore(Protocol):
    """The part of the store that new-key renewals use."""

    async def add_certificate(
        self, serial: str, agent_id: str, not_after: float, *, pending: bool = False
    ) -> None: ...

    async def pending_serials(self) -> set[str]: ...

    async def supersede_certificates(self, agent_id: str, keep: str, at: float) -> list[str]: ...


class Rekeys:
    """Certificates issued for a new key that have not authenticated yet.

    Args:
        store: where pending certificates and supersessions are recorded.
        audit: the audit writer (``cert.supersede`` entries).
    """

    def __init__(self, store: RekeyStore, audit: Audit) -> None:
        self.store = store
        self.audit = audit
        self.pending: set[str] = set()
        """Serials of the pending certificates (hex, as the CA writes them)."""

    async def load(self) -> None:
        """Read the pending certificates from the store (at start)."""
        self.pending = await self.store.pending_serials()

    async def issued(self, agent_id: str, serial: str, not_after: float) -> None:
        """Record a certificate just issued for a new key, pending its first use."""
        await self.store.add_certificate(serial, agent_id, not_after, pending=True)
        self.pending.add(serial)

    async def first_use(self, agent_id: str, name: str, serial: str) -> list[str] | None:
        """``serial`` authenticated: if it is pending, supersede every other certificate.

        Returns:
            None when ``serial`` was not pending (nothing written); else the serials
            refused from now on.

        Raises:
            StoreError: the store failed; ``serial`` stays pending, for the next use.
        """
        if serial not in self.pending:
            return None
        # Taken out before the write: a second connection with the same certificate
        # meanwhile must not supersede again.
        self.pending.discard(serial)
        try:
            old = await self.store.supersede_certificates(agent_id, serial, time.time())
        except BaseException:
            self.pending.add(serial)
            raise
        log.info(
            "agent %s uses its new key (serial %s); %d older certificate(s) refused",
            name,
            serial,
            len(old),
        )
        if old:
            await self.audit(
                agent_id,
                "cert.supersede",
                agent_id,
                "ok",
                f"first use of the certificate for a new key (serial {serial}); refused from "
                f"now on: {', '.join(old)}",
            )
        return old
