"""The state directory: the agent's identity and logs.

Layout::

    STATE_DIR/            0700
      key.pem             0600  the agent's private key; never leaves the host
      cert.pem                  the certificate the control plane signed
      key.pem.new         0600  a renewal's new key, until its certificate is installed
      cert.pem.new              that certificate, for the moment of the swap
      ca.pem                    the control plane's CA (checked against the pin)
      server-ca.pem             the company CA bundle the server's TLS is checked
                                against (trust mode ca-file only)
      agent.json                {agent_id, name, pool, server, channel_port, tls_trust}
      agent.toml                optional configuration file
      logs/agent.log            rotating log
      release.pub               the release key; versions/, downloads/: upgrades
                                (agent/versions.py)
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent.errors import StateError
from agent.tls import TRUST_MODES, TrustMode
from fleet.files import check_private, replace_durably, sync_dir, write_public
from fleet.protocol import AGENT_CHANNEL_PATH

__all__ = [
    "RENEWAL_FILES",
    "Identity",
    "channel_url",
    "finish_renewal",
    "install_renewal",
    "load_identity",
    "read_identity",
    "save_identity",
]

log = logging.getLogger("agent.state")

RENEWAL_FILES = ("key.pem.new", "cert.pem.new")
"""A renewal's new key and certificate, beside ``key.pem`` and ``cert.pem`` until the swap."""


def channel_url(server: str, channel_port: int | None) -> str:
    """The agent channel's ``wss://`` URL.

    The control plane serves agents on a port of their own (``channel_port``,
    learnt at enrollment) on the host the agent enrolled with; without one, on
    the API port's route.
    """
    parts = urlsplit(server)
    scheme = "wss" if parts.scheme in ("https", "wss") else "ws"
    netloc = parts.netloc
    if channel_port:
        host = parts.hostname or ""
        netloc = f"[{host}]:{channel_port}" if ":" in host else f"{host}:{channel_port}"
    return f"{scheme}://{netloc}{AGENT_CHANNEL_PATH}"


@dataclass(frozen=True)
class Identity:
    """Who the agent is and where its files are."""

    state_dir: Path
    agent_id: str
    name: str
    pool: str
    server: str
    channel_port: int | None = None
    """The control plane's port for agent channels (None: the API port's route)."""
    tls_trust: TrustMode = "pinned"
    """How the server's TLS certificate is verified (:mod:`agent.tls`)."""

    @property
    def trust_file(self) -> Path | None:
        """The CA bundle the server's certificate is checked against (None: the system's)."""
        return {"pinned": self.ca_path, "ca-file": self.server_ca_path, "system": None}[
            self.tls_trust
        ]

    @property
    def key_path(self) -> Path:
        return self.state_dir / "key.pem"

    @property
    def cert_path(self) -> Path:
        return self.state_dir / "cert.pem"

    @property
    def new_key_path(self) -> Path:
        """A renewal's new key (0600), written before its CSR is sent."""
        return self.state_dir / RENEWAL_FILES[0]

    @property
    def new_cert_path(self) -> Path:
        """The renewed certificate, written just before the swap."""
        return self.state_dir / RENEWAL_FILES[1]

    @property
    def ca_path(self) -> Path:
        return self.state_dir / "ca.pem"

    @property
    def server_ca_path(self) -> Path:
        """The CA bundle for the server's certificate in trust mode ``ca-file``."""
        return self.state_dir / "server-ca.pem"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"


def save_identity(identity: Identity) -> None:
    """Write ``agent.json``."""
    doc = {
        "agent_id": identity.agent_id,
        "name": identity.name,
        "pool": identity.pool,
        "server": identity.server,
        "channel_port": identity.channel_port,
        "tls_trust": identity.tls_trust,
    }
    write_public(identity.state_dir / "agent.json", (json.dumps(doc, indent=2) + "\n").encode())


