from spool_common.entrypoint import run_service
from spool_trigger_engine.app import MIGRATIONS, main
from spool_trigger_engine.settings import TriggerEngineSettings

run_service("trigger-engine", main, TriggerEngineSettings(), migrations=MIGRATIONS)
