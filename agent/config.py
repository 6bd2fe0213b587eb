"""The agent's effective configuration: TOML file < ``FLEET_AGENT_*`` < flags.

Each setting has one name, used as the TOML key, as the environment variable
(``FLEET_AGENT_`` + upper case) and as the flag (``--`` + dashes).  Lists are TOML
arrays, or comma-separated in the environment.  A later source replaces a value
from an earlier one, lists included.

The effective configuration is reported to the control plane with secrets
removed, together with :func:`config_hash` of that report, so the control plane
can compare it with the configuration pinned for the agent's pool.
"""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
import json
import tomllib
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "AgentConfig",
    "config_hash",
    "find_config_file",
    "load_config",
    "parse_port_ranges",
]

ENV_PREFIX = "FLEET_AGENT_"
_SECRET_WORDS = ("password", "secret", "token", "api_key", "private")
_REDACTED = "<redacted>"


@dataclass(frozen=True)
class AgentConfig:
    """Every setting of ``fleet agent run``.

    Attributes:
        server: control plane URL; by default the one the agent enrolled with.
        extra_ca_file: PEM bundle trusted besides the enrolled CA, for networks
            whose proxies inspect TLS.
        proxy: proxy URL for the channel; by default ``HTTPS_PROXY``/``NO_PROXY``.
        samples: report CPU and memory samples (psutil) in heartbeats.
        max_concurrency: commands run at the same time.
        max_queue: commands waiting or running before new ones get ``busy``.
        command_timeout_s: upper bound on any command's run time.
        allow_hosts: host name globs a probe may target (``*.db.internal``).
        allow_cidrs: networks a probe may target (``10.0.0.0/8``).
        allow_ports: ports or ranges a probe may target (``443``, ``5432-5439``).
        log_level: ``debug``, ``info``, ``warning`` or ``error``.
        log_max_bytes: size of the log file before it rotates.
        log_backups: rotated log files kept.
        log_ring_lines: log lines kept in memory.
        upgrade_driver: how an ``upgrade`` command installs a version: ``release``
            (download, verify and unpack the control plane's release) or ``command``
            (run :attr:`upgrade_command`).
        upgrade_command: the argv the ``command`` driver runs (absolute path first,
            no shell); ``{version}`` in an argument becomes the version.
        upgrade_command_timeout_s: longest the upgrade command may run.
        upgrade_busy_queue: an upgrade is refused (``busy``) while more than this
            many other commands are pending.
    """

    server: str | None = None
    extra_ca_file: str | None = None
    proxy: str | None = None
    samples: bool = True
    max_concurrency: int = 2
    max_queue: int = 16
    command_timeout_s: float = 60.0
    allow_hosts: tuple[str, ...] = ()
    allow_cidrs: tuple[str, ...] = ()
    allow_ports: tuple[str, ...] = ()
    log_level: str = "info"
    log_max_bytes: int = 1 << 20
    log_backups: int = 3
    log_ring_lines: int = 2000
    upgrade_driver: str = "release"
    upgrade_command: tuple[str, ...] = ()
    upgrade_command_timeout_s: float = 600.0
    upgrade_busy_queue: int = 2
    sources: tuple[str, ...] = field(default=(), compare=False)
    """Where the settings came from, for the log (not part of the report)."""

    def report(self) -> dict[str, Any]:
        """The effective configuration with secrets removed, as JSON-ready data."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            out[f.name] = _scrub(f.name, value)
        return out

    def hash(self) -> str:
        """:func:`config_hash` of :meth:`report`."""
        return config_hash(self.report())


def config_hash(report: Mapping[str, Any]) -> str:
    """``sha256:`` + hex SHA-256 of the canonical JSON of a configuration report.

    Canonical JSON: keys sorted, separators ``,`` and ``:``, UTF-8, no NaN.
    The control plane hashes a pinned configuration the same way.
    """
    canonical = json.dumps(
        report, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _scrub(name: str, value: Any) -> Any:
    if value is None:
        return None
    if any(word in name for word in _SECRET_WORDS):
        return _REDACTED
    if isinstance(value, str) and "://" in value:
        parts = urllib.parse.urlsplit(value)
        if parts.password is not None:
            host = parts.hostname or ""
            port = f":{parts.port}" if parts.port else ""
            user = parts.username or ""
            value = parts._replace(netloc=f"{user}:{_REDACTED}@{host}{port}").geturl()
    return value


# --------------------------------------------------------------------------
# Parsing and validation

_FIELDS = {f.name: f for f in dataclasses.fields(AgentConfig) if f.name != "sources"}
_LIST_FIELDS = {"allow_hosts", "allow_cidrs", "allow_ports", "upgrade_command"}
_UPGRADE_DRIVERS = ("release", "command")
_BOOL_WORDS = {"1": True, "true": True, "yes": True, "on": True}
_BOOL_WORDS |= {"0": False, "false": False, "no": False, "off": False}
_LOG_LEVELS = ("debug", "info", "warning", "error")


def parse_port_ranges(items: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Parse ``("443", "8000-8100")`` into inclusive ranges.

    Raises:
        ConfigError: an item is not a port or a range of ports.
    """
    out = []
    for item in items:
        text = str(item).strip()
        low_s, sep, high_s = text.partition("-")
        try:
            low = int(low_s)
            high = int(high_s) if sep else low
        except ValueError:
            raise ConfigError(
                f"allow_ports: {text!r} is not a port or a range like 5432-5439"
            ) from None
        if not 1 <= low <= high <= 65535:
            raise ConfigError(f"allow_ports: {text!r} must lie within 1-65535, low before high")
        out.append((low, high))
    return tuple(out)


