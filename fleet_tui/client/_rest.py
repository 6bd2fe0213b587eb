"""The REST client for the dashboard's actions."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx

from fleet.protocol import (
    AgentState,
    CommandEvent,
    ConnectionInfo,
    Disconnect,
    DisconnectHint,
    ProbeResult,
    ProtocolError,
    RemediationInfo,
    RolloutInfo,
    convert,
)

from ..errors import ApiError, RefusedError, ServerError, UnavailableError
from ..holds import Hold, hold_from

__all__ = ["AgentDetail", "ConfigView", "ConnectionProbe", "ProbeRequest", "RestClient"]

_V = TypeVar("_V")


@dataclass(frozen=True)
class ProbeRequest:
    """What the probe modal asks for."""

    host: str
    port: int
    tls: bool = False
    timeout_s: float = 5.0


@dataclass(frozen=True)
class ConfigView:
    """``GET /v1/agents/{id}/config``: effective versus pinned."""

    effective_hash: str | None
    pinned_hash: str | None
    version: str | None
    pinned_version: str | None
    diff: list[str]
    in_sync: bool
    effective: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class AgentDetail:
    """``GET /v1/agents/{id}``."""

    agent: AgentState
    events: list[CommandEvent]
    disconnects: list[Disconnect] = field(default_factory=list)
    """Why its last channels ended, oldest first (empty from an older control plane)."""
    hints: list[DisconnectHint] = field(default_factory=list)
    """What the control plane reads in them, each with its fix."""
    remediations: list[RemediationInfo] = field(default_factory=list)
    """Its newest remediations, newest first (empty from an older control plane)."""


@dataclass(frozen=True)
class ConnectionProbe:
    """``POST /v1/connections/{name}/probe``: the result, and the route it went by."""

    connection: str
    pool: str
    agent_id: str
    result: ProbeResult


class RestClient:
    """Calls the control plane's REST API with a bearer token.

    Every failure is raised as an :class:`~fleet_tui.errors.ApiError` whose
    text is the server's ``detail``, ready to show.

    Args:
        server_url: ``https://host:port``.
        token: The API bearer token.
        ssl_context: Trust for the server, or None for plain ``http``.
        timeout: Seconds for ordinary calls; probes and logs get their own.
        transport: Instead of the network (a test that records what is sent).
    """

    def __init__(
        self,
        server_url: str,
        token: str,
        ssl_context: ssl.SSLContext | None,
        timeout: float = 15.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=server_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            verify=ssl_context if ssl_context is not None else True,
            timeout=timeout,
            transport=transport,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def _call(
        self, method: str, path: str, *, json: Any = None, wait_s: float | None = None
    ) -> httpx.Response:
        try:
            resp = await self._http.request(
                method,
                path,
                json=json,
                timeout=wait_s if wait_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TimeoutException:
            raise ServerError(0, "the control plane did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ServerError(0, f"could not reach the control plane: {exc}") from None
        if resp.status_code >= 400:
            raise _error(resp)
        return resp

    async def probe(self, agent_id: str, req: ProbeRequest) -> ProbeResult:
        """Ask the agent to open a connection to ``req.host:req.port``."""
        body = {"host": req.host, "port": req.port, "tls": req.tls, "timeout_s": req.timeout_s}
        resp = await self._call(
            "POST", f"/v1/agents/{agent_id}/probe", json=body, wait_s=req.timeout_s + 15
        )
        return _value(resp.json(), ProbeResult)

    async def logs(self, agent_id: str, lines: int = 500) -> str:
        """The agent's recent logs, redacted on the agent."""
        resp = await self._call(
            "POST", f"/v1/agents/{agent_id}/logs", json={"lines": lines}, wait_s=60
        )
        return resp.text

    async def pin_agent(self, agent_id: str, version: str) -> dict[str, Any]:
        """Pin the agent to ``version``."""
        resp = await self._call("PUT", f"/v1/agents/{agent_id}/pin", json={"version": version})
        return _obj(resp)

    async def pin_pool(self, pool: str, version: str) -> dict[str, Any]:
        """Pin every agent of ``pool`` to ``version``."""
        resp = await self._call("PUT", f"/v1/pools/{pool}/pin", json={"version": version})
        return _obj(resp)

    async def ack(self, alert_id: str, note: str) -> dict[str, Any]:
        """Acknowledge an open alert (operator)."""
        resp = await self._call("POST", f"/v1/alerts/{alert_id}/ack", json={"note": note})
        return _obj(resp)

    async def unack(self, alert_id: str) -> None:
        """Take back the acknowledgement of an alert (operator)."""
        await self._call("DELETE", f"/v1/alerts/{alert_id}/ack")

    async def silence(
        self,
        matchers: dict[str, str],
        duration_s: float,
        reason: str,
        starts_at: float | None = None,
    ) -> dict[str, Any]:
        """Silence the alerts matching every matcher for ``duration_s`` from
        ``starts_at`` (epoch seconds; None: now) (operator)."""
        body: dict[str, Any] = {**matchers, "duration_s": duration_s, "reason": reason}
        if starts_at is not None:
            body["starts_at"] = starts_at
        return _obj(await self._call("POST", "/v1/silences", json=body))

    async def maintenance(
        self,
        scope: str,
        target: str,
        duration_s: float,
        reason: str,
        starts_at: float | None = None,
    ) -> dict[str, Any]:
        """Plan maintenance of an agent (id) or a pool for ``duration_s`` from
        ``starts_at`` (epoch seconds; None: now) (operator)."""
        body: dict[str, Any] = {scope: target, "duration_s": duration_s, "reason": reason}
        if starts_at is not None:
            body["starts_at"] = starts_at
        return _obj(await self._call("POST", "/v1/maintenance", json=body))

    async def holds(self) -> list[Hold]:
        """The active and planned silences and maintenance windows (viewer)."""
        silences, windows = await asyncio.gather(
            self._call("GET", "/v1/silences"), self._call("GET", "/v1/maintenance")
        )
        found = [hold_from("silence", s) for s in _list(silences)]
        found += [hold_from("maintenance", w) for w in _list(windows)]
        return [h for h in found if h is not None]

    async def end_hold(self, hold: Hold) -> None:
        """End a silence or a maintenance window now (operator)."""
        where = "/v1/silences" if hold.kind == "silence" else "/v1/maintenance"
        await self._call("DELETE", f"{where}/{_seg(hold.id)}")

    async def revoke(self, agent_id: str) -> None:
        """Revoke the agent's identity; its channel closes and it will not return."""
        await self._call("POST", f"/v1/agents/{agent_id}/revoke")

    async def config(self, agent_id: str) -> ConfigView:
        """The agent's effective and pinned config, with their diff."""
        data = _obj(await self._call("GET", f"/v1/agents/{agent_id}/config"))
        return ConfigView(
            effective_hash=data.get("effective_hash"),
            pinned_hash=data.get("pinned_hash"),
            version=data.get("version"),
            pinned_version=data.get("pinned_version"),
            diff=[str(line) for line in data.get("diff") or []],
            in_sync=bool(data.get("in_sync", True)),
            effective=effective if isinstance(effective := data.get("effective"), dict) else None,
            error=str(data["error"]) if data.get("error") else None,
        )

    async def agent(self, agent_id: str) -> AgentDetail:
        """One agent with its recent events."""
        data = _obj(await self._call("GET", f"/v1/agents/{agent_id}"))
        # An event this dashboard does not understand is skipped.
        events = _values(data.get("events"), CommandEvent)
        agent = _value(data.get("agent"), AgentState)
        return AgentDetail(
            agent=agent,
            events=events,
            disconnects=_values(data.get("disconnects"), Disconnect),
            hints=_values(data.get("disconnect_hints"), DisconnectHint),
            remediations=_values(data.get("remediations"), RemediationInfo),
        )

    async def connections(self) -> list[ConnectionInfo]:
        """Every registered connection and whether it is routable now."""
        resp = await self._call("GET", "/v1/connections")
        data = resp.json()
        if not isinstance(data, list):
            raise ServerError(200, "the control plane sent connections that are not a list")
        return [_value(c, ConnectionInfo) for c in data]

    async def probe_connection(
        self, name: str, tls: bool = False, timeout_s: float = 5.0
    ) -> ConnectionProbe:
        """Probe connection ``name`` through its route (a healthy agent of its pools).

        No agent can route it: a 409 that says which pools have none.
        """
        body = {"tls": tls, "timeout_s": timeout_s}
        data = _obj(
            await self._call(
                "POST", f"/v1/connections/{_seg(name)}/probe", json=body, wait_s=timeout_s + 15
            )
        )
        return ConnectionProbe(
            connection=str(data.get("connection", name)),
            pool=str(data.get("pool", "")),
            agent_id=str(data.get("agent_id", "")),
            result=_value(data.get("result"), ProbeResult),
        )

    async def create_connection(self, body: dict[str, Any]) -> ConnectionInfo:
        """Register a connection (admin): name, host, port, pools, schedules."""
        return _value(
            (await self._call("POST", "/v1/connections", json=body)).json(), ConnectionInfo
        )

    async def update_connection(self, name: str, body: dict[str, Any]) -> ConnectionInfo:
        """Change what ``body`` gives of connection ``name`` (admin)."""
        resp = await self._call("PATCH", f"/v1/connections/{_seg(name)}", json=body)
        return _value(resp.json(), ConnectionInfo)

    async def rollouts(self) -> list[RolloutInfo]:
        """Every rollout, newest first (viewer)."""
        return _values(_list(await self._call("GET", "/v1/rollouts")), RolloutInfo)

    async def rollout_action(
        self, rollout_id: str, verb: Literal["pause", "resume", "abort"]
    ) -> RolloutInfo:
        """Pause, resume or abort a rollout (operator); answers with it as it is now."""
        resp = await self._call("POST", f"/v1/rollouts/{_seg(rollout_id)}/{verb}")
        return _value(resp.json(), RolloutInfo)

    async def remediations(self) -> list[RemediationInfo]:
        """The pending and running remediations and the recent others (viewer)."""
        return _values(_list(await self._call("GET", "/v1/remediations")), RemediationInfo)

    async def decide_remediation(
        self, remediation_id: str, verb: Literal["approve", "reject"], note: str = ""
    ) -> RemediationInfo:
        """Approve (run it now) or reject a pending remediation, with a note kept with
        it and in the audit (operator)."""
        resp = await self._call(
            "POST", f"/v1/remediations/{_seg(remediation_id)}/{verb}", json={"note": note}
        )
        return _value(resp.json(), RemediationInfo)


