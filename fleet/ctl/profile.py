"""Where the admin CLI finds its control plane: flags, environment, profile, data dir.

Each of the server URL, the CA file and the API token is taken from the first of:

1. flags: ``--server``, ``--ca-file``, ``--token-file``;
2. environment: ``FLEET_SERVER``, ``FLEET_CA_FILE``, ``FLEET_TOKEN_FILE`` (or the
   token itself in ``FLEET_TOKEN``);
3. the profile written by ``fleet login``: ``$XDG_CONFIG_HOME/fleet/config.toml``
   (``~/.config/fleet/config.toml``), the token beside it in ``token`` (both 0600);
4. the control plane's data directory, on the server host: ``--data-dir`` (or
   ``FLEET_DATA_DIR``, else ``./fleet-data``) holds ``endpoint``, ``admin.token``
   and ``ca.pem``.
"""

from __future__ import annotations

import contextlib
import json
import stat
import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..files import write_private
from .errors import UsageError

__all__ = [
    "Profile",
    "Target",
    "config_dir",
    "load_profile",
    "replace_profile_token",
    "resolve",
    "save_profile",
]

PROFILE_KEYS = ("server", "ca_file", "token_file", "user", "role")


def config_dir(env: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/fleet``, else ``~/.config/fleet``."""
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "fleet"


@dataclass(frozen=True)
class Profile:
    """What ``fleet login`` remembers.  The token itself is in ``token_file``."""

    server: str
    token_file: Path
    ca_file: Path | None = None
    user: str | None = None
    role: str | None = None


@dataclass(frozen=True)
class Target:
    """A control plane to talk to, and where each part came from (for messages)."""

    server: str
    token: str
    ca_file: Path | None
    origin: dict[str, str] = field(default_factory=dict)


def load_profile(path: Path) -> Profile | None:
    """The profile at ``path``; None when there is none.

    Raises:
        UsageError: the file exists but cannot be read or holds unknown keys.
    """
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(
            f"cannot read the profile {path}: {exc}; run 'fleet login' again"
        ) from None
    unknown = sorted(set(data) - set(PROFILE_KEYS))
    if unknown or not isinstance(data.get("server"), str):
        what = f"unknown keys {unknown}" if unknown else "no server"
        raise UsageError(f"profile {path}: {what}; run 'fleet login' again to rewrite it")
    if not all(isinstance(v, str) for v in data.values()):
        raise UsageError(f"profile {path}: every value must be a string; run 'fleet login' again")
    return Profile(
        server=data["server"],
        token_file=Path(data.get("token_file") or path.with_name("token")),
        ca_file=Path(data["ca_file"]) if data.get("ca_file") else None,
        user=data.get("user"),
        role=data.get("role"),
    )


def save_profile(
    directory: Path, server: str, token: str, ca_pem: bytes | None, user: str, role: str
) -> Path:
    """Write the profile, the token and a copy of the CA under ``directory``; all 0600.

    Returns:
        The profile's path.
    """
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)  # it may exist already (the dashboard's keymap lives there)
    token_file = directory / "token"
    write_private(token_file, token.encode() + b"\n")
    ca_file = None
    if ca_pem is not None:
        ca_file = directory / "ca.pem"
        write_private(ca_file, ca_pem)
    values = {
        "server": server,
        "ca_file": ca_file,
        "token_file": token_file,
        "user": user,
        "role": role,
    }
    stamp = time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime())
    lines = [f"# written by 'fleet login' at {stamp}; the token is in token_file (0600)"]
    # A JSON string of ASCII is a valid TOML basic string.
    lines += [f"{key} = {json.dumps(str(value))}" for key, value in values.items() if value]
    path = directory / "config.toml"
    write_private(path, ("\n".join(lines) + "\n").encode())
    return path


def replace_profile_token(env: Mapping[str, str], old: str, new: str) -> Path | None:
    """Put ``new`` in the profile's token file if it holds ``old``; the file, or None.

    For ``fleet users rotate`` of one's own user: the profile keeps working.
    """
    profile = load_profile(config_dir(env) / "config.toml")
    if profile is None:
        return None
    try:
        if profile.token_file.read_text().strip() != old:
            return None
    except OSError:
        return None
    write_private(profile.token_file, new.encode() + b"\n")
    return profile.token_file


def _read_secret(path: Path, what: str, how: str) -> str:
    try:
        text = path.read_text().strip()
    except OSError as exc:
        raise UsageError(f"cannot read {what} from {path} ({how}): {exc.strerror}") from None
    if not text:
        raise UsageError(f"{path} ({how}) is empty; it should hold {what}")
    return text


def _read_token(path: Path, how: str) -> str:
    token = _read_secret(path, "an API token", how)
    with contextlib.suppress(OSError):
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            print(
                f"fleet: warning: the token file {path} may be read by other users "
                f"(mode {mode:04o}); chmod 600 {path}",
                file=sys.stderr,
            )
    return token


def _from_data_dir(data_dir: Path, name: str) -> Path | None:
    path = data_dir / name
    return path if path.is_file() else None


def resolve(
    *,
    server: str | None,
    ca_file: Path | None,
    token_file: Path | None,
    data_dir: Path | None,
    env: Mapping[str, str],
    use_profile: bool = True,
) -> Target:
    """The control plane to use, from flags, ``env``, the profile, then the data dir.

    ``data_dir`` is the ``--data-dir`` flag (None when not given).  ``fleet login``
    passes ``use_profile=False``: it writes the profile, it does not read it.

    Raises:
        UsageError: nothing says which server or token to use; the message says how
            to log in.
    """
    profile_path = config_dir(env) / "config.toml"
    profile = load_profile(profile_path) if use_profile else None
    explicit_dir = data_dir is not None
    data = data_dir or Path(env.get("FLEET_DATA_DIR") or "./fleet-data")
    origin: dict[str, str] = {}

    url = None
    for value, where in (
        (server, "--server"),
        (env.get("FLEET_SERVER"), "FLEET_SERVER"),
        (profile.server if profile else None, f"the profile {profile_path}"),
    ):
        if value:
            url, origin["server"] = value.rstrip("/"), where
            break
    if url is None and (endpoint := _from_data_dir(data, "endpoint")):
        url, origin["server"] = (
            _read_secret(endpoint, "the server's endpoint", "--data-dir"),
            str(endpoint),
        )

    token = None
    for path, where in (
        (token_file, "--token-file"),
        (
            Path(env["FLEET_TOKEN_FILE"]) if env.get("FLEET_TOKEN_FILE") else None,
            "FLEET_TOKEN_FILE",
        ),
    ):
        if path is not None:
            token, origin["token"] = _read_token(path, where), where
            break
    if token is None and env.get("FLEET_TOKEN", "").strip():
        token, origin["token"] = env["FLEET_TOKEN"].strip(), "FLEET_TOKEN"
    if token is None and profile is not None:
        where = f"the profile {profile_path}"
        token, origin["token"] = _read_token(profile.token_file, where), where
    if token is None and (admin := _from_data_dir(data, "admin.token")):
        token, origin["token"] = _read_token(admin, "--data-dir"), str(admin)

    ca: Path | None = None
    for path, where in (
        (ca_file, "--ca-file"),
        (Path(env["FLEET_CA_FILE"]) if env.get("FLEET_CA_FILE") else None, "FLEET_CA_FILE"),
        (profile.ca_file if profile else None, f"the profile {profile_path}"),
        (_from_data_dir(data, "ca.pem"), "--data-dir"),
    ):
        if path is not None:
            ca, origin["ca"] = path, where
            break

    if url is None or token is None:
        missing = "the server's endpoint" if url is None else "an API token"
        if explicit_dir:
            name = "endpoint" if url is None else "admin.token"
            raise UsageError(
                f"cannot read {missing} from {data / name}: is --data-dir the control "
                "plane's data directory, and has 'fleet server' started there?"
            )
        raise UsageError(
            f"no {'control plane' if url is None else 'API token'} configured. Log in once with\n"
            "  fleet login --server https://HOST:PORT --ca-file CA.pem --token-file TOKEN_FILE\n"
            f"(writes {profile_path}), or pass --server and --token-file, or set FLEET_SERVER "
            "and FLEET_TOKEN_FILE; on the server host, --data-dir DIR reads DIR/endpoint, "
            "DIR/admin.token and DIR/ca.pem."
        )
    return Target(server=url, token=token, ca_file=ca, origin=origin)
