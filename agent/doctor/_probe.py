"""Step 8: ``--probe HOST:PORT``, a connectivity probe under the agent's own policy.

It is the probe the control plane would ask this agent for (DNS, TCP connect),
with the agent's local allow-list (``allow_hosts``, ``allow_cidrs``,
``allow_ports``) applied first.  The control plane's policy for the pool applies
as well when the request comes from the dashboard; doctor checks only the local
half.
"""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from agent.config import AgentConfig
from agent.policy import ProbePolicy
from agent.probe import run_probe
from fleet.protocol import ProbeCommand

from ._report import Report

__all__ = ["check_probe", "parse_target"]

_FIXES = {
    "dns": "the name does not resolve on this host: check it and this host's DNS",
    "refused": "nothing listens there, or a firewall rejects the connection",
    "timeout": "no answer: a firewall drops the packets, or the host is down",
    "unreachable": "no route to that network from this host: check routes and VPN",
}


def parse_target(text: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` into its parts.

    Raises:
        ValueError: not of that form, or the port is not 1-65535.
    """
    host, sep, port_s = text.rpartition(":")
    if not sep or not host or not port_s.isdigit():
        raise ValueError(f"--probe takes HOST:PORT, not {text!r}")
    host = host.removeprefix("[").removesuffix("]")
    port = int(port_s)
    if not 1 <= port <= 65535:
        raise ValueError(f"--probe port must be 1-65535, not {port}")
    return host, port


def _denial_fix(host: str, port: int, error: str) -> str:
    if "allow_ports" in error:
        return (
            f'add the port to allow_ports in agent.toml (allow_ports = ["{port}"]) or '
            f"run the agent with --allow-port {port}; then restart the agent"
        )
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return (
            f'add the name to allow_hosts (allow_hosts = ["{host}"], globs like '
            '"*.db.internal" work) or its networks to allow_cidrs; then restart the agent'
        )
    return (
        f'add a network holding {host} to allow_cidrs (allow_cidrs = ["{host}/32"]) or '
        "run the agent with --allow-cidr; then restart the agent"
    )


def check_probe(
    report: Report, target: tuple[str, int], config: AgentConfig, timeout_s: float
) -> None:
    """Probe ``target`` as the agent would and report the outcome."""
    host, port = target
    spec = ProbeCommand(host=host, port=port, timeout_s=min(timeout_s, 60.0))
    result: dict[str, Any] = asyncio.run(run_probe(spec, ProbePolicy.from_config(config)))
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if result.get("ok"):
        resolved = ", ".join(result.get("resolved", []))
        report.ok(
            "probe",
            f"{where} allowed by the local policy; connected in {result.get('connect_ms')} ms "
            f"({resolved})",
        )
        return
    failure = str(result.get("failure"))
    error = str(result.get("error"))
    if failure == "denied":
        report.fail(
            "probe",
            f"{where} refused by the agent's policy: {error}",
            _denial_fix(host, port, error),
        )
        return
    report.fail(
        "probe",
        f"{where} allowed by the local policy, but the probe failed: {failure}: {error}",
        _FIXES.get(failure, "see the error; the same probe from the dashboard gives the same"),
    )
