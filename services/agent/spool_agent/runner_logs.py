"""Cutting a call's output into lines and lines into batches. Pure: text and times in, batches
out; the runner's outbox thread owns one and does the I/O.

Text arrives in fragments, as `print` and `write` hand it over; a line ends at "\\n" and starts
its life at its first fragment. A line longer than `max_line_chars` is cut. A call's lines go
out as a batch once `max_lines` are waiting, or `max_delay` seconds after the first of them
was complete, whichever comes first; a partial line waits for its newline or the call's end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from spool_agent.protocol import LogLine, LogStream

MAX_LINES = 50
MAX_DELAY = 0.1
MAX_LINE_CHARS = 16 * 1024

Batch = tuple[str, list[LogLine]]  # (call id, lines)


@dataclass
class _CallLines:
    partial: dict[LogStream, tuple[str, float]] = field(default_factory=dict)
    lines: list[LogLine] = field(default_factory=list)
    due: float | None = None


class LogBatcher:
    def __init__(
        self,
        max_lines: int = MAX_LINES,
        max_delay: float = MAX_DELAY,
        max_line_chars: int = MAX_LINE_CHARS,
    ) -> None:
        self._max_lines = max_lines
        self._max_delay = max_delay
        self._max_chars = max_line_chars
        self._calls: dict[str, _CallLines] = {}

    def write(self, call_id: str, stream: LogStream, text: str, at: float) -> list[Batch]:
        """Take a fragment written at `at` (epoch seconds); return the batches it filled."""
        call = self._calls.setdefault(call_id, _CallLines())
        head, began = call.partial.pop(stream, ("", at))
        *complete, rest = (head + text).split("\n")
        for line in complete:
            self._add(call, stream, line, began, at)
            began = at
        while len(rest) > self._max_chars:
            self._add(call, stream, rest[: self._max_chars], began, at)
            rest, began = rest[self._max_chars :], at
        if rest:
            call.partial[stream] = (rest, began)
        batches: list[Batch] = []
        while len(call.lines) >= self._max_lines:
            batches.append((call_id, call.lines[: self._max_lines]))
            del call.lines[: self._max_lines]
        if not call.lines:
            call.due = None
        return batches

    def due(self, now: float) -> list[Batch]:
        """The batches whose first line has waited `max_delay` by `now`."""
        ready = [cid for cid, c in self._calls.items() if c.due is not None and c.due <= now]
        return [(cid, self._take(self._calls[cid])) for cid in ready]

    def next_due(self) -> float | None:
        """When `due` will next have something (epoch seconds), or None."""
        return min((c.due for c in self._calls.values() if c.due is not None), default=None)

    def close(self, call_id: str) -> list[LogLine]:
        """Every line the call has left, partial ones included, oldest first; forget it."""
        call = self._calls.pop(call_id, None)
        if call is None:
            return []
        tails = [LogLine(s, text, _utc(began)) for s, (text, began) in call.partial.items()]
        return call.lines + sorted(tails, key=lambda line: line.at)

    def _add(self, call: _CallLines, stream: LogStream, text: str, began: float, at: float) -> None:
        call.lines.append(LogLine(stream, text, _utc(began)))
        if call.due is None:
            call.due = at + self._max_delay

    @staticmethod
    def _take(call: _CallLines) -> list[LogLine]:
        lines, call.lines, call.due = call.lines, [], None
        return lines


def _utc(at: float) -> datetime:
    return datetime.fromtimestamp(at, UTC)
