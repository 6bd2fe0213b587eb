"""Pins hold a version, a config, or both, and each is inherited on its own.

A pool's pin applies to its agents; an agent's own pin overrides it field by
field: an agent pinned to a version alone still follows its pool's config pin.
Setting one field keeps the other (pinning a version never erases a config pin),
and one field can be cleared alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .store.base import PinRecord

__all__ = ["PARTS", "EffectivePin", "Part", "effective", "merged", "without"]

Part = Literal["version", "config"]
PARTS: tuple[Part, ...] = ("version", "config")


@dataclass(frozen=True)
class EffectivePin:
    """What applies to one agent, and where each field comes from."""

    version: str | None = None
    version_scope: str | None = None
    """``agent`` or ``pool``: whose pin gave the version (None: no version pinned)."""
    config: dict[str, Any] | None = None
    config_scope: str | None = None


def effective(agent_pin: PinRecord | None, pool_pin: PinRecord | None) -> EffectivePin:
    """Each field from the agent's own pin when it sets it, else from its pool's."""
    version, version_scope = _field(agent_pin, pool_pin, "version")
    config, config_scope = _field(agent_pin, pool_pin, "config")
    return EffectivePin(version, version_scope, config, config_scope)


def _field(agent_pin: PinRecord | None, pool_pin: PinRecord | None, part: Part) -> Any:
    for pin in (agent_pin, pool_pin):
        if pin is not None and getattr(pin, part) is not None:
            return getattr(pin, part), pin.scope
    return None, None


def merged(
    existing: PinRecord | None,
    scope: str,
    name: str,
    version: str | None,
    config: dict[str, Any] | None,
    at: float,
    by: str,
) -> PinRecord:
    """The pin after setting ``version`` and/or ``config`` (None: keep what is there)."""
    return PinRecord(
        scope,
        name,
        version if version is not None else existing.version if existing else None,
        config if config is not None else existing.config if existing else None,
        at,
        by,
    )


def without(pin: PinRecord, part: Part | None) -> PinRecord | None:
    """The pin with ``part`` cleared (None: both); None when nothing is left."""
    version = None if part in (None, "version") else pin.version
    config = None if part in (None, "config") else pin.config
    if version is None and config is None:
        return None
    return PinRecord(pin.scope, pin.name, version, config, pin.set_at, pin.set_by)
