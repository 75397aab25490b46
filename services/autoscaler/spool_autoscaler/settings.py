"""Autoscaler settings (SPOOL_*)."""

from __future__ import annotations

from spool_autoscaler.rules import LatencyPolicy
from spool_common.settings import CommonSettings


class AutoscalerSettings(CommonSettings):
    db_schema: str = "autoscaler"
    # The built-in latency rule (Dataiku's self-healing scenario), for every scaled service:
    # p75 of create->end latency over `latency_window` s above `latency_high` s raises the
    # count by `latency_step`, at most once per `latency_guard` s; below `latency_low` s for
    # `latency_healthy_for` s lowers it again.
    latency_window: float = 60.0
    latency_high: float = 2.0
    latency_low: float = 1.0
    latency_guard: float = 60.0
    latency_healthy_for: float = 120.0
    latency_step: int = 1

    def latency_policy(self) -> LatencyPolicy:
        return LatencyPolicy(
            window=self.latency_window,
            high=self.latency_high,
            low=self.latency_low,
            guard=self.latency_guard,
            healthy_for=self.latency_healthy_for,
            step=self.latency_step,
        )
