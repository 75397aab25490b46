from spool_autoscaler.app import MIGRATIONS, main
from spool_autoscaler.settings import AutoscalerSettings
from spool_common.entrypoint import run_service

run_service("autoscaler", main, AutoscalerSettings(), migrations=MIGRATIONS)
