"""Read the server's settings from their sources, remembering where each came from.

Precedence, lowest first: defaults, the TOML file (``--config``, by default
``DATA_DIR/server.toml`` when it exists), the environment (``FLEET_SERVER_*``),
flags.  The file and the environment are read with pydantic-settings' own sources;
:class:`~controlplane.config.Settings` validates the merged result.  Every error
names the source, the key, the value and what is allowed, e.g.::

    server.toml: heartbeat_interval_s = -1: must be greater than 0
    server.toml: unknown setting 'hearbeat_interval_s' (did you mean heartbeat_interval_s?)
"""

from __future__ import annotations

import difflib
import json
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import EnvSettingsSource, TomlConfigSettingsSource

from .config import Settings
from .defaults import ENV_PREFIX
from .notify.receivers import Receiver
from .store.dsn import has_password, redact

__all__ = [
    "LoadedSettings",
    "Origin",
    "ServerConfigError",
    "load_settings",
    "render_settings",
    "settings_table",
]

NAMES = tuple(Settings.model_fields)


class ServerConfigError(Exception):
    """The settings cannot be used; each line of the message is one problem."""


@dataclass(frozen=True)
class Origin:
    """Where a setting's value came from.

    Attributes:
        kind: ``default``, ``file``, ``env`` or ``flag``.
        name: the file's path, the variable's name or the flag (``--port``,
            ``--set NAME``); empty for a default.
        raw: the value as that source gave it.
    """

    kind: Literal["default", "file", "env", "flag"]
    name: str
    raw: Any

    def __str__(self) -> str:
        return self.kind if self.kind == "default" else f"{self.kind} {self.name}"

    def describe(self, key: str) -> str:
        """The setting as written in its source: ``server.toml: port = 70000``."""
        raw = shown(key, self.raw)
        if self.kind == "file":
            return f"{self.name}: {key} = {toml_value(raw)}"
        if self.kind == "env":
            return f"environment variable {self.name}={raw}"
        if self.kind == "flag":
            if self.name.startswith("--set "):
                return f"{self.name}={raw}"
            if isinstance(raw, list):  # a repeated flag: --san a --san b
                return " ".join(f"{self.name} {item}" for item in raw)
            return f"{self.name} {raw}"
        return f"{key} = {toml_value(raw)} (the default)"


def shown(key: str, value: Any) -> Any:
    """``value`` as it may be shown: the store's URL without its password."""
    if key == "store" and isinstance(value, str):
        return redact(value)
    return value


@dataclass(frozen=True)
class LoadedSettings:
    """The effective settings and, for each, where it came from."""

    settings: Settings
    origins: dict[str, Origin]
    config_file: Path | None
    """The file that was read, or None."""


def toml_value(value: Any) -> str:
    """``value`` as it would be written in TOML (paths and strings quoted)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, Receiver):
        # Never a receiver's URL as written: it may carry a token.
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.shown().items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


def _unknown(key: str, where: str, spell: Callable[[str], str] = str) -> str:
    close = difflib.get_close_matches(key.lower(), NAMES, n=1)
    hint = f"did you mean {spell(close[0])}?" if close else "known: " + ", ".join(NAMES)
    return f"{where}: unknown setting {spell(key)!r} ({hint})"


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = TomlConfigSettingsSource(Settings, toml_file=path).toml_data
    except tomllib.TOMLDecodeError as exc:
        raise ServerConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ServerConfigError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    problems = [_unknown(key, str(path)) for key in data if key not in NAMES]
    if problems:
        raise ServerConfigError("\n".join(problems))
    return dict(data)


def _env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def _read_env() -> dict[str, tuple[str, Any]]:
    names, problems = {}, []
    for var in os.environ:
        if var.upper().startswith(ENV_PREFIX):
            key = var[len(ENV_PREFIX) :].lower()
            if key in NAMES:
                names[key] = var
            else:
                problems.append(_unknown(key, "environment", _env_name))
    if problems:
        raise ServerConfigError("\n".join(problems))
    source = EnvSettingsSource(Settings, case_sensitive=False, env_prefix=ENV_PREFIX)
    return {key: (names.get(key, _env_name(key)), raw) for key, raw in source().items()}


_ALLOWED = {
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_parsing": "must be a number",
    "float_type": "must be a number",
    "path_not_file": "must be an existing file",
    "string_too_short": "must not be empty",
    "list_type": 'must be a list, e.g. ["cp.example.com", "10.0.0.5"]',
}
"""What is allowed, in words, for pydantic's terser type errors."""


