"""The alerts panel."""

from __future__ import annotations

from .panel import AlertsPanel

__all__ = ["AlertsPanel"]
