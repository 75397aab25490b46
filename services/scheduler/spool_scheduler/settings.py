"""Scheduler settings (SPOOL_*)."""

from __future__ import annotations

from typing import Literal

from spool_common.settings import CommonSettings


class SchedulerSettings(CommonSettings):
    db_schema: str = "scheduler"
    reconcile_interval: float = 1.0
    driver: Literal["process", "kubernetes"] = "process"
    # A service whose replicas fail this many times within the window is deactivated.
    crash_loop_restarts: int = 5
    crash_loop_window: float = 600.0
    # Settings handed to every agent the process driver starts.
    agent_lease_renew_interval: float = 10.0
    replica_open_files: int | None = 4096  # RLIMIT_NOFILE of each agent process
    replica_processes: int | None = None  # RLIMIT_NPROC (counts every process of the user)
    # The kubernetes driver.
    k8s_namespace: str = "spool"
    k8s_runner_image: str = "spool-runner:latest"
    k8s_amqp_secret: str | None = None  # Secret (key "amqp-url") the agents read the bus URL from
