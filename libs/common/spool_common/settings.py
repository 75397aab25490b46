"""Settings read from the environment (SPOOL_*), one model per process."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    """What every Spool process needs. Services subclass it and add their own keys."""

    model_config = SettingsConfigDict(env_prefix="SPOOL_", extra="ignore")

    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/?heartbeat=15"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/spool"
    bus_namespace: str = "spool"
    gateway_url: str = "http://127.0.0.1:8080"
    log_level: str = "info"
    log_format: str = "json"
    publish_timeout: float = 10.0
    state_dir: Path = Path(".spool")
    # Liveness (/livez), readiness (/readyz) and Prometheus metrics (/metrics). The gateway
    # serves them on its API port; other processes on this port (0: any free port, written
    # to `<cwd>/ops.port`; None: not served). Kubernetes sets 0.0.0.0:8081.
    ops_host: str = "127.0.0.1"
    ops_port: int | None = 0
