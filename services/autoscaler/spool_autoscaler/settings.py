"""Autoscaler settings (SPOOL_*)."""

from __future__ import annotations

from spool_common.settings import CommonSettings


class AutoscalerSettings(CommonSettings):
    db_schema: str = "autoscaler"
