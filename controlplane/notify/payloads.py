"""What each kind of receiver is sent: Alertmanager's v2 alerts, a webhook's JSON, Slack's text.

Pure functions of a :class:`Notice`, so the formats are tested without a network.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from fleet.protocol import AlertInfo

__all__ = [
    "WEBHOOK_VERSION",
    "Event",
    "Notice",
    "alertmanager_alert",
    "iso",
    "slack_body",
    "summary",
    "webhook_body",
]

Event = Literal["raised", "escalated", "resolved"]

WEBHOOK_VERSION = 1
"""The webhook body's ``version``: raised when a field changes meaning or goes."""

_KIND_TEXT = {
    "stale": "agent stale",
    "offline": "agent offline",
    "clock_skew": "clock skew",
    "cert_expiring": "certificate expiring",
    "queue_depth": "command queue backing up",
    "version_drift": "version drift",
    "config_drift": "config drift",
    "unroutable": "connection unroutable",
    "pool_below_min": "pool below its minimum",
    "connection_at_risk": "connection at risk",
}


@dataclass(frozen=True)
class Notice:
    """One notification for one receiver.

    Attributes:
        event: what happened to the alert.
        alert: the alert as published (``cleared_at`` set when resolved).
        labels: what it concerns: ``agent`` (name), ``agent_id``, ``pool``,
            ``connection``; fixed when the alert was raised, so that the resolve
            names the same alert (Alertmanager identifies alerts by their labels).
        previous_severity: for ``escalated``, the severity before.
        repeat: a reminder of an alert still firing, not a change.
    """

    event: Event
    alert: AlertInfo
    labels: dict[str, str]
    previous_severity: str | None = None
    repeat: bool = False


def iso(epoch: float) -> str:
    """RFC 3339 in UTC, as Alertmanager reads it."""
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def _about(labels: dict[str, str]) -> str:
    if "agent" in labels:
        pool = f" (pool {labels['pool']})" if labels.get("pool") else ""
        return f"agent {labels['agent']}{pool}"
    if "connection" in labels:
        return f"connection {labels['connection']}"
    if "pool" in labels:
        return f"pool {labels['pool']}"
    return labels.get("target", "")


def summary(notice: Notice) -> str:
    """One line a person reads: ``agent offline: agent etl-07 (pool db-east): agent is
    offline``."""
    kind = _KIND_TEXT.get(notice.alert.kind, notice.alert.kind.replace("_", " "))
    # Some messages start with the kind already ("connection at risk: next run ..."):
    # said once.
    message = notice.alert.message.removeprefix(f"{kind}: ")
    return f"{kind}: {_about(notice.labels)}: {message}"


def alertmanager_alert(
    notice: Notice,
    *,
    instance: str,
    runbook_url: str,
    generator_url: str,
    severity: str | None = None,
    ends_at: float | None = None,
    acked_by: str | None = None,
) -> dict[str, Any]:
    """One element of the list ``POST /api/v2/alerts`` takes.

    ``severity`` overrides the alert's (an escalation also ends the alert under its
    old severity, whose labels differ); ``ends_at`` resolves it; ``acked_by`` (who
    acknowledged it) goes in the ``acknowledged_by`` annotation.
    """
    alert = notice.alert
    labels = {
        "alertname": alert.kind,
        "kind": alert.kind,
        "severity": severity or alert.severity,
        "fleet": instance,
        **{k: v for k, v in notice.labels.items() if v},
    }
    out: dict[str, Any] = {
        "labels": labels,
        "annotations": {
            "summary": summary(notice),
            "message": alert.message,
            "runbook_url": f"{runbook_url}#{alert.kind}",
            "alert_id": alert.id,
        },
        "startsAt": iso(alert.raised_at),
    }
    if acked_by:
        out["annotations"]["acknowledged_by"] = acked_by
    if ends_at is not None:
        out["endsAt"] = iso(ends_at)
    if generator_url:
        out["generatorURL"] = generator_url
    return out


def webhook_body(notice: Notice, sent_at: float, runbook_url: str) -> bytes:
    """The generic webhook's JSON body (docs/server.md, "Webhooks")."""
    body = {
        "version": WEBHOOK_VERSION,
        "event": notice.event,
        "repeat": notice.repeat,
        "alert": msgspec.to_builtins(notice.alert),
        "labels": notice.labels,
        "previous_severity": notice.previous_severity,
        "summary": summary(notice),
        "runbook_url": f"{runbook_url}#{notice.alert.kind}",
        "sent_at": sent_at,
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


_MARK = {"critical": ":red_circle:", "warning": ":large_orange_circle:"}


def slack_body(notice: Notice, runbook_url: str) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (also what notifications show) and a
    block with the runbook link."""
    alert = notice.alert
    if notice.event == "resolved":
        head = ":white_check_mark: RESOLVED"
    elif notice.event == "escalated":
        head = f"{_MARK.get(alert.severity, '')} ESCALATED to {alert.severity.upper()}"
    else:
        again = " (still firing)" if notice.repeat else ""
        head = f"{_MARK.get(alert.severity, '')} {alert.severity.upper()}{again}"
    text = f"{head.strip()} {summary(notice)}"
    link = f"{runbook_url}#{alert.kind}"
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": text}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"runbook: <{link}|{alert.kind}>"}],
            },
        ],
    }
