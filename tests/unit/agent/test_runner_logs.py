"""Table tests for cutting a call's output into lines and batches (time is passed in)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spool_agent.protocol import LogLine, LogStream
from spool_agent.runner_logs import LogBatcher

OUT, ERR, LOG = LogStream.STDOUT, LogStream.STDERR, LogStream.LOG
T0 = 1_700_000_000.0
Write = tuple[str, LogStream, str, float]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def feed(batcher: LogBatcher, writes: list[Write]) -> list[tuple[str, list[LogLine]]]:
    batches = []
    for call_id, stream, text, when in writes:
        batches += batcher.write(call_id, stream, text, T0 + when)
    return batches


@pytest.mark.parametrize(
    ("writes", "expected"),
    [
        ([("c", OUT, "hello\n", 0)], [LogLine(OUT, "hello", at(0))]),
        # print() writes the text and the newline separately; the line starts at its first part
        ([("c", OUT, "hel", 0), ("c", OUT, "lo", 1), ("c", OUT, "\n", 2)], [(OUT, "hello", 0)]),
        ([("c", OUT, "a\nb\n\nc", 0)], [(OUT, "a", 0), (OUT, "b", 0), (OUT, "", 0), (OUT, "c", 0)]),
        # streams keep separate partial lines; the leftovers come last, oldest first
        (
            [("c", OUT, "out-", 0), ("c", ERR, "err\n", 1), ("c", LOG, "x", 2), ("c", OUT, "y", 3)],
            [(ERR, "err", 1), (OUT, "out-y", 0), (LOG, "x", 2)],
        ),
        # calls never mix
        ([("a", OUT, "from a\n", 0), ("b", OUT, "from b\n", 0)], [(OUT, "from a", 0)]),
        ([("c", OUT, "", 0)], []),
        ([("c", OUT, "x" * 25, 0)], [(OUT, "x" * 10, 0), (OUT, "x" * 10, 0), (OUT, "x" * 5, 0)]),
    ],
    ids=["line", "fragments", "several", "streams", "per-call", "empty", "long-line-cut"],
)
def test_close_returns_every_line_of_the_call(
    writes: list[Write], expected: list[LogLine | tuple[LogStream, str, float]]
) -> None:
    batcher = LogBatcher(max_lines=100, max_line_chars=10)
    assert feed(batcher, writes) == []
    want = [e if isinstance(e, LogLine) else LogLine(e[0], e[1], at(e[2])) for e in expected]
    assert batcher.close(writes[0][0]) == want
    assert batcher.close(writes[0][0]) == []  # forgotten


def test_a_batch_goes_out_when_it_is_full() -> None:
    batcher = LogBatcher(max_lines=3, max_delay=10)
    assert feed(batcher, [("c", OUT, "1\n2\n", 0)]) == []
    (batch,) = feed(batcher, [("c", OUT, "3\n4\n", 1)])
    assert batch == ("c", [(OUT, "1", at(0)), (OUT, "2", at(0)), (OUT, "3", at(1))])
    assert batcher.close("c") == [(OUT, "4", at(1))]


def test_one_big_write_fills_several_batches() -> None:
    batcher = LogBatcher(max_lines=50)
    batches = feed(batcher, [("c", OUT, "".join(f"{i}\n" for i in range(120)), 0)])
    assert [len(lines) for _, lines in batches] == [50, 50]
    assert len(batcher.close("c")) == 20


@pytest.mark.parametrize(
    ("now", "due_calls"),
    [(0.05, []), (0.1, ["a"]), (0.15, ["a"]), (0.2, ["a", "b"])],
)
def test_lines_go_out_max_delay_after_the_first_one(now: float, due_calls: list[str]) -> None:
    batcher = LogBatcher(max_delay=0.1)
    feed(batcher, [("a", OUT, "a1\n", 0), ("a", OUT, "a2\n", 0.05), ("b", OUT, "b1\n", 0.1)])
    assert batcher.next_due() == T0 + 0.1
    assert [call_id for call_id, _ in batcher.due(T0 + now)] == due_calls


def test_due_takes_the_lines_and_waits_for_new_ones() -> None:
    batcher = LogBatcher(max_delay=0.1)
    feed(batcher, [("a", OUT, "a1\n", 0)])
    assert batcher.due(T0 + 1) == [("a", [(OUT, "a1", at(0))])]
    assert batcher.due(T0 + 2) == []
    assert batcher.next_due() is None
    feed(batcher, [("a", OUT, "a2\n", 3)])
    assert batcher.next_due() == T0 + 3.1


def test_a_partial_line_is_never_due() -> None:
    batcher = LogBatcher(max_delay=0.1)
    feed(batcher, [("a", OUT, "no newline yet", 0)])
    assert batcher.next_due() is None
    assert batcher.due(T0 + 60) == []
    assert batcher.close("a") == [(OUT, "no newline yet", at(0))]
