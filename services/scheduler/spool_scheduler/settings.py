"""Scheduler settings (SPOOL_*)."""

from __future__ import annotations

from spool_common.settings import CommonSettings


class SchedulerSettings(CommonSettings):
    db_schema: str = "scheduler"
    reconcile_interval: float = 1.0
    driver: str = "process"
    # Settings handed to every agent the process driver starts.
    agent_lease_renew_interval: float = 10.0
