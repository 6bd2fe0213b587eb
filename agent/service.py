"""``fleet agent install-service``: the systemd unit, its settings and the token credential.

Three files, plus the agent's settings file when there is none yet::

    UNIT_DIR/fleet-agent.service   the unit (agent/fleet-agent.service.in, filled in)
    CONFIG_DIR/agent.env           FLEET_SERVER and FLEET_CA_PIN (not secrets), 0644
    CONFIG_DIR/enroll-token        the enrollment token, 0600, owned by the installer
                                   (root): systemd hands it to the service through
                                   LoadCredential=, so it is never in the unit, the
                                   environment, a command line or the journal
    CONFIG_DIR/agent.toml          empty settings, only if missing

``plan_install`` checks everything and decides the files; ``describe`` shows them
(``--dry-run``) and ``apply`` writes them, each atomically with its mode set before
its content.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from agent.errors import ConfigError, InstallError
from fleet import __version__
from fleet.files import write_atomic
from fleet.pins import check_pin_text

__all__ = [
    "UNIT_NAME",
    "PlannedFile",
    "ServiceOptions",
    "ServicePlan",
    "apply",
    "describe",
    "fleet_command",
    "plan_install",
    "render_unit",
    "unit_template",
]

UNIT_NAME = "fleet-agent.service"
"""The unit's file name, and the name ``systemctl`` knows it by."""

_TEMPLATE = "fleet-agent.service.in"
_PLACEHOLDER = re.compile(r"@[A-Z_]+@")
_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._+/-]*$")
_SAFE_USER = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}$")
_SAFE_URL = re.compile(r"^https://[^\s\"'\\$`%]+$")
_STATE_ROOT = Path("/var/lib")


@dataclass(frozen=True)
class ServiceOptions:
    """What ``fleet agent install-service`` was asked to do."""

    user: str = "fleet-agent"
    state_dir: Path = Path("/var/lib/fleet-agent")
    config_dir: Path = Path("/etc/fleet-agent")
    unit_dir: Path = Path("/etc/systemd/system")
    server: str | None = None
    ca_pin: str | None = None
    token_file: Path | None = None


@dataclass(frozen=True)
class PlannedFile:
    """One file to write: where, with which mode, and what."""

    path: Path
    mode: int
    content: str
    secret: bool = False
    """Never printed: the enrollment token."""
    only_if_missing: bool = False
    """Settings the operator may have edited: left alone when present."""
    origin: str = ""
    """Where a secret comes from, for the dry run."""


@dataclass(frozen=True)
class ServicePlan:
    """The files to write, and what the operator does next."""

    files: list[PlannedFile]
    next_steps: list[str] = field(default_factory=list)


def unit_template() -> str:
    """The unit shipped in the wheel, with its ``@NAME@`` placeholders."""
    return resources.files("agent").joinpath(_TEMPLATE).read_text(encoding="utf-8")


def fleet_command() -> list[str]:
    """The absolute command that runs this install's ``fleet``.

    The script that was run (``sys.argv[0]``) when it is ``fleet``; else the
    ``fleet`` script next to this interpreter (a virtualenv's ``bin/``); else the
    one on ``PATH``; else this interpreter with ``-m fleet``.
    """
    argv0 = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if argv0 is not None and argv0.name == "fleet" and _executable(argv0):
        return [str(argv0.absolute())]
    beside = Path(sys.executable).parent / "fleet"
    if _executable(beside):
        return [str(beside.absolute())]
    found = shutil.which("fleet")
    if found:
        return [str(Path(found).absolute())]
    return [str(Path(sys.executable).absolute()), "-m", "fleet"]


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def render_unit(
    *, fleet: list[str], user: str, group: str, state_dir: Path, config_dir: Path
) -> str:
    """The unit for these values (checked by :func:`plan_install`)."""
    values = {
        "@VERSION@": __version__,
        "@FLEET@": " ".join(fleet),
        "@USER@": user,
        "@GROUP@": group,
        "@STATE_DIR@": str(state_dir),
        "@STATE_DIRECTORY@": str(state_dir.relative_to(_STATE_ROOT)),
        "@CONFIG_DIR@": str(config_dir),
    }
    return _PLACEHOLDER.sub(lambda m: values[m.group(0)], unit_template())


