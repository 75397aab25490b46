"""How an agent process ends, so the scheduler can tell the service's owners why."""

from __future__ import annotations

from enum import IntEnum


class AgentExit(IntEnum):
    STOPPED = 0  # drained or told to stop
    INIT_FAILED = 3  # the service class's __init__ raised
    REQUIREMENTS_FAILED = 4  # requirements.txt could not be installed
    RUNNER_CRASHED = 5  # the runner process running user code died
    CODEBASE_ERROR = 6  # the entry module could not be imported or the class is missing
    UNAUTHORIZED = 7  # the gateway refused the replica's credential at bootstrap
