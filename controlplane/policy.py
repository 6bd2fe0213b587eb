"""Probe policy per pool: which hosts, networks and ports an agent may be asked to dial.

Deny by default: a pool with no policy allows no probe.  The agent enforces its
own allow-list too, so a compromised control plane cannot turn agents into a
scanner of the private network.
"""

from __future__ import annotations

import fnmatch
import ipaddress
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from .body_types import JsonInt, Port

__all__ = ["ProbePolicy"]


PortRange = Annotated[str, StringConstraints(pattern=r"^[0-9]{1,5}(-[0-9]{1,5})?$")]
"""``"5432"`` or ``"8000-8100"``; the bounds are checked too (1-65535, low <= high)."""


class ProbePolicy(BaseModel):
    # Strict: ``true`` is not a port, ``"0"`` is not a count (the schema says so too).
    model_config = ConfigDict(extra="forbid", strict=True)

    allow_hosts: list[str] = Field(default_factory=list)
    """Host name globs, e.g. ``*.db.internal``."""
    allow_cidrs: list[str] = Field(default_factory=list)
    allow_ports: list[Port | PortRange] = Field(default_factory=list)
    """Ports or ranges ``"8000-8100"``."""
    min_healthy: JsonInt = Field(default=0, ge=0)

    @field_validator("allow_cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            try:
                ipaddress.ip_network(cidr, strict=False)
            except ValueError:
                raise ValueError(f"{cidr!r} is not a CIDR such as 10.0.0.0/8") from None
        return value

    @field_validator("allow_ports")
    @classmethod
    def _ports(cls, value: list[int | str]) -> list[int | str]:
        for item in value:
            lo, hi = _port_range(item)
            if not 1 <= lo <= hi <= 65535:
                raise ValueError(f"{item!r} is not a port or range within 1-65535")
        return value

    def check(self, host: str, port: int) -> str | None:
        """None when allowed, else why not (in words)."""
        if not any(_port_range(p)[0] <= port <= _port_range(p)[1] for p in self.allow_ports):
            return f"port {port} is not in the pool's allowed ports {self.allow_ports or '[]'}"
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            ip = None
        if ip is not None:
            if any(ip in ipaddress.ip_network(c, strict=False) for c in self.allow_cidrs):
                return None
            if any(fnmatch.fnmatchcase(host, pattern) for pattern in self.allow_hosts):
                return None
            return f"address {host} is not in the pool's allowed networks {self.allow_cidrs}"
        lowered = host.lower().rstrip(".")
        if any(fnmatch.fnmatchcase(lowered, p.lower()) for p in self.allow_hosts):
            return None
        return f"host {host!r} matches none of the pool's allowed hosts {self.allow_hosts}"

    def as_dict(self) -> dict[str, Any]:
        return self.model_dump()


def _port_range(item: int | str) -> tuple[int, int]:
    if isinstance(item, int):
        return item, item
    lo, _, hi = item.partition("-")
    try:
        return int(lo), int(hi or lo)
    except ValueError:
        return 0, -1
