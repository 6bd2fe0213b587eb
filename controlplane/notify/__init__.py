"""Notifications: alerts delivered to Alertmanager, webhooks and Slack."""

from .signing import verify_signature

__all__ = ["verify_signature"]
