"""Gateway settings (SPOOL_*)."""

from __future__ import annotations

from spool_common.settings import CommonSettings


class GatewaySettings(CommonSettings):
    host: str = "127.0.0.1"
    port: int = 8080
    db_schema: str = "gateway"
    admin_token: str | None = None
    lease_seconds: float = 30.0  # an in-progress attempt not renewed for this long is lost
    reaper_interval: float = 5.0
    outbox_sweep_interval: float = 1.0
    max_upload_bytes: int = 50 * 1024 * 1024
    claim_prefetch: int = 100
    report_prefetch: int = 100