def _coerce(name: str, value: Any, source: str) -> Any:
    """Turn a raw value from a source into the field's type, or raise ConfigError."""
    where = f"{name} (from {source})"
    if name in _LIST_FIELDS:
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where} must be a list")
        return tuple(str(v).strip() for v in value)
    kind = {"samples": bool, "max_concurrency": int, "max_queue": int}.get(name)
    if name in ("log_max_bytes", "log_backups", "log_ring_lines", "upgrade_busy_queue"):
        kind = int
    if name in ("command_timeout_s", "upgrade_command_timeout_s"):
        kind = float
    if kind is bool:
        if isinstance(value, bool):
            return value
        word = str(value).strip().lower()
        if word not in _BOOL_WORDS:
            raise ConfigError(f"{where} must be true or false, not {value!r}")
        return _BOOL_WORDS[word]
    if kind is int or kind is float:
        if isinstance(value, bool):
            raise ConfigError(f"{where} must be a number")
        try:
            return kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where} must be a number, not {value!r}") from None
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string")
    return value.strip() or None


def _validate(cfg: AgentConfig) -> None:
    if cfg.max_concurrency < 1 or cfg.max_queue < cfg.max_concurrency:
        raise ConfigError("max_concurrency must be at least 1 and max_queue at least as large")
    if not 0 < cfg.command_timeout_s <= 3600:
        raise ConfigError("command_timeout_s must be between 0 and 3600 seconds")
    if cfg.log_level not in _LOG_LEVELS:
        raise ConfigError(f"log_level must be one of {', '.join(_LOG_LEVELS)}")
    if cfg.log_max_bytes < 4096 or cfg.log_backups < 0 or cfg.log_ring_lines < 10:
        raise ConfigError("log_max_bytes >= 4096, log_backups >= 0, log_ring_lines >= 10")
    for cidr in cfg.allow_cidrs:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            raise ConfigError(f"allow_cidrs: {cidr!r} is not a network like 10.0.0.0/8") from None
    parse_port_ranges(cfg.allow_ports)
    _validate_upgrades(cfg)
    if cfg.server is not None and not cfg.server.startswith("https://"):
        raise ConfigError(f"server must be an https:// URL, not {cfg.server!r}")
    if cfg.extra_ca_file is not None and not Path(cfg.extra_ca_file).is_file():
        raise ConfigError(f"extra_ca_file {cfg.extra_ca_file!r} does not exist")


