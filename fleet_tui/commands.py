"""The command palette's agents: type part of a name, pool or id, Enter opens it."""

from __future__ import annotations

from functools import partial
from typing import Protocol, cast

from textual.command import DiscoveryHit, Hit, Hits, Provider

from . import format as fmt
from .format import STATE_RANK
from .model import UNHEALTHY, FleetModel

__all__ = ["AgentCommands"]

DISCOVER_LIMIT = 10
"""Unhealthy agents listed before anything is typed, the least healthy first (the
healthy ones would push the dashboard's own commands out of sight)."""


class _Opens(Protocol):
    model: FleetModel

    def open_detail(self, agent_id: str) -> None: ...


class AgentCommands(Provider):
    """Every agent of the fleet as a palette command that opens its detail view.

    Matched fuzzily on ``name pool id``, so ``etl07``, ``etl-07`` and its id find
    etl-07.  The list is read from the model at each keystroke: agents that came or
    went since the palette opened are found or gone.
    """

    def _app(self) -> _Opens:
        return cast(_Opens, self.app)

    def _candidates(self, unhealthy: bool = False) -> list[tuple[str, str, str]]:
        """(agent id, text matched, help) for every agent (or every unhealthy one),
        least healthy first."""
        app = self._app()
        now = app.model.server_now()
        agents = sorted(
            (
                a
                for a in app.model.agents.values()
                if not unhealthy or fmt.shown_state(a, now) in UNHEALTHY
            ),
            key=lambda a: (STATE_RANK[fmt.shown_state(a, now)], a.name.lower()),
        )
        return [
            (
                a.id,
                f"{a.name}  {a.pool}  {a.id}",
                f"{fmt.state_label(fmt.shown_state(a, now))} · open the agent's detail",
            )
            for a in agents
        ]

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self._app()
        for agent_id, text, help_text in self._candidates():
            score = matcher.match(text)
            if score > 0:
                yield Hit(
                    score,
                    matcher.highlight(text),
                    partial(app.open_detail, agent_id),
                    text=text,
                    help=help_text,
                )

    async def discover(self) -> Hits:
        app = self._app()
        for agent_id, text, help_text in self._candidates(unhealthy=True)[:DISCOVER_LIMIT]:
            yield DiscoveryHit(text, partial(app.open_detail, agent_id), help=help_text)
