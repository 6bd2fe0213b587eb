"""The state directory: the agent's identity and logs.

Layout::

    STATE_DIR/            0700
      key.pem             0600  the agent's private key; never leaves the host
      cert.pem                  the certificate the control plane signed
      ca.pem                    the control plane's CA (checked against the pin)
      server-ca.pem             the company CA bundle the server's TLS is checked
                                against (trust mode ca-file only)
      agent.json                {agent_id, name, pool, server, channel_port, tls_trust}
      agent.toml                optional configuration file
      logs/agent.log            rotating log
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from agent.errors import StateError
from agent.tls import TRUST_MODES, TrustMode
from fleet.files import check_private, write_public
from fleet.protocol import AGENT_CHANNEL_PATH

__all__ = [
    "Identity",
    "channel_url",
    "load_identity",
    "read_identity",
    "save_identity",
]


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


def load_identity(state_dir: Path) -> Identity:
    """Read and check the state directory of an enrolled agent.

    Raises:
        StateError: not enrolled, files missing, or a key others may read.
    """
    identity = read_identity(state_dir)
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
