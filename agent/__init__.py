"""The fleet agent: enrolls with a control plane and keeps one outbound channel.

The agent runs inside private networks, dials out to the control plane over one
websocket channel, reports its health and runs the few commands the control plane
may ask for (a connectivity probe, its recent redacted logs, its effective
configuration).  Nothing in it listens on a port.

It is meant to stay small: it imports neither the control plane nor the dashboard,
and the heavy ``cryptography`` package only in short-lived key operations.
"""

from __future__ import annotations

from fleet import __version__

__all__ = ["__version__"]
