"""Network clients: the event stream consumer and the REST API client.

Neither imports Textual, so tests can drive them against a real server.
"""

from __future__ import annotations

from ._rest import ConnectionProbe, ProbeRequest, RestClient
from ._state import ConnectionState, LinkStatus
from ._stream import StreamClient
from ._tls import make_ssl_context

__all__ = [
    "ConnectionProbe",
    "ConnectionState",
    "LinkStatus",
    "ProbeRequest",
    "RestClient",
    "StreamClient",
    "make_ssl_context",
]
