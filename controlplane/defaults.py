"""Defaults of the settings that ``fleet server`` has flags for.

Standard library only, so that building the ``fleet`` parser (and its ``--help``,
which shows these) loads neither pydantic nor the server.  :class:`~controlplane.
config.Settings` takes its defaults from here: one definition.
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_HEARTBEAT_INTERVAL_S",
    "DEFAULT_HOST",
    "DEFAULT_LOG_LEVEL",
    "DEFAULT_PORT",
    "ENV_PREFIX",
    "LOG_LEVELS",
]

ENV_PREFIX = "FLEET_SERVER_"
"""Environment variables ``FLEET_SERVER_<SETTING>`` set a setting."""
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443
DEFAULT_LOG_LEVEL = "warning"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
DEFAULT_HEARTBEAT_INTERVAL_S = 5.0