def _port(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    raise TypeError(f"channel_port {value!r} is not a port")


def _trust(value: object) -> TrustMode:
    if value is None:
        return "pinned"  # state directories from before trust modes
    for mode in TRUST_MODES:
        if value == mode:
            return mode
    raise TypeError(f"tls_trust {value!r} is not one of {', '.join(TRUST_MODES)}")


def read_identity(state_dir: Path) -> Identity:
    """Read ``agent.json`` alone, without checking the other files.

    ``fleet agent doctor`` uses it to report on a damaged state directory.

    Raises:
        StateError: not enrolled, or ``agent.json`` unreadable or incomplete.
    """
    doc_path = state_dir / "agent.json"
    try:
        doc = json.loads(doc_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise StateError(
            f"{state_dir} holds no enrolled agent (no agent.json); "
            "run `fleet agent enroll --state-dir DIR ...` first"
        ) from None
    except (OSError, ValueError) as exc:
        raise StateError(f"cannot read {doc_path}: {exc}") from None
    try:
        identity = Identity(
            state_dir=state_dir,
            agent_id=str(doc["agent_id"]),
            name=str(doc["name"]),
            pool=str(doc["pool"]),
            server=str(doc["server"]),
            channel_port=_port(doc.get("channel_port")),
            tls_trust=_trust(doc.get("tls_trust")),
        )
    except (KeyError, TypeError):
        raise StateError(f"{doc_path} is incomplete; enroll again") from None
    return identity


def install_renewal(identity: Identity, cert_pem: bytes) -> None:
    """Install a renewal's certificate with its new key (``key.pem.new``), crash-safely.

    The certificate goes to ``cert.pem.new`` first; then the key is renamed into
    place, then the certificate, the directory synced after each step.  Whatever
    the moment of a crash, :func:`finish_renewal` (run by :func:`load_identity`)
    leaves a key and a certificate that match.

    Raises:
        OSError: the swap failed.  Before the key's rename it is undone (the old
            pair stays); after it, completed as far as the disk allows (and again
            at the next start).  Read ``cert.pem`` again to know which pair is there.
    """
    directory = identity.state_dir
    new_key, new_cert = identity.new_key_path, identity.new_cert_path
    try:
        write_public(new_cert, cert_pem)
        sync_dir(directory)
        os.replace(new_key, identity.key_path)
    except OSError:
        with contextlib.suppress(OSError):
            new_cert.unlink(missing_ok=True)
        raise
    # The key is the new one from here: only forward.
    try:
        sync_dir(directory)  # the key's rename, before the certificate's
        replace_durably(new_cert, identity.cert_path)
    except OSError:
        with contextlib.suppress(OSError):
            finish_renewal(identity)
        raise


def finish_renewal(identity: Identity) -> str | None:
    """Complete or undo a renewal that a crash interrupted; what was done, in words.

    The four states :func:`install_renewal` can leave, by the side files present:

    * neither: nothing to do;
    * ``key.pem.new`` alone: the certificate never arrived (or was never
      installed): the new key is discarded, the old pair stays, and the control
      plane, which supersedes only at the new certificate's first use, still
      takes it;
    * both: the crash came before the key's rename: the swap is completed;
    * ``cert.pem.new`` alone: the key was renamed, not the certificate: the
      certificate's rename is completed.

    One agent per state directory: another process's renewal in flight would
    look like an interrupted one.

    Raises:
        OSError: a side file could not be renamed or removed.
    """
    new_key, new_cert = identity.new_key_path, identity.new_cert_path
    for leftover in (
        *identity.state_dir.glob(f".{new_key.name}.*.tmp"),
        *identity.state_dir.glob(f".{new_cert.name}.*.tmp"),
    ):
        leftover.unlink(missing_ok=True)  # a write cut short; never renamed into place
    has_key, has_cert = new_key.exists(), new_cert.exists()
    if has_key and not has_cert:
        new_key.unlink()
        sync_dir(identity.state_dir)
        return f"discarded {new_key.name}: a renewal ended before its certificate was installed"
    if has_key:
        replace_durably(new_key, identity.key_path)
    if has_cert:
        replace_durably(new_cert, identity.cert_path)
        return "completed a renewal's key and certificate swap that was interrupted"
    return None


def load_identity(state_dir: Path) -> Identity:
    """Read and check the state directory of an enrolled agent.

    A renewal interrupted by a crash is completed or undone first
    (:func:`finish_renewal`), so that the key and the certificate match.

    Raises:
        StateError: not enrolled, files missing, or a key others may read.
    """
    identity = read_identity(state_dir)
    try:
        done = finish_renewal(identity)
    except OSError as exc:
        raise StateError(
            f"cannot finish an interrupted certificate renewal in {state_dir}: {exc}; "
            "check the directory's owner and free space"
        ) from None
    if done:
        log.warning("%s: %s", state_dir, done)
    needed = [identity.key_path, identity.cert_path, identity.ca_path]
    if identity.tls_trust == "ca-file":
        needed.append(identity.server_ca_path)
    for path in needed:
        if not path.is_file():
            raise StateError(f"{path} is missing; enroll again")
    try:
        check_private(identity.key_path)
    except OSError as exc:
        raise StateError(str(exc)) from None
    return identity