def _seg(name: str) -> str:
    """A name as one path segment (names are restricted anyway; this keeps it so)."""
    return quote(name, safe="")


def _value(obj: Any, kind: type[_V]) -> _V:
    try:
        return convert(obj, kind)
    except ProtocolError as exc:
        raise ServerError(200, f"the control plane sent an unexpected answer: {exc}") from None


def _values(items: Any, kind: type[_V]) -> list[_V]:
    """The items of a list that validate as ``kind``; others (a newer server's) skipped."""
    out = []
    for raw in items if isinstance(items, list) else []:
        try:
            out.append(convert(raw, kind))
        except ProtocolError:
            continue
    return out


def _list(resp: httpx.Response) -> list[Any]:
    data = resp.json()
    if not isinstance(data, list):
        raise ServerError(
            resp.status_code, "the control plane sent an unexpected answer (not a list)"
        )
    return data


def _obj(resp: httpx.Response) -> dict[str, Any]:
    data = resp.json()
    if not isinstance(data, dict):
        raise ServerError(resp.status_code, "the control plane sent an unexpected answer")
    return data


def _error(resp: httpx.Response) -> ApiError:
    try:
        detail = str(resp.json().get("detail", "")) or resp.reason_phrase
    except (ValueError, AttributeError):
        detail = resp.text[:200] or resp.reason_phrase
    status = resp.status_code
    if status == 401:
        return RefusedError(status, f"refused: {detail}; check the token")
    if status == 403:
        return RefusedError(status, f"refused: {detail}")
    if status in (409, 504):
        return UnavailableError(status, detail)
    return ServerError(status, detail)