def _message(err: ErrorDetails) -> str:
    allowed = _ALLOWED.get(err["type"])
    if allowed is not None:
        key = str(err["loc"][0]) if err["loc"] else ""
        if allowed == "must be a number" and key.endswith("_s"):
            allowed += " of seconds or a duration like 30s, 5m, 1h"
        elif allowed == "must be a number" and key.endswith("_ms"):
            allowed += " of milliseconds or a duration like 500ms, 2s"
        return allowed
    msg = str(err["msg"])
    msg = msg.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return msg.replace("Input should be ", "must be ", 1)


def _explain(exc: ValidationError, origins: Mapping[str, Origin]) -> str:
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        if len(loc) > 1 and loc[0] == "receivers" and "receivers" in origins:
            # Not the value as written: a receiver's URL may carry a token.
            origin = origins["receivers"]
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
            source = origin.name if origin.kind != "default" else "default"
            lines.append(f"{source}: receivers{path}: {_message(err)}")
        elif loc and isinstance(loc[0], str) and loc[0] in origins:
            key = loc[0]
            lines.append(f"{origins[key].describe(key)}: {_message(err)}")
        else:
            msg = _message(err)
            named = [k for k in NAMES if k in msg.replace(",", " ").replace(":", " ").split()]
            where = "; ".join(f"{k} from {origins[k]}" for k in named if k in origins)
            lines.append(f"{msg} ({where})" if where else msg)
    return "\n".join(lines)


def load_settings(
    config_file: Path | None,
    flags: Mapping[str, tuple[str, Any]],
    *,
    required: bool = False,
) -> LoadedSettings:
    """The effective settings: defaults < ``config_file`` < environment < ``flags``.

    Args:
        config_file: the TOML file; None, or a file that does not exist while not
            ``required``, means none.
        flags: setting name to ``(flag as typed, raw value)``.
        required: the file was asked for by name (``--config``): missing is an error.

    Raises:
        ServerConfigError: an unknown key or a bad value, explained.
    """
    defaults = Settings()
    origins = {k: Origin("default", "", getattr(defaults, k)) for k in NAMES}
    values: dict[str, Any] = {}
    read: Path | None = None
    if config_file is not None and (required or config_file.exists()):
        if not config_file.is_file():
            raise ServerConfigError(
                f"--config {config_file}: no such file; create it, or leave --config out "
                "to use DATA_DIR/server.toml when it exists"
            )
        for key, raw in _read_file(config_file).items():
            values[key], origins[key] = raw, Origin("file", str(config_file), raw)
        read = config_file
    for key, (var, raw) in _read_env().items():
        values[key], origins[key] = raw, Origin("env", var, raw)
    for key, (flag, raw) in flags.items():
        if key not in NAMES:
            raise ServerConfigError(_unknown(key, flag))
        values[key], origins[key] = raw, Origin("flag", flag, raw)
    _refuse_password_in_argv(origins["store"])
    try:
        settings = Settings(**values)
    except ValidationError as exc:
        raise ServerConfigError(_explain(exc, origins)) from None
    return LoadedSettings(settings, origins, read)


def _refuse_password_in_argv(origin: Origin) -> None:
    """Every user of the host can read a process's arguments (ps, /proc)."""
    if origin.kind == "flag" and isinstance(origin.raw, str) and has_password(origin.raw):
        raise ServerConfigError(
            f"{origin.name}: the URL holds a password, which every user of this host can "
            "read in the process list; leave it out of the URL and give it with "
            "PGPASSWORD, ~/.pgpass, or store_password_file (a file of mode 0600)"
        )


def render_settings(loaded: LoadedSettings) -> str:
    """The effective settings as TOML, each with its source in a comment."""
    rows = []
    for key in NAMES:
        value = shown(key, getattr(loaded.settings, key))
        line = f"# {key} = (unset)" if value is None else f"{key} = {toml_value(value)}"
        rows.append((line, str(loaded.origins[key])))
    width = max(len(line) for line, _ in rows)
    return "\n".join(f"{line.ljust(width)}  # {origin}" for line, origin in rows)


def settings_table() -> str:
    """The Markdown table of every setting (docs/server.md holds it; a test compares)."""
    defaults = Settings()
    out = [
        "| Setting | Default | Environment | Meaning |",
        "|---|---|---|---|",
    ]
    for key, field in Settings.model_fields.items():
        value = getattr(defaults, key)
        shown = "unset" if value is None else toml_value(value)
        meaning = (field.description or "").replace("|", "\\|")
        out.append(f"| `{key}` | `{shown}` | `{_env_name(key)}` | {meaning} |")
    return "\n".join(out)
