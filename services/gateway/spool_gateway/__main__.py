from spool_common.entrypoint import run_service
from spool_gateway.app import MIGRATIONS, main
from spool_gateway.settings import GatewaySettings

run_service("gateway", main, GatewaySettings(), migrations=MIGRATIONS)
