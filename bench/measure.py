"""Shared helpers of the throughput / latency benchmarks (imported, not run).

    import measure  # with bench/ on sys.path, as the scripts in bench/ have it

- `BoxCpu`: busy CPU time of the whole machine (every process, broker and database included)
  over a window, from /proc/stat;
- `process_cpu`: CPU time used so far by some processes (and their waited-for children);
- `percentile`, `summary_ms`: latency statistics;
- `mark_done`: how a peer's no-op task records that it ran (one byte appended to a file);
- `Result`: the one JSON line on stdout every benchmark ends with (progress goes to stderr);
- `purge_queue`, `delete_queue` (and their `a…` coroutine twins): RabbitMQ housekeeping.
"""

from __future__ import annotations

import asyncio
import math
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aio_pika
import orjson

BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"  # vhost "/", spelled so every client agrees
PG_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

_CLK_TCK = os.sysconf("SC_CLK_TCK")
# Fields of a "cpu" line of /proc/stat, after the label: user nice system idle iowait irq softirq
# steal guest guest_nice. Guest time is already counted in user / nice, so it is left out.
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


def log(*parts: object) -> None:
    """Progress and information: stderr, so that stdout holds the result line only."""
    print(*parts, file=sys.stderr, flush=True)


def mark_done(path: str) -> None:
    """Append one byte to `path`: how the peers' no-op tasks count completions (O_APPEND keeps
    concurrent writers from different processes from overwriting each other)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


def box_busy_seconds() -> float:
    """Busy CPU time of all cores of the machine since boot, in seconds."""
    with open("/proc/stat", "rb") as f:
        first = f.readline().split()
    if first[0] != b"cpu":
        raise RuntimeError("/proc/stat does not start with the aggregate cpu line")
    values = first[1:]
    return sum(int(values[i]) for i in _BUSY_FIELDS if i < len(values)) / _CLK_TCK


class BoxCpu:
    """Busy CPU seconds of the whole machine over a window: `with BoxCpu() as cpu: …`, then
    `cpu.seconds` (or `start()` … `stop()`, which returns them too)."""

    def __init__(self) -> None:
        self._start: float | None = None
        self.seconds = 0.0

    def start(self) -> BoxCpu:
        self._start = box_busy_seconds()
        return self

    def stop(self) -> float:
        if self._start is None:
            raise RuntimeError("BoxCpu.stop() before start()")
        self.seconds = box_busy_seconds() - self._start
        return self.seconds

    def __enter__(self) -> BoxCpu:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


def process_cpu(pids: Iterable[int], *, children: bool = True) -> float:
    """CPU seconds (user + system) used so far by these processes, plus, with `children`, by
    their children that have exited and been waited for. A process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_bytes()
        except (FileNotFoundError, ProcessLookupError):
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        fields = stat[stat.rindex(b")") + 2 :].split()
        # fields[0] is field 3 (state): utime, stime, cutime, cstime are fields 14..17.
        utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
        total += utime + stime + ((cutime + cstime) if children else 0)
    return total / _CLK_TCK


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of the values."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def summary_ms(values_seconds: Sequence[float]) -> dict[str, float]:
    """p50, p90, p99, max and mean of durations given in seconds, in milliseconds."""
    ms = [v * 1000 for v in values_seconds]
    return {
        "p50": round(percentile(ms, 50), 3),
        "p90": round(percentile(ms, 90), 3),
        "p99": round(percentile(ms, 99), 3),
        "max": round(max(ms), 3),
        "mean": round(sum(ms) / len(ms), 3),
    }


@dataclass
class Result:
    """One benchmark run: `n` executions in `seconds` of wall time, using `cpu_seconds` of the
    box's CPU. `latency_ms` (a `summary_ms`) for latency runs; `params` for the settings used."""

    system: str
    variant: str
    n: int
    seconds: float
    cpu_seconds: float
    latency_ms: dict[str, float] | None = None
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_ms_per_exec(self) -> float:
        return self.cpu_seconds * 1000 / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "system": self.system,
            "variant": self.variant,
            "n": self.n,
            "seconds": round(self.seconds, 4),
            "cpu_seconds": round(self.cpu_seconds, 3),
            "per_s": round(self.per_s, 1),
            "cpu_ms_per_exec": round(self.cpu_ms_per_exec, 4),
        }
        if self.latency_ms is not None:
            out["latency_ms"] = self.latency_ms
        if self.params:
            out["params"] = self.params
        return out

    def to_json(self) -> str:
        return orjson.dumps(self.to_dict()).decode()

    def emit(self) -> None:
        """Print the result line on stdout (the only thing a benchmark prints there)."""
        sys.stdout.write(self.to_json() + "\n")
        sys.stdout.flush()


async def apurge_queue(name: str, url: str = BROKER_URL) -> int:
    """Drop the ready messages of a queue; 0 if there is no such queue."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return 0
        result = await queue.purge()
        return int(result.message_count or 0)


async def adelete_queue(name: str, url: str = BROKER_URL) -> None:
    """Delete a queue, whatever it holds; nothing happens if there is no such queue."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name, if_unused=False, if_empty=False)


def purge_queue(name: str, url: str = BROKER_URL) -> int:
    """`apurge_queue` for code that runs no event loop."""
    return asyncio.run(apurge_queue(name, url))


def delete_queue(name: str, url: str = BROKER_URL) -> None:
    """`adelete_queue` for code that runs no event loop."""
    asyncio.run(adelete_queue(name, url))


def wait_until(
    predicate: Callable[[], bool], timeout: float, interval: float = 0.05, what: str = ""
) -> None:
    """Poll `predicate()` until it is true; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout} s: {what or predicate}")
        time.sleep(interval)
