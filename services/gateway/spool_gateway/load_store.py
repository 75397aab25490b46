"""Store adapter of the load sampler: every service's load in one query, over a window taken
from a cursor row that all gateway processes share.

Why it stays cheap with 1,000 services and 1,000,000 stored executions (migrations 006, 008):

- **queued and running** read only the open executions through the partial index
  `executions_open (service_id, status) WHERE status IN ('created', 'rerun', 'in-progress')`;
  the query repeats that predicate verbatim, so the planner can use it. Finished executions,
  which are nearly all the rows, are never visited. Cost: the number of open executions.
- **requests** is a range scan of `executions_created (created_at, service_id)` over the
  window, `created_at > lower AND created_at <= upper`. Cost: executions created in the window.
- **latencies** is a range scan of the partial index `executions_ended (ended_at)` over the
  same window; `ended_at` is stamped by the database when a terminal status is written.
  Cost: executions ended in the window (each service's newest LATENCY_CAP are kept).

Each part is grouped by service and the three are joined on service_id: the work is
proportional to the load of the last few seconds, never to the table. Measured on 1,000,000
executions of 1,000 services with 14,000 open and 20,000 created in the window: 23 ms; with an
idle window: under 2 ms (`tests/integration/gateway/test_gateway_load_sampling.py` checks
that the plan uses these three indexes and no sequential scan).

The window's bounds come from the database's clock (`now()`), the same clock that stamps
`ended_at`; `created_at` is the gateway's clock when it accepted the request. The window ends
`load_sample_lag` before now (load_rules.sample_window), so a row committed up to that long
after its timestamp is still counted (in the window its timestamp falls in).

The cursor (`load_cursor`, one row) says where the previous sample ended. The process that
locks it (`FOR UPDATE SKIP LOCKED`) samples the next window and moves it on in the same
transaction; another gateway that finds it locked only reads the open counts for its gauges.
So with several gateways each window is sampled exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from spool_gateway.load_rules import LATENCY_CAP, Load, Window

_OPEN = (
    "SELECT service_id, count(*) FILTER (WHERE status <> 'in-progress') AS queued, "
    "count(*) FILTER (WHERE status = 'in-progress') AS running FROM executions "
    "WHERE status IN ('created', 'rerun', 'in-progress') GROUP BY service_id"
)

_LOAD = (
    "WITH open AS (SELECT service_id, count(*) FILTER (WHERE status <> 'in-progress') AS queued, "
    "count(*) FILTER (WHERE status = 'in-progress') AS running FROM executions "
    "WHERE status IN ('created', 'rerun', 'in-progress') GROUP BY service_id), "
    "created AS (SELECT service_id, count(*) AS requests FROM executions "
    "WHERE created_at > $1 AND created_at <= $2 GROUP BY service_id), "
    "ended AS (SELECT service_id, (array_agg(greatest(0, extract(epoch FROM "
    "coalesce(finished_at, ended_at) - created_at))::float8 ORDER BY ended_at DESC))[1:$3] "
    "AS latencies FROM executions WHERE ended_at > $1 AND ended_at <= $2 "
    "GROUP BY service_id) "
    "SELECT service_id, coalesce(o.queued, 0) AS queued, coalesce(o.running, 0) AS running, "
    "coalesce(c.requests, 0) AS requests, coalesce(e.latencies, '{}') AS latencies "
    "FROM open o FULL JOIN created c USING (service_id) FULL JOIN ended e USING (service_id)"
)  # `open` is _OPEN

# The public load summary (GET /services/load): the same three parts over the last `window`
# seconds for the given services, with the latency percentiles computed by the database. The
# latency is the sampler's (create -> finish).
_SUMMARY = (
    "WITH open AS (SELECT service_id, count(*) FILTER (WHERE status <> 'in-progress') AS queued, "
    "count(*) FILTER (WHERE status = 'in-progress') AS running FROM executions "
    "WHERE status IN ('created', 'rerun', 'in-progress') AND service_id = ANY($1) "
    "GROUP BY service_id), "
    "created AS (SELECT service_id, count(*) AS created FROM executions "
    "WHERE created_at > now() - make_interval(secs => $2) AND service_id = ANY($1) "
    "GROUP BY service_id), "
    "ended AS (SELECT service_id, count(*) AS finished, percentile_cont(ARRAY[0.5, 0.75]) "
    "WITHIN GROUP (ORDER BY greatest(0, extract(epoch FROM coalesce(finished_at, ended_at) "
    "- created_at))::float8) AS latency FROM executions "
    "WHERE ended_at > now() - make_interval(secs => $2) AND service_id = ANY($1) "
    "GROUP BY service_id) "
    "SELECT s.service_id, coalesce(o.queued, 0) AS queued, coalesce(o.running, 0) AS running, "
    "coalesce(c.created, 0) AS created, coalesce(e.finished, 0) AS finished, e.latency, "
    "now() AS at FROM unnest($1::text[]) AS s(service_id) LEFT JOIN open o USING (service_id) "
    "LEFT JOIN created c USING (service_id) LEFT JOIN ended e USING (service_id)"
)

Plan = Callable[[datetime | None, datetime], Window | None]


@dataclass(frozen=True)
class LoadSummary:
    """A service's load now: open counts, and what was created and finished in the last
    `window` seconds with the finished ones' latency percentiles (None: none finished)."""

    service_id: str
    queued: int
    running: int
    created: int
    finished: int
    p50: float | None
    p75: float | None
    at: datetime


