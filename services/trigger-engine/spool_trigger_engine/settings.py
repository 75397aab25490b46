"""TriggerEngine settings (SPOOL_*)."""

from __future__ import annotations

from spool_common.settings import CommonSettings


class TriggerEngineSettings(CommonSettings):
    db_schema: str = "trigger_engine"
