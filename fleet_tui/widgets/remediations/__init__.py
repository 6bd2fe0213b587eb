"""The remediation inbox's list."""

from __future__ import annotations

from .inbox import RemediationList, remediation_entry

__all__ = ["RemediationList", "remediation_entry"]