@dataclass(frozen=True)
class LoadReading:
    """What one round read. Without a window (another gateway holds the cursor, or it is too
    soon) only `open_counts` is filled."""

    open_counts: dict[str, tuple[int, int]]
    window: Window | None = None
    loads: dict[str, Load] = field(default_factory=dict)
    previously_loaded: frozenset[str] = frozenset()


class LoadStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def read(self, plan: Plan) -> LoadReading:
        """Lock the cursor, ask `plan(sampled_until, now)` for the window, read every
        service's load in it and move the cursor to its end, in one transaction."""
        async with self.pool.acquire() as conn, conn.transaction():
            cursor = await conn.fetchrow(
                "SELECT sampled_until, loaded, now() AS now FROM load_cursor FOR UPDATE SKIP LOCKED"
            )
            window = plan(cursor["sampled_until"], cursor["now"]) if cursor else None
            if cursor is None or window is None:
                rows = await conn.fetch(_OPEN)
                return LoadReading({r["service_id"]: (r["queued"], r["running"]) for r in rows})
            rows = await conn.fetch(_LOAD, window.lower, window.upper, LATENCY_CAP)
            loads = {r["service_id"]: _load(r) for r in rows}
            await conn.execute(
                "UPDATE load_cursor SET sampled_until = $1, loaded = $2", window.upper, [*loads]
            )
            return LoadReading(
                {s: (x.queued, x.running) for s, x in loads.items() if x.queued or x.running},
                window,
                loads,
                frozenset(cursor["loaded"]),
            )

    async def summary(self, service_ids: list[str], window: float) -> list[LoadSummary]:
        """One LoadSummary per service id, in the order given. Reads the open executions
        (partial index executions_open) and those created or ended in the window (indexes
        executions_created and executions_ended): never the whole table."""
        rows = await self.pool.fetch(_SUMMARY, service_ids, window)
        return [
            LoadSummary(
                service_id=r["service_id"],
                queued=int(r["queued"]),
                running=int(r["running"]),
                created=int(r["created"]),
                finished=int(r["finished"]),
                p50=None if r["latency"] is None else float(r["latency"][0]),
                p75=None if r["latency"] is None else float(r["latency"][1]),
                at=r["at"],
            )
            for r in rows
        ]


def _load(row: asyncpg.Record) -> Load:
    return Load(
        queued=int(row["queued"]),
        running=int(row["running"]),
        requests=int(row["requests"]),
        latencies=tuple(float(x) for x in row["latencies"]),
    )
