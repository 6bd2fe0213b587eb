"""The fleet dashboard: a Textual app over the control plane's event stream and REST API."""

from __future__ import annotations

__all__: list[str] = []