def _validate_upgrades(cfg: AgentConfig) -> None:
    if cfg.upgrade_driver not in _UPGRADE_DRIVERS:
        raise ConfigError(f"upgrade_driver must be one of {', '.join(_UPGRADE_DRIVERS)}")
    if cfg.upgrade_driver == "command" and not cfg.upgrade_command:
        raise ConfigError(
            'upgrade_driver "command" needs upgrade_command, e.g. '
            '["/usr/local/sbin/upgrade-fleet-agent", "{version}"]'
        )
    if cfg.upgrade_command and not Path(cfg.upgrade_command[0]).is_absolute():
        raise ConfigError(
            f"upgrade_command must start with an absolute path (it runs without a shell "
            f"or PATH lookup), not {cfg.upgrade_command[0]!r}"
        )
    if not 0 < cfg.upgrade_command_timeout_s <= 86400:
        raise ConfigError("upgrade_command_timeout_s must be between 0 and 86400 seconds")
    if cfg.upgrade_busy_queue < 0:
        raise ConfigError("upgrade_busy_queue must be 0 or more")


def _flag_name(name: str) -> str:
    """``allow_hosts`` -> ``--allow-host`` (list flags repeat); ``max_queue`` -> ``--max-queue``."""
    if name in _LIST_FIELDS:
        name = name.removesuffix("s")
    return "--" + name.replace("_", "-")


def find_config_file(explicit: Path | None, state_dir: Path, env: Mapping[str, str]) -> Path | None:
    """The TOML file ``fleet agent run`` reads: ``--config``, else ``FLEET_AGENT_CONFIG``,
    else ``STATE_DIR/agent.toml`` if it exists, else none."""
    if explicit is not None:
        return explicit
    if env.get("FLEET_AGENT_CONFIG"):
        return Path(env["FLEET_AGENT_CONFIG"])
    default = state_dir / "agent.toml"
    return default if default.is_file() else None


def load_config(
    *,
    file: Path | None,
    env: Mapping[str, str],
    flags: Mapping[str, Any],
) -> AgentConfig:
    """Merge the TOML file, the environment and the flags, in that order.

    Args:
        file: a TOML file; ``None`` for none.  A missing file is an error.
        env: the environment; only ``FLEET_AGENT_*`` names are read.
        flags: settings given on the command line; ``None`` values are unset.

    Raises:
        ConfigError: unreadable file, unknown key, or invalid value.
    """
    values: dict[str, Any] = {}
    sources: list[str] = []
    if file is not None:
        try:
            raw = tomllib.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"cannot read config file {file}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {file} is not valid TOML: {exc}") from None
        table = raw.get("agent", raw)
        if not isinstance(table, dict):
            raise ConfigError(f"config file {file}: [agent] must be a table")
        for key, value in table.items():
            if key not in _FIELDS:
                known = ", ".join(sorted(_FIELDS))
                raise ConfigError(f"config file {file}: unknown setting {key!r} (known: {known})")
            values[key] = _coerce(key, value, str(file))
        sources.append(str(file))
    for name in _FIELDS:
        env_name = ENV_PREFIX + name.upper()
        if env_name in env:
            values[name] = _coerce(name, env[env_name], env_name)
            sources.append(env_name)
    for name, value in flags.items():
        if value is None:
            continue
        if name not in _FIELDS:
            raise ConfigError(f"unknown setting {name!r}")
        flag = _flag_name(name)
        values[name] = _coerce(name, value, flag)
        sources.append(flag)
    if isinstance(values.get("log_level"), str):
        values["log_level"] = values["log_level"].lower()
    cfg = AgentConfig(**values, sources=tuple(sources))
    _validate(cfg)
    return cfg
