"""TriggerEngine settings (SPOOL_*)."""

from __future__ import annotations

from spool_common.settings import CommonSettings


class TriggerEngineSettings(CommonSettings):
    db_schema: str = "trigger_engine"
    inbox_prefetch: int = 100
    # A trigger stops firing for an entity once its own executions caused the event this
    # many times along one chain (and a notification says so).
    max_loop_depth: int = 16
    # After downtime only the latest missed cron tick fires, and only if it is this recent.
    cron_grace: float = 60.0
