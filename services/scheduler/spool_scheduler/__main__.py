from spool_common.entrypoint import run_service
from spool_scheduler.app import MIGRATIONS, main
from spool_scheduler.settings import SchedulerSettings

run_service("scheduler", main, SchedulerSettings(), migrations=MIGRATIONS)
