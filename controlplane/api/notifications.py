"""Notifications: what each receiver has delivered."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from .deps import CP, Viewer
from .models import ReceiverInfo
from .responses import errors

router = APIRouter()


@router.get("/v1/notifications", response_model=list[ReceiverInfo], responses=errors())
async def notifications(cp: CP, who: Viewer) -> list[ReceiverInfo]:
    """Every configured receiver in config order, with its queue and counters since
    start; never its secret, nor the secret parts of its URL."""
    urls = {r.name: r.shown_url for r in cp.settings.receivers}
    return [
        ReceiverInfo.model_validate({**asdict(s), "url": urls.get(s.name, "")})
        for s in cp.notifier.stats()
    ]
