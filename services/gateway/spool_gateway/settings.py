"""Gateway settings (SPOOL_*)."""

from __future__ import annotations

from pydantic import Field, SecretStr

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
    # Project secrets are sealed with SPOOL_SECRETS_KEY (base64 of 32 bytes); old keys listed
    # in SPOOL_SECRETS_KEYS (comma-separated) still open values sealed before a rotation.
    # Without a key, creating or delivering a secret answers 503 (secret_routes.py).
    secrets_key: SecretStr | None = None
    secrets_keys: SecretStr | None = None
    # Limits at the HTTP edge (limits.py): a larger body is 413, deeper JSON 400, larger
    # headers 431. Uploads (multipart) may be max_upload_bytes plus 1 MiB of form fields.
    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=32, ge=2)
    max_header_bytes: int = Field(default=32 * 1024, ge=1024)
    max_input_bytes: int = Field(default=1024 * 1024, ge=1024)  # one execution's input JSON
    # Admission of new executions (quotas.py): a token bucket per project (0: no limit) and a
    # cap on the executions waiting (created, not yet claimed) per service.
    execution_rate: float = Field(default=2000.0, ge=0)  # executions per second per project
    execution_burst: int = Field(default=50_000, ge=1)
    max_waiting_executions: int = Field(default=100_000, ge=1)
