"""Notifications: alerts delivered to Alertmanager, webhooks and Slack."""
