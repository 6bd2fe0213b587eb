"""The fleet table and its columns."""

from __future__ import annotations

from .columns import Column, layout_columns
from .table import CutMark, FleetTable

__all__ = ["Column", "CutMark", "FleetTable", "layout_columns"]
