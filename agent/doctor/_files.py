"""Step 1: the state directory's file modes and owners, and the configuration.

The key is the agent's identity: anyone who can read it can be the agent.  A
configuration file others can write lets them widen the probe allow-list or add
a trusted CA, so it must not be world-writable either.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from pathlib import Path

from agent._der import cert_info, pem_to_der
from agent.config import AgentConfig, find_config_file, load_config
from agent.errors import ConfigError
from agent.state import Identity

from ._report import Report

__all__ = ["check_config", "check_files", "config_file_for"]

_STEP = "files"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _owner_fix(path: Path, uid: int) -> str | None:
    """Whether ``path`` belongs to the agent's user (``uid``); the fix if not."""
    owner = path.stat().st_uid
    if owner == uid:
        return None
    return (
        f"{path} belongs to uid {owner}, not to the agent's user (uid {uid}): "
        f"`chown {uid} {path}`, and run doctor as the agent's user"
    )


def check_files(report: Report, identity: Identity, config_file: Path | None) -> bool:
    """Check the state directory, key, certificates, config and token files.

    Returns:
        Whether ``ca.pem`` holds a certificate (the TLS checks need it).
    """
    state_dir = identity.state_dir
    # The agent's user owns its state directory; doctor may run as root.
    uid = state_dir.stat().st_uid if os.geteuid() == 0 else os.geteuid()
    mode = _mode(state_dir)
    if mode & 0o077:
        report.fail(
            _STEP,
            f"state dir {state_dir} has mode {mode:04o}: other users may list it",
            f"`chmod 700 {state_dir}`",
        )
    else:
        report.ok(_STEP, f"state dir {state_dir} mode {mode:04o}")
    if not identity.key_path.is_file():
        report.fail(_STEP, f"key.pem is missing from {state_dir}", _ENROLL_AGAIN)
    certs_ok = [_check_certificate_file(report, p) for p in (identity.cert_path, identity.ca_path)]
    if identity.key_path.is_file():
        _check_key(report, identity.key_path, uid)
    if config_file is not None and config_file.is_file():
        _check_not_world_writable(report, config_file, "config")
    for token in sorted(state_dir.glob("*token*")):
        _check_secret(report, token, uid, "token file")
    _check_logs(report, identity.log_dir)
    return certs_ok[1]


def _check_logs(report: Report, log_dir: Path) -> None:
    """The agent's own logs are 0600: they are redacted only when they leave the host."""
    readable = [p for p in sorted(log_dir.glob("agent.log*")) if _mode(p) & 0o077]
    if readable:
        names = ", ".join(f"{p.name} ({_mode(p):04o})" for p in readable)
        report.fail(
            _STEP,
            f"logs others may read: {names}",
            f"`chmod 600 {log_dir}/agent.log*`; the agent writes new ones 0600",
        )


_ENROLL_AGAIN = "enroll again: `fleet agent enroll --force --state-dir DIR ...` with a new token"


def _check_certificate_file(report: Report, path: Path) -> bool:
    """Whether ``path`` holds a readable certificate; a FAIL if not."""
    try:
        cert_info(pem_to_der(path.read_text(encoding="ascii")))
    except FileNotFoundError:
        report.fail(_STEP, f"{path.name} is missing from {path.parent}", _ENROLL_AGAIN)
        return False
    except (OSError, ValueError) as exc:
        report.fail(_STEP, f"{path.name} is not a readable certificate ({exc})", _ENROLL_AGAIN)
        return False
    return True


def _check_key(report: Report, key: Path, uid: int) -> None:
    mode = _mode(key)
    owner_fix = _owner_fix(key, uid)
    if mode & 0o077:
        report.fail(
            _STEP,
            f"{key.name} has mode {mode:04o}: other users may read the agent's key",
            f"`chmod 600 {key}`; if others could read it, revoke this agent and enroll again",
        )
    elif owner_fix is not None:
        report.fail(_STEP, f"{key.name} mode {mode:04o} but the wrong owner", owner_fix)
    elif not os.access(key, os.R_OK):
        report.fail(
            _STEP,
            f"{key.name} is not readable by this user (uid {os.geteuid()})",
            "run doctor as the agent's user, e.g. `sudo -u USER fleet agent doctor ...`",
        )
    else:
        report.ok(_STEP, f"{key.name} mode {mode:04o}, owned by uid {uid}")


def _check_secret(report: Report, path: Path, uid: int, what: str) -> None:
    mode = _mode(path)
    if mode & 0o077:
        report.fail(
            _STEP,
            f"{what} {path.name} has mode {mode:04o}: other users may read it",
            f"`chmod 600 {path}`, or delete it: an enrollment token is spent once enrolled",
        )
    else:
        report.ok(_STEP, f"{what} {path.name} mode {mode:04o}")


def _check_not_world_writable(report: Report, path: Path, what: str) -> None:
    mode = _mode(path)
    if mode & 0o002:
        report.fail(
            _STEP,
            f"{what} {path} has mode {mode:04o}: any user may change the agent's settings",
            f"`chmod o-w {path}`",
        )
    else:
        report.ok(_STEP, f"{what} {path.name} mode {mode:04o}")


def config_file_for(explicit: Path | None, state_dir: Path, env: Mapping[str, str]) -> Path | None:
    """The configuration file ``fleet agent run`` would read."""
    return find_config_file(explicit, state_dir, env)


def check_config(report: Report, config_file: Path | None, env: Mapping[str, str]) -> AgentConfig:
    """Parse the configuration as ``fleet agent run`` would.

    Returns:
        The effective configuration; the defaults if it does not parse.
    """
    try:
        config = load_config(file=config_file, env=env, flags={})
    except ConfigError as exc:
        report.fail(
            "config",
            str(exc),
            "correct the setting (`fleet agent run --print-config` shows the result); "
            "the checks below use the defaults",
        )
        return AgentConfig()
    sources = ", ".join(config.sources) or "defaults only"
    report.ok("config", f"settings parse (from {sources}); hash {config.hash()[:15]}")
    if config.extra_ca_file:
        _check_not_world_writable(report, Path(config.extra_ca_file), "extra_ca_file")
    return config
