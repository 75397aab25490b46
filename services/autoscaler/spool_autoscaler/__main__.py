from spool_autoscaler.app import main
from spool_autoscaler.settings import AutoscalerSettings
from spool_common.entrypoint import run_service

run_service("autoscaler", main, AutoscalerSettings())
