"""Gateway settings (SPOOL_*)."""

from __future__ import annotations

from pydantic import Field

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
    # The load sampler: one LoadSampled every interval; a window ends `lag` seconds before the
    # sample, so rows committed up to that long after their timestamp are counted.
    load_sample_interval: float = Field(default=2.0, gt=0)
    load_sample_lag: float = Field(default=1.0, ge=0)
    scaling_history: int = Field(default=10_000, ge=1)  # scale decisions kept per service
