"""The agent's local probe allow-list.

A probe runs only if local policy allows it, whatever the control plane asks, so
that a compromised control plane cannot use agents to scan a private network.
The check happens before anything is dialed:

1. the port must be in ``allow_ports``;
2. the host must match a glob of ``allow_hosts``, or be an address inside
   ``allow_cidrs``, or be a name whose every resolved address lies inside
   ``allow_cidrs`` (the name is resolved, nothing is connected to, and the probe
   then connects only to those checked addresses).

An empty allow-list allows nothing.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from agent.config import AgentConfig, parse_port_ranges

__all__ = ["IPAddress", "ProbePolicy"]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class ProbePolicy:
    """Which hosts and ports probes may target.

    Attributes:
        hosts: lower-case host name globs.
        networks: allowed networks.
        ports: inclusive port ranges.
    """

    hosts: tuple[str, ...] = ()
    networks: tuple[_Network, ...] = ()
    ports: tuple[tuple[int, int], ...] = ()

    @classmethod
    def from_config(cls, cfg: AgentConfig) -> ProbePolicy:
        """Build the policy from the ``allow_*`` settings (already validated)."""
        return cls(
            hosts=tuple(h.lower().rstrip(".") for h in cfg.allow_hosts),
            networks=tuple(ipaddress.ip_network(c, strict=False) for c in cfg.allow_cidrs),
            ports=parse_port_ranges(cfg.allow_ports),
        )

    def port_denial(self, port: int) -> str | None:
        """Why ``port`` is denied, or ``None`` if it is allowed."""
        if any(low <= port <= high for low, high in self.ports):
            return None
        return f"port {port} is not in the agent's allow_ports"

    def host_matches(self, host: str) -> bool:
        """Whether ``host`` matches one of the host globs (case-insensitive)."""
        name = host.lower().rstrip(".")
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.hosts)

    def address_allowed(self, address: IPAddress) -> bool:
        """Whether ``address`` lies in one of the allowed networks."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in net for net in self.networks if net.version == address.version)

    def addresses_denial(self, host: str, addresses: Iterable[IPAddress]) -> str | None:
        """Why a host resolved to ``addresses`` is denied, or ``None``."""
        outside = [str(a) for a in addresses if not self.address_allowed(a)]
        if not outside:
            return None
        return f"{host} resolves to {', '.join(outside)}, outside the agent's allow_cidrs"
