"""`spool exec --wait`: wait for an execution while showing its progress.

The progress is what the function reported (`progress.update(progress=40, message=...)`),
which the platform keeps in the execution's status log. The waiter asks the gateway's
long-poll once a second (it answers at once when the execution ends) and hands each fresh
snapshot to a display:

- on a terminal, a live bar (rich): percent, elapsed time and the latest message;
- anywhere else (a pipe, a CI log), one line per new status-log entry, so no update is lost
  and the log reads top to bottom.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from typing import IO, Protocol

from spool.execution import Execution, poll_seconds
from spool_common.models import ExecutionStatus, StatusEntry

POLL_SECONDS = 1.0  # how often the display is refreshed while the execution runs


class Display(Protocol):
    def show(self, execution: Execution) -> None: ...
    def close(self) -> None: ...


def entry_line(entry: StatusEntry) -> str:
    """Pure: one status-log entry as a progress line: status, percent, message."""
    done = "" if entry.percent_complete is None else f"{entry.percent_complete:>3}%"
    parts = [f"  {entry.status.value:<12}", f"{done:>4}", entry.message or ""]
    return "  ".join(parts).rstrip()


def new_entries(log: Sequence[StatusEntry], seen: int) -> list[StatusEntry]:
    """Pure: the entries after the first `seen` (the log only grows)."""
    return list(log[seen:])


def latest(execution: Execution) -> tuple[int | None, str]:
    """Pure: the bar's percent and text: the last reported progress and its message, else
    the status (`created` reads "queued")."""
    for entry in reversed(execution.status_log):
        if entry.percent_complete is not None:
            return entry.percent_complete, entry.message or execution.status.value
    status = execution.status
    return None, "queued" if status is ExecutionStatus.CREATED else status.value


class NoDisplay:
    """--json: nothing but the result is printed."""

    def show(self, execution: Execution) -> None:
        pass

    def close(self) -> None:
        pass


class LineDisplay:
    """One line per status-log entry, written as they arrive."""

    def __init__(self, stream: IO[str], skip: int = 0) -> None:
        self._stream = stream
        self._seen = skip  # entries already shown (a rerun starts after its history)

    def show(self, execution: Execution) -> None:
        log = execution.status_log or [execution.latest_status]
        for entry in new_entries(log, self._seen):
            self._stream.write(entry_line(entry) + "\n")
        self._seen = len(log)
        self._stream.flush()

    def close(self) -> None:
        self._stream.flush()


class BarDisplay:
    """A live progress bar on a terminal (rich, imported only when a bar is shown)."""

    def __init__(self, stream: IO[str], force_terminal: bool | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            Progress,
            SpinnerColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        console = Console(file=stream, force_terminal=force_terminal, highlight=False)
        self._progress = Progress(
            SpinnerColumn(),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", markup=False),
            console=console,
        )
        self._task = self._progress.add_task("queued", total=None)
        self._progress.start()

    def show(self, execution: Execution) -> None:
        done, text = latest(execution)
        if execution.status is ExecutionStatus.SUCCESS:
            done = 100
        total = None if done is None else 100
        self._progress.update(self._task, completed=done or 0, total=total, description=text)

    def close(self) -> None:
        self._progress.stop()


def display_for(stream: IO[str], skip: int = 0) -> Display:
    """A bar on a terminal, lines elsewhere (from status-log entry `skip` on)."""
    return BarDisplay(stream) if stream.isatty() else LineDisplay(stream, skip)


def wait(
    execution: Execution,
    timeout: float | None,
    display: Display,
    clock: Callable[[], float] = time.monotonic,
) -> Execution:
    """Wait until the execution ends, showing each snapshot; TimeoutError after `timeout`
    seconds (the execution goes on)."""
    deadline = None if timeout is None else clock() + timeout
    display.show(execution)
    while not execution.status.is_terminal:
        remaining = None if deadline is None else deadline - clock()
        seconds = poll_seconds(remaining, POLL_SECONDS)
        if seconds is None:
            raise TimeoutError(
                f"execution {execution.id} did not finish within {timeout:g} s "
                f"(it is {execution.status.value}; it goes on)"
            )
        with contextlib.suppress(TimeoutError):  # the long-poll's own limit: show, then go on
            execution.wait(timeout=seconds)
        display.show(execution)
    return execution
