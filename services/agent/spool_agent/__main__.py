import sys

from spool_agent.app import main
from spool_agent.settings import AgentSettings
from spool_common.entrypoint import run_service

sys.exit(run_service("agent", main, AgentSettings()))  # required keys come from the environment
