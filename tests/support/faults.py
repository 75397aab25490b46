"""One line per fault run (issue 11): what was submitted, what ended, and what went wrong.

Every fault test of the reliability suite (`-m reliability`, `make reliability`) ends by
tallying its executions against the ground-truth ledger (support/ledger.py) and recording the
line; the session prints them all at the end (tests/conftest.py) and, under `make
reliability`, writes them as the markdown table docs/reliability.md keeps.

    run = tally("T08 broker restart", done.values(), runs, recovery=outage)
    record(run)
    assert run.clean, run.line()

Loads come in two sizes: the CI run (smoke) and `make reliability` (full,
SPOOL_RELIABILITY=full); `scale(smoke, full)` picks one.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from support.ledger import TERMINAL, Interval

Execution = Mapping[str, Any]

FULL = os.environ.get("SPOOL_RELIABILITY", "smoke") == "full"
REPORT_ENV = "SPOOL_RELIABILITY_REPORT"

HEADER = (
    "| fault | submitted | terminal | lost | over-attempted | duplicated | longest recovery |",
    "|---|---:|---:|---:|---:|---:|---:|",
)


def scale(smoke: int, full: int) -> int:
    """The load of a fault run: `smoke` in CI, `full` under `make reliability`."""
    return full if FULL else smoke


@dataclass(frozen=True)
class FaultRun:
    fault: str  # e.g. "T08 broker killed and restarted"
    submitted: int  # executions whose create call was accepted
    terminal: int  # ... that ended (success, failed, timeout, terminated)
    lost: int  # ... that did not end in time (I1)
    over_attempted: int  # ... started or claimed more often than maxAttempts (I2)
    duplicated: int  # ... whose function completed twice, or ran twice at once (I3)
    recovery: float | None  # the longest time to recover from the fault, seconds
    size: str = field(default_factory=lambda: "full" if FULL else "smoke")

    @property
    def clean(self) -> bool:
        return self.lost == 0 and self.over_attempted == 0 and self.duplicated == 0

    def line(self) -> str:
        recovery = "-" if self.recovery is None else f"{self.recovery:.1f} s"
        return (
            f"{self.fault}: submitted {self.submitted}, terminal {self.terminal}, "
            f"lost {self.lost}, over-attempted {self.over_attempted}, "
            f"duplicated {self.duplicated}, longest recovery {recovery}"
        )

    def row(self) -> str:
        recovery = "-" if self.recovery is None else f"{self.recovery:.1f} s"
        counts = (self.submitted, self.terminal, self.lost, self.over_attempted, self.duplicated)
        return f"| {self.fault} | " + " | ".join(map(str, counts)) + f" | {recovery} |"


def _ledger_key(execution: Execution) -> str:
    return str(execution["input"]["exec_key"])


def _duplicated(runs: list[Interval], died: Mapping[int, float], successes: int) -> bool:
    """The function completed more than once, or two runs overlapped. Not counted: an earlier
    completion in a process that was then killed (`died`) when the platform recorded a single
    success. The kill came between the function's end and its report, so the platform never
    heard of it and ran the execution again: the at-least-once window of T01."""
    ended = [r for r in runs if r.end is not None]
    unheard = [r for r in ended[:-1] if r.pid in died] if successes <= 1 else []
    if len(ended) - len(unheard) > 1:
        return True
    ordered = sorted(runs, key=lambda r: r.start)
    return any(
        after.start < before.end
        for before, after in itertools.pairwise(ordered)
        if before.end is not None
    )


def tally(
    fault: str,
    executions: Iterable[Execution],
    runs: Mapping[str, list[Interval]] | None = None,
    *,
    recovery: float | None = None,
    key: Callable[[Execution], str] = _ledger_key,
    died: Mapping[int, float] | None = None,
) -> FaultRun:
    """The line of a fault run. `runs` is the ledger by key (None when the function writes
    none: then only the platform's own records count); `died`: the processes the fault
    killed (pid -> when seen dead)."""
    done = list(executions)
    terminal = sum(1 for e in done if e["latestStatus"]["status"] in TERMINAL)
    over = duplicated = 0
    for e in done:
        mine = [] if runs is None else runs.get(key(e), [])
        if max(e["attempts"], len(mine)) > e["maxAttempts"]:
            over += 1
        successes = sum(1 for entry in e.get("statusLog", []) if entry["status"] == "success")
        if _duplicated(mine, died or {}, successes):
            duplicated += 1
    return FaultRun(
        fault=fault,
        submitted=len(done),
        terminal=terminal,
        lost=len(done) - terminal,
        over_attempted=over,
        duplicated=duplicated,
        recovery=recovery,
    )


RECORDED: list[FaultRun] = []


def record(run: FaultRun) -> FaultRun:
    """Keep the line for the session's summary, and print it (shown with -s or on failure)."""
    RECORDED.append(run)
    print(run.line())
    return run


def table(runs: Iterable[FaultRun]) -> str:
    return "\n".join([*HEADER, *(r.row() for r in runs)]) + "\n"
