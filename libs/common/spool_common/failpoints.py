"""Failpoints: named places where a fault test makes the process die, to prove that a crash
exactly there loses nothing (reference/reliability.md §7, T19).

`SPOOL_FAILPOINTS=outbox.before_publish,outbox.before_delete` arms points for the life of the
process; read once, at import. At an armed point the process logs one line and ends with
`os._exit(137)`, the status of a SIGKILL: no finally block, no atexit handler, no flush of a
buffer runs, just as if `kill -9` had landed on that instruction. Unarmed, `failpoint(name)`
costs one set lookup, so the points stay in production code.
"""

from __future__ import annotations

import os
import sys

from spool_common.logging import get_logger

log = get_logger(__name__)

ENV = "SPOOL_FAILPOINTS"
EXIT_STATUS = 137  # 128 + SIGKILL: what a supervisor sees after kill -9


def armed_points(value: str) -> frozenset[str]:
    """The point names in the variable's value: comma-separated, blanks ignored."""
    return frozenset(name for part in value.split(",") if (name := part.strip()))


_ARMED = armed_points(os.environ.get(ENV, ""))


def failpoint(name: str) -> None:
    """Die here if `name` is armed."""
    if name in _ARMED:
        _die(name)


def _die(name: str) -> None:
    log.critical("failpoint_hit", failpoint=name, exit_status=EXIT_STATUS)
    sys.stdout.flush()
    sys.stderr.flush()  # os._exit flushes nothing: the line must be out before it
    os._exit(EXIT_STATUS)
