"""The order of the steps, and what a failed step makes impossible."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent.config import AgentConfig
from agent.errors import StateError
from agent.redaction import redact
from agent.state import Identity, read_identity

from ._channel import ChannelClock, check_channel
from ._files import check_config, check_files, config_file_for
from ._identity import check_certificate, check_clock
from ._net import Endpoint, check_dns, check_tcp, endpoint
from ._probe import check_probe
from ._report import Report
from ._running import report_running_agent, running_agent
from ._tls import HttpDate, agent_ssl_context, check_pin, check_tls

__all__ = ["DoctorOptions", "run_doctor"]


@dataclass(frozen=True)
class DoctorOptions:
    """What ``fleet agent doctor`` was asked to do.

    Attributes:
        state_dir: the agent's state directory.
        config_file: ``--config``; by default as ``fleet agent run`` finds it.
        probe: ``--probe HOST:PORT``, parsed.
        authenticate: prove the identity on the channel: ``True`` (``--auth``),
            ``False`` (``--no-auth``) or ``None``: unless ``fleet agent run`` of
            this state directory runs here (then its log is read instead).
        timeout_s: the limit on each network step.
        env: the environment (``FLEET_AGENT_*``, ``FLEET_AGENT_CONFIG``).
    """

    state_dir: Path
    env: Mapping[str, str]
    config_file: Path | None = None
    probe: tuple[str, int] | None = None
    authenticate: bool | None = None
    timeout_s: float = 5.0


def run_doctor(options: DoctorOptions) -> Report:
    """Run every step and return the report.

    Raises:
        StateError: the state directory holds no readable ``agent.json``, or its
            server is not an ``https://`` URL.
    """
    identity = read_identity(options.state_dir)
    report = Report()
    config_file = config_file_for(options.config_file, options.state_dir, options.env)
    ca_ok = check_files(report, identity, config_file)
    config = check_config(report, config_file, options.env)
    api, channel = _endpoints(report, identity, config)

    check_dns(report, api.host, api.proxy is not None, options.timeout_s)
    endpoints = [api] if channel is api else [api, channel]
    reachable = [ep for ep in endpoints if check_tcp(report, ep, options.timeout_s)]
    date: HttpDate | None = None
    if not ca_ok:
        secure: list[Endpoint] = []
        for step in ("tls", "pin"):
            report.skip(step, "needs the enrolled CA (ca.pem)")
    else:
        secure = _check_tls(report, endpoints, reachable, identity, config, options.timeout_s)
        if api in reachable:
            date = check_pin(report, api, identity, options.timeout_s)
        else:
            report.skip("pin", f"needs a connection to the API port {api.where}")
    check_certificate(report, identity)
    clock = None
    if channel in secure:
        clock = _check_channel(report, channel, identity, config, options)
    else:
        report.skip("upgrade", f"needs TLS to the channel port {channel.where}")
        report.skip("auth", "needs the websocket upgrade")
    check_clock(report, clock, date)
    if options.probe is not None:
        check_probe(report, options.probe, config, options.timeout_s)
    return report


def _endpoints(
    report: Report, identity: Identity, config: AgentConfig
) -> tuple[Endpoint, Endpoint]:
    """The API and channel endpoints as ``fleet agent run`` reaches them; the header."""
    server = (config.server or identity.server).rstrip("/")
    parts = urlsplit(server)
    if parts.scheme != "https" or parts.hostname is None:
        raise StateError(f"the server {server!r} is not an https://HOST:PORT URL; enroll again")
    api = endpoint("api", parts.hostname, parts.port or 443, config.proxy)
    channel = api  # without a channel port, the API port's route serves the channel
    if identity.channel_port and identity.channel_port != api.port:
        channel = endpoint("channel", api.host, identity.channel_port, config.proxy)
    shown_proxy = redact(api.proxy) if api.proxy else None  # a password in its URL
    via = f", proxy {shown_proxy}" if shown_proxy else ""
    report.header += [
        f"fleet agent doctor: {identity.name} ({identity.agent_id}), pool {identity.pool}",
        f"server {server}, channel port {channel.port}{via}",
        "",
    ]
    report.facts.update(
        agent={"id": identity.agent_id, "name": identity.name, "pool": identity.pool},
        server=server,
        channel_port=channel.port,
        proxy=shown_proxy,
    )
    return api, channel


def _check_channel(
    report: Report,
    channel: Endpoint,
    identity: Identity,
    config: AgentConfig,
    options: DoctorOptions,
) -> ChannelClock | None:
    """The upgrade, then authentication: doctor's own, or the running agent's log."""
    pid = running_agent(options.state_dir) if options.authenticate is None else None
    authenticate = options.authenticate is not False and pid is None
    before = len(report.checks)
    clock = check_channel(
        report,
        channel,
        identity,
        agent_ssl_context(identity, config),
        authenticate=authenticate,
        timeout_s=options.timeout_s,
    )
    if pid is not None:
        report_running_agent(report, pid, identity.log_dir / "agent.log")
    elif not authenticate:
        report.skip("auth", "not asked to authenticate (--no-auth)")
    elif not any(c.step == "auth" for c in report.checks[before:]):
        report.skip("auth", "needs the websocket upgrade")
    return clock


def _check_tls(
    report: Report,
    endpoints: list[Endpoint],
    reachable: list[Endpoint],
    identity: Identity,
    config: AgentConfig,
    timeout_s: float,
) -> list[Endpoint]:
    """TLS to each reachable endpoint; returns those that passed."""
    secure = []
    for ep in endpoints:
        if ep not in reachable:
            report.skip("tls", f"needs a connection to {ep.where} ({ep.label} port)")
        elif check_tls(report, ep, identity, config, timeout_s):
            secure.append(ep)
    return secure
