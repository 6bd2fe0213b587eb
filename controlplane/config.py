"""The control plane's settings: listener, thresholds and timers, validated.

Defaults match DESIGN.md.  One name per setting, used as the key in
``server.toml``, as ``FLEET_SERVER_<NAME>`` in the environment and in
``fleet server --set NAME=VALUE``; :mod:`controlplane.config_load` reads those
sources, in that order of precedence (flags > environment > file > defaults).

Timers (``*_s``) are seconds: a number, or a duration with a unit (``"30s"``,
``"5m"``, ``"500ms"``); ``*_ms`` settings are milliseconds, or a duration.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import Field, FilePath, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from fleet.units import parse_duration

from .defaults import (
    DEFAULT_HEARTBEAT_INTERVAL_S,
    DEFAULT_HOST,
    DEFAULT_LOG_LEVEL,
    DEFAULT_PORT,
    ENV_PREFIX,
    LOG_LEVELS,
)
from .notify.receivers import Receiver

__all__ = ["Settings"]

_DNS_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*\.?")


def _san(name: str) -> str:
    """``name`` if it can go in a certificate: an IP address or a DNS name (one rule,
    :func:`controlplane.server_cert.check_san`, for the flag, the file and the env)."""
    from .server_cert import check_san

    return check_san(name)


class Settings(BaseSettings):
    """Every setting of ``fleet server`` (docs/server.md lists them)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
        allow_inf_nan=False,
    )

    # listener ----------------------------------------------------------------
    host: str = Field(
        DEFAULT_HOST, min_length=1, description="Address to listen on (0.0.0.0 or :: for all)."
    )
    port: int = Field(DEFAULT_PORT, ge=0, le=65535, description="API port; 0 picks a free one.")
    agent_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="The agents' channel port; unset: the one recorded in the data dir, "
        "else port + 1 (with port 0, a free one).",
    )
    public_agent_port: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="The channel port agents are told to dial (at enrollment), when a load "
        "balancer publishes the agent port on another one; unset: agent_port.",
    )
    tls: bool = Field(
        True, description="Serve TLS; false only behind a TLS-terminating proxy you control."
    )
    san: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra names (DNS names, IP addresses) for the server's certificate, "
        "besides host, localhost, 127.0.0.1 and ::1. A list; comma-separated in the "
        "environment and in --set.",
    )
    tls_cert: FilePath | None = Field(
        None, description="Serve this PEM certificate (chain) from your PKI instead of the CA's."
    )
    tls_key: FilePath | None = Field(None, description="The private key of tls_cert (PEM).")
    log_level: str = Field(DEFAULT_LOG_LEVEL, description=f"One of {', '.join(LOG_LEVELS)}.")

    # presence ----------------------------------------------------------------
    heartbeat_interval_s: float = Field(
        DEFAULT_HEARTBEAT_INTERVAL_S, gt=0, description="Agents send a heartbeat this often."
    )
    channel_keepalive_s: float = Field(
        20.0,
        gt=0,
        le=20.0,
        description="Agents ping their channel this often (at most every 20 s): set it below "
        "the idle timeout of any load balancer or NAT on the path (HAProxy's timeout "
        "tunnel, say) so that a quiet channel is never cut.",
    )
    stale_after_intervals: float = Field(
        3.0, gt=0, description="An agent is stale when no heartbeat came for this many intervals."
    )
    offline_after_stale_s: float = Field(
        60.0, ge=0, description="A stale agent becomes offline after this long."
    )
    restart_grace_s: float = Field(
        30.0,
        ge=0,
        description="After a restart, absence (stale, offline, unroutable, pool minimum) is "
        "neither alerted nor cleared before this: open alerts stay as stored. Also after a "
        "pause of the server (a gap of 5 ticks), at least the stale threshold.",
    )
    tick_s: float = Field(1.0, gt=0, description="How often presence timers are evaluated.")

    # alert thresholds --------------------------------------------------------
    skew_warn_ms: float = Field(1_000.0, gt=0, description="Clock skew that raises a warning.")
    skew_critical_ms: float = Field(
        30_000.0, gt=0, description="Clock skew that is critical (at least skew_warn_ms)."
    )
    cert_warn_s: float = Field(
        6 * 3600.0,
        gt=0,
        description="Warn when a certificate expires within this window (renewal is overdue).",
    )
    queue_warn: int = Field(100, ge=1, description="An agent's command queue this long warns.")
    alert_hold_s: float = Field(
        180.0,
        ge=0,
        description="Hysteresis: an alert on presence, routes, skew or queues stays open this "
        "long after its check passes; failing again within it counts a flap instead of a new "
        "alert. 0 clears at once.",
    )
    silence_max_s: float = Field(
        7 * 86400.0,
        gt=0,
        description="The longest silence, maintenance window or acknowledgement expiry an "
        "operator may set (and the furthest ahead one may start); longer is refused.",
    )
    schedule_lead_s: float = Field(
        900.0,
        gt=0,
        description="A connection with a schedule run due within this is checked for a route: "
        "with no healthy agent in its pools it raises connection_at_risk (critical).",
    )

    # certificates, commands ---------------------------------------------------
    cert_lifetime_s: float = Field(
        24 * 3600.0, gt=0, description="Lifetime of the agents' certificates."
    )
    time_probe_interval_s: float = Field(
        30.0, gt=0, description="How often each agent's clock is compared with the server's."
    )
    auth_timeout_s: float = Field(
        10.0, gt=0, description="An agent must authenticate within this after connecting."
    )
    command_timeout_s: float = Field(
        15.0, gt=0, description="How long the API waits for an agent's command reply."
    )

    # upgrades -----------------------------------------------------------------
    release_max_bytes: int = Field(
        64 << 20,
        ge=1 << 16,
        description="Largest agent release (a wheel) an admin may upload; larger ones get 413.",
    )
    upgrade_deadline_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="An upgraded agent must connect and send healthy heartbeats within this, "
        "or it switches back to its previous version by itself.",
    )
    upgrade_token_ttl_s: float = Field(
        3600.0,
        gt=0,
        description="How long the token an agent gets to download a release stays valid.",
    )
    upgrade_margin_s: float = Field(
        120.0,
        ge=0,
        description="Time for the download and the restart, added to upgrade_deadline_s: an "
        "upgrade not finished by then counts as failed (a rollout halts on it).",
    )
    rollout_tick_s: float = Field(
        1.0,
        gt=0,
        le=60,
        description="How often rollouts and the pin reconciler look at the fleet.",
    )
    rollouts_kept: int = Field(
        20,
        ge=1,
        description="Finished rollouts kept per pool (the newest; each holds every agent's "
        "steps): older ones are deleted, and their audit rows stay.",
    )
    rollout_gate_margin: float = Field(
        0.1,
        ge=0,
        le=1,
        description="How much worse the upgraded agents may do than the rest of their pool on "
        "each health signal (a share: of time away or degraded, of agents restarted) before "
        "the gate halts the rollout and rolls them back.",
    )
    pin_upgrades_per_pool: int = Field(
        1,
        ge=1,
        description="Agents of one pool the reconciler upgrades at a time to the pool's "
        "pinned version (an agent's own pin upgrades it at once; a rollout is the gated way "
        "to move a whole pool).",
    )

    # remediation (docs/api.md, "Remediation") ---------------------------------
    remediation_min_check_s: float = Field(
        5.0,
        gt=0,
        description="Shortest check interval a pool's remediation policy may ask for; a "
        "shorter one is refused (400).",
    )
    remediation_pending_ttl_s: float = Field(
        86400.0,
        gt=0,
        description="A remediation waiting for approval expires unapproved after this "
        "(state expired).",
    )
    remediation_verify_s: float = Field(
        120.0,
        gt=0,
        description="A restarted or rolled-back agent must be back (connected, heartbeating, "
        "with a fresh uptime) within this, or its remediation fails.",
    )
    remediation_history: int = Field(
        200,
        ge=1,
        description="Finished remediations kept (shown, stored) besides pending and running "
        "ones; older ones go once out of the budgets' hour.",
    )

    # store (docs/server.md, "The database and its schema") ---------------------
    store: str = Field(
        "",
        description="Where the fleet's state is kept: empty for SQLite in the data directory "
        "(fleet.db), or a PostgreSQL database, postgresql://USER@HOST:PORT/DATABASE. No "
        "password in it on the command line: PGPASSWORD, ~/.pgpass or store_password_file.",
    )
    store_password_file: FilePath | None = Field(
        None,
        description="A file (mode 0600) holding the PostgreSQL password of store; unset: "
        "PGPASSWORD or ~/.pgpass, as libpq.",
    )
    store_pool_size: int = Field(
        10,
        ge=1,
        le=1000,
        description="Connections to PostgreSQL this control plane keeps at most; every "
        "replica's pool together must stay under the server's max_connections.",
    )

    # memory and storage -------------------------------------------------------
    heap_trim_s: float = Field(
        30.0,
        gt=0,
        description="Seconds between returns of freed heap memory to the system (glibc).",
    )
    history_len: int = Field(60, ge=1, description="Samples per agent kept for sparklines.")
    flush_interval_s: float = Field(
        10.0,
        gt=0,
        description="Write-behind: how often changed agents' status is flushed to the "
        "store, in one batch (what a crash can lose). Alerts are stored before they are "
        "published, not behind.",
    )
    subscriber_buffer: int = Field(
        2_000, ge=1, description="Deltas a subscriber may have pending before a fresh snapshot."
    )
    replay_len: int = Field(10_000, ge=1, description="Deltas kept for since=SEQ resumption.")
    stream_heartbeat_s: float = Field(
        5.0,
        gt=0,
        description="How often the event stream sends a heartbeat; a dashboard that misses "
        "two says the server is not answering.",
    )

    replica_dead_s: float = Field(
        5.0,
        gt=1.0,
        description="With replicas on PostgreSQL: a replica not heard from for this long is "
        "gone, and nobody holds its agents until they reconnect to another (their presence "
        "is judged from their last heartbeat meanwhile, so a failover does not page).",
    )

    # metrics ------------------------------------------------------------------
    metrics_token_file: FilePath | None = Field(
        None,
        description="A file (mode 0600) holding the scrape token Prometheus sends as its "
        "bearer token to GET /metrics; read again when it changes. Unset: only API tokens "
        "(any role) may scrape.",
    )

    # limits (docs/server.md, "Limits") ----------------------------------------
    agent_message_rate: float = Field(
        20.0,
        gt=0,
        description="Messages a second an agent may send on its channel, on average "
        "(it sends about one every heartbeat interval); more closes its channel "
        "(close code 4010).",
    )
    agent_message_burst: int = Field(
        200, ge=1, description="Messages an agent may send at once above agent_message_rate."
    )
    stream_message_rate: float = Field(
        2.0,
        gt=0,
        description="Frames a second an event-stream client may send after subscribing "
        "(dashboards send none); more closes the stream (close code 4010).",
    )
    stream_message_burst: int = Field(
        20, ge=1, description="Frames a stream client may send at once above the rate."
    )
    max_body_bytes: int = Field(
        1_048_576,
        ge=1024,
        description="Largest REST request body; a larger one is answered 413 before it is read.",
    )
    body_rate_per_address: int = Field(
        8_388_608,
        ge=0,
        description="Bytes per second of REST request bodies one source address may send "
        "(a second's worth at once); past it its bodies are read more slowly, not refused. "
        "0: no limit.",
    )
    auth_failures: int = Field(
        20,
        ge=1,
        description="Failed enrollments or authentications (API tokens, agents) one source "
        "address may make per auth_failure_window_s; then 429 (or close code 4010).",
    )
    auth_failure_window_s: float = Field(
        60.0,
        gt=0,
        description="The window of auth_failures; refusals anyone could repeat are audited "
        "as one row per source and window, with their count.",
    )
    pending_connections: int = Field(
        256,
        ge=1,
        description="Connections one source address may hold before they authenticate, "
        "counted apart in three stages: before their request (or websocket upgrade) is read, "
        "REST requests whose body is being read, websockets before auth or subscribe; more "
        "are refused at once.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A connection to the API port must send a request's complete headers "
        "within this after it opens (after TLS), and again after each answer; else it is "
        "closed (408 if it had sent part of them).",
    )
    tls_handshake_timeout_s: float = Field(
        10.0,
        gt=0,
        description="A connection to the API port must finish its TLS handshake within this, "
        "else it is closed (the event loop's default is 60 s: a slow handshake held a "
        "connection that long). The agents' port allows 30 s: in a reconnect storm a "
        "handshake waits its turn.",
    )
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A REST request's body must arrive whole within this after its headers "
        "(a body trickled in byte by byte held its connection for ever); else 408. Release "
        "uploads, from an authenticated admin, are not bound by it.",
    )

    # notifications (docs/server.md, "Notifications") ---------------------------
    receivers: list[Receiver] = Field(
        default_factory=list,
        description="Where alerts are delivered: [[receivers]] tables with name, kind "
        "(alertmanager, webhook or slack), url and, for a webhook, secret_file (0600).",
    )
    notify_queue: int = Field(
        1_000,
        ge=1,
        description="Notifications a receiver may have waiting; past it the "
        "oldest is dropped and counted.",
    )
    notify_timeout_s: float = Field(10.0, gt=0, description="Timeout of one delivery attempt.")
    notify_retries: int = Field(
        5, ge=0, description="Attempts after the first before a notification is given up."
    )
    notify_backoff_s: float = Field(
        1.0, gt=0, description="First retry delay; doubles each time, with full jitter."
    )
    notify_backoff_max_s: float = Field(60.0, gt=0, description="Longest retry delay.")
    notify_resend_s: float = Field(
        60.0,
        gt=0,
        description="Firing alerts are re-sent to Alertmanager this often (it expects "
        "it of its clients, or resolves them itself).",
    )
    notify_repeat_s: float = Field(
        4 * 3600.0,
        ge=0,
        description="A webhook or Slack receiver hears again of an alert still firing "
        "(and not acknowledged) this often; 0 never.",
    )
    notify_instance: str = Field(
        "fleet",
        min_length=1,
        description="The fleet label on every alert sent to Alertmanager: tells this "
        "control plane's alerts from another's.",
    )
    runbook_url: str = Field(
        "docs/oncall.md",
        min_length=1,
        description="The on-call guide; each alert links to its kind's anchor there "
        "(runbook_url#KIND). Set it to where your team reads docs/oncall.md.",
    )
    public_url: str = Field(
        "",
        description="This control plane's URL as on-call reaches it, for the links in "
        "alerts (generatorURL); empty: the listening endpoint.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # ``Settings(...)`` validates exactly what it is given: the file and the
        # environment are read by config_load, which records where each value
        # came from (for --print-config and for error messages).
        return (init_settings,)

    @field_validator("*", mode="before")
    @classmethod
    def _durations(cls, value: Any, info: ValidationInfo) -> Any:
        name = str(info.field_name)
        if isinstance(value, bool) and cls.model_fields[name].annotation in (
            int,
            float,
            int | None,
        ):
            # pydantic would read true as 1: in a config file that is a mistake.
            raise ValueError(f"must be a number, not {str(value).lower()}")
        if isinstance(value, str) and name.endswith(("_s", "_ms")):
            text = value.strip()
            try:
                return float(text)
            except ValueError:
                seconds = parse_duration(text)
                return seconds * 1000 if name.endswith("_ms") else seconds
        return value

    @field_validator("san", mode="before")
    @classmethod
    def _split_names(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("san")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(_san(name.strip()) for name in value))

    @field_validator("tls_cert", "tls_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("metrics_token_file", mode="before")
    @classmethod
    def _empty_token_file_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("metrics_token_file")
    @classmethod
    def _private_token(cls, value: Path | None) -> Path | None:
        if value is not None:
            from .scrape_token import read_scrape_token

            try:
                read_scrape_token(value)
            except (OSError, ValueError) as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("store")
    @classmethod
    def _store_url(cls, value: str) -> str:
        from .store.dsn import check_store_url

        return check_store_url(value)

    @field_validator("store_password_file", mode="before")
    @classmethod
    def _empty_password_file_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("store_password_file")
    @classmethod
    def _private_password(cls, value: Path | None) -> Path | None:
        if value is not None:
            from fleet.files import check_private

            try:
                check_private(value)
            except OSError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("agent_port", "public_agent_port", mode="before")
    @classmethod
    def _empty_port_is_unset(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in LOG_LEVELS:
            return value.strip().lower()
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both, or neither")
        if self.tls_cert is not None and not self.tls:
            raise ValueError("tls_cert is set but tls is false: drop one of them")
        names = [r.name for r in self.receivers]
        doubled = sorted({n for n in names if names.count(n) > 1})
        if doubled:
            raise ValueError(f"receivers: each needs its own name; {', '.join(doubled)} repeat")
        if self.store_password_file is not None and not self.store:
            raise ValueError("store_password_file is set but store is not a PostgreSQL URL")
        if self.skew_critical_ms < self.skew_warn_ms:
            raise ValueError("skew_critical_ms must be at least skew_warn_ms")
        return self