def plan_install(options: ServiceOptions, fleet: list[str] | None = None) -> ServicePlan:
    """Check ``options`` and decide what to write.

    Args:
        options: the command's options.
        fleet: the command that runs ``fleet`` (default: :func:`fleet_command`).

    Raises:
        ConfigError: an option is invalid or a needed file is missing; the message
            says which and what to do.
    """
    fleet = fleet or fleet_command()
    _check_path(Path(fleet[0]), "the fleet executable (install it under a plain path, /opt/fleet)")
    group = _group_of(options.user)
    state_dir = _state_dir(options.state_dir)
    config_dir = _check_path(options.config_dir, "--config-dir")
    unit_dir = _check_path(options.unit_dir, "--unit-dir")
    env_path = config_dir / "agent.env"
    token_path = config_dir / "enroll-token"
    unit = render_unit(
        fleet=fleet, user=options.user, group=group, state_dir=state_dir, config_dir=config_dir
    )
    files = [PlannedFile(unit_dir / UNIT_NAME, 0o644, unit)]
    enrollment = (options.server, options.ca_pin, options.token_file)
    if options.server is not None and options.ca_pin is not None and options.token_file is not None:
        files.append(PlannedFile(env_path, 0o644, _env_file(options.server, options.ca_pin)))
        token = _read_token(options.token_file)
        files.append(
            PlannedFile(
                token_path, 0o600, token + "\n", secret=True, origin=str(options.token_file)
            )
        )
    elif any(value is not None for value in enrollment):
        raise ConfigError(
            "give --server, --ca-pin and --token-file together (or none of them, "
            f"to keep {env_path} and {token_path} as they are)"
        )
    else:
        missing = [str(p) for p in (env_path, token_path) if not p.exists()]
        if missing:
            raise ConfigError(
                f"{' and '.join(missing)} missing: the first install needs "
                "--server URL --ca-pin sha256:... --token-file FILE "
                "(as printed by `fleet token create`)"
            )
    files.append(
        PlannedFile(
            config_dir / "agent.toml",
            0o644,
            "# Settings of `fleet agent run` (probe allow-list, samples, ...): "
            "see docs/agent.md.\n",
            only_if_missing=True,
        )
    )
    steps = [
        "systemctl daemon-reload",
        f"systemctl enable --now {UNIT_NAME.removesuffix('.service')}",
    ]
    if options.token_file is not None:
        steps.append(f"shred -u {options.token_file}   # the token now lives in {token_path}")
    return ServicePlan(files, steps)


def _check_path(path: Path, what: str) -> Path:
    text = os.path.normpath(str(path))
    if not path.is_absolute() or not _SAFE_PATH.match(text):
        raise ConfigError(
            f"{what} must be an absolute path of letters, digits and ._+-/ "
            f"(systemd would read anything else as syntax), not {str(path)!r}"
        )
    return Path(text)


def _state_dir(path: Path) -> Path:
    state_dir = _check_path(path, "--state-dir")
    if not state_dir.is_relative_to(_STATE_ROOT) or state_dir == _STATE_ROOT:
        raise ConfigError(
            f"--state-dir must be under {_STATE_ROOT} (systemd creates it there, owned by "
            f"the service's user, mode 0700: StateDirectory=), not {str(path)!r}"
        )
    return state_dir


def _group_of(user: str) -> str:
    if not _SAFE_USER.match(user):
        raise ConfigError(f"--user {user!r} is not a valid user name")
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(
            f"there is no user {user!r} to run the agent as. Create it with:  "
            f"useradd --system --no-create-home --shell /usr/sbin/nologin {user}"
        ) from None
    import grp

    try:
        return grp.getgrgid(entry.pw_gid).gr_name
    except KeyError:
        return str(entry.pw_gid)


def _env_file(server: str, ca_pin: str) -> str:
    if not _SAFE_URL.match(server):
        raise ConfigError(f"--server must be an https:// URL, not {server!r}")
    try:
        ca_pin = check_pin_text(ca_pin)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return (
        f"# Where {UNIT_NAME} enrolls (not secrets). FLEET_AGENT_* settings may follow.\n"
        f"FLEET_SERVER={server}\n"
        f"FLEET_CA_PIN={ca_pin}\n"
    )


def _read_token(token_file: Path) -> str:
    try:
        token = token_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {token_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"the token file {token_file} is not text") from None
    if not token or any(ch.isspace() for ch in token):
        raise ConfigError(
            f"the token file {token_file} must hold one enrollment token (flte_...) on one line"
        )
    return token


def describe(plan: ServicePlan) -> str:
    """What :func:`apply` would write, secrets left out (``--dry-run``)."""
    try:
        owner = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        owner = f"uid {os.getuid()}"
    out: list[str] = []
    for planned in plan.files:
        head = f"# --- {planned.path} ({planned.mode:04o}"
        if planned.secret:
            out.append(f"{head}, owner {owner}): the token from {planned.origin}, not shown ---")
        elif planned.only_if_missing and planned.path.exists():
            out.append(f"# --- {planned.path} exists: left as it is ---")
        else:
            out.append(f"{head}) ---")
            out.append(planned.content.rstrip("\n"))
    out.append("# --- then ---")
    out.extend(plan.next_steps)
    return "\n".join(out) + "\n"


def apply(plan: ServicePlan) -> list[str]:
    """Write the planned files; returns one line per file, then the next steps.

    Raises:
        InstallError: a file could not be written (most often: not run as root).
    """
    done: list[str] = []
    for planned in plan.files:
        if planned.only_if_missing and planned.path.exists():
            done.append(f"kept {planned.path}")
            continue
        try:
            _write(planned.path, planned.content, planned.mode)
        except OSError as exc:
            raise InstallError(
                f"cannot write {planned.path}: {exc.strerror}. Run it as root "
                "(sudo fleet agent install-service ...), or choose --unit-dir and "
                "--config-dir you can write"
            ) from None
        done.append(f"wrote {planned.path} ({planned.mode:04o})")
    return done + ["next:"] + [f"  {step}" for step in plan.next_steps]


def _write(path: Path, content: str, mode: int) -> None:
    """Write atomically (:func:`fleet.files.write_atomic`), making the directory first."""
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    write_atomic(path, content.encode("utf-8"), mode)
