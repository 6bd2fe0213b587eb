"""The rollouts view's list and the selected rollout's waves and agents."""

from __future__ import annotations

from .detail import RolloutDetail
from .listing import RolloutList, rollout_entry

__all__ = ["RolloutDetail", "RolloutList", "rollout_entry"]
