"""Log lines, and when to stop reading them. Shared by `execution.logs()` and
`service.logs()`; the paging decision is a pure function so it is tested without a server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

PAGE_SIZE = 1000  # the gateway's maximum page
POLL_SECONDS = 1.0  # while following: how long to wait for new lines before asking again
# The agent ends each attempt's log with this line (dtlpy's FUNCTION_END_LINE). It reports a
# call's lines beside its result, and they may be stored a few seconds after the final status
# (the agent's report flush takes up to 5 s), so a follower keeps reading until it sees the
# line, or until no line came for FINAL_GRACE_SECONDS after the end (a killed replica writes
# none).
DONE_LINE = "[Done] Executing function."
FINAL_GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class LogLine:
    """One line the user code printed. `str(line)` is the line itself."""

    timestamp: datetime
    message: str
    stream: str | None = None  # stdout or stderr
    execution_id: str | None = None
    replica_id: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LogLine:
        return cls(
            timestamp=datetime.fromisoformat(str(data["timestamp"])),
            message=str(data.get("message", "")),
            stream=data.get("stream"),
            execution_id=data.get("executionId"),
            replica_id=data.get("replicaId"),
        )

    def __str__(self) -> str:
        return self.message


class Step(Enum):
    MORE = "more"  # the page was full: read the next one now
    WAIT = "wait"  # caught up while following: wait for new lines (or the end)
    STOP = "stop"  # done


def next_step(
    lines: int, page_size: int, follow: bool, ended: bool, done: bool, quiet: float
) -> Step:
    """Pure: what to do after reading a page of `lines` lines. `ended`: the execution was seen
    in a final status before this page was read; `done`: the last line read is `DONE_LINE`;
    `quiet`: seconds since the end (or since the last line after it)."""
    if lines >= page_size:
        return Step.MORE
    if not follow or (ended and (done or quiet >= FINAL_GRACE_SECONDS)):
        return Step.STOP
    return Step.WAIT
