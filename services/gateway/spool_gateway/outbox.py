"""Transactional outbox: state and the message announcing it commit together; the relay
publishes with broker confirms and deletes a row only after its confirm.

Two paths feed the relay. The fast path: a request that committed rows hands them to the
relay at once, so an execution is published within a millisecond of its commit. The sweep:
every `sweep_interval` the relay takes rows older than `sweep_age` that nobody deleted (the
process died between commit and confirm, or the publish failed) with FOR UPDATE SKIP LOCKED,
so several gateways never publish the same row at the same time. A row can still be published
twice (a crash after the confirm, before the delete); consumers are idempotent by design.

Both crash windows carry a failpoint (spool_common.failpoints), so the fault tests can kill
the gateway in each: `outbox.before_publish` (rows committed, nothing published: the sweep
must publish them) and `outbox.before_delete` (confirmed, rows still there: the sweep
publishes them again and the claim refuses the duplicate).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

import asyncpg

from spool_common.bus.amqp import Bus, BusError, Unroutable
from spool_common.failpoints import failpoint
from spool_common.logging import get_logger
from spool_common.store.pg import TRANSIENT_ERRORS

log = get_logger(__name__)

BATCH = 200


@dataclass(frozen=True)
class OutboxRow:
    exchange: str
    routing_key: str
    body: bytes
    id: int = 0


async def insert_outbox(conn: asyncpg.Connection, rows: list[OutboxRow]) -> list[int]:
    """Insert rows inside the caller's transaction; returns their ids."""
    if not rows:
        return []
    records = await conn.fetch(
        "INSERT INTO outbox (exchange, routing_key, body) "
        "SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) RETURNING id",
        [r.exchange for r in rows],
        [r.routing_key for r in rows],
        [r.body for r in rows],
    )
    return [r["id"] for r in records]


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        *,
        sweep_interval: float = 1.0,
        sweep_age: float = 2.0,
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.sweep_interval = sweep_interval
        self.sweep_age = sweep_age
        self._ready: asyncio.Queue[OutboxRow] = asyncio.Queue()

    async def enqueue(self, rows: list[OutboxRow]) -> None:
        """Record rows that announce nothing else written (an accepted entity event), then
        hand them over: once this returns, they will be published."""
        async with self.pool.acquire() as conn, conn.transaction():
            ids = await insert_outbox(conn, rows)
        self.hand_over(rows, ids)

    def hand_over(self, rows: list[OutboxRow], ids: list[int]) -> None:
        """Fast path: rows just committed under these ids."""
        if ids:
            failpoint("outbox.before_publish")
        for row, row_id in zip(rows, ids, strict=True):
            self._ready.put_nowait(OutboxRow(row.exchange, row.routing_key, row.body, row_id))

    async def run(self, stop: asyncio.Event) -> None:
        sweeper = asyncio.create_task(self._sweep_loop(stop))
        try:
            while not stop.is_set():
                batch = await self._next_batch(stop)
                if batch:
                    await self._relay(batch)
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper

    async def _relay(self, batch: list[OutboxRow]) -> None:
        """Publish a batch and forget what was confirmed. The relay outlives any one batch:
        whatever failed stays in the table, for the sweep."""
        try:
            await self._delete(await self._publish_all(batch))
        except Exception:
            log.exception("outbox_batch_failed", rows=len(batch))

    async def _next_batch(self, stop: asyncio.Event) -> list[OutboxRow]:
        getter = asyncio.create_task(self._ready.get())
        stopper = asyncio.create_task(stop.wait())
        await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        if not getter.done():
            getter.cancel()
            return []
        batch = [getter.result()]
        while len(batch) < BATCH and not self._ready.empty():
            batch.append(self._ready.get_nowait())
        return batch

    async def _publish_all(self, rows: list[OutboxRow]) -> list[int]:
        """Publish concurrently (confirms pipelined); return the ids the broker confirmed."""
        results = await asyncio.gather(*(self._publish(r) for r in rows))
        failpoint("outbox.before_delete")
        return [r.id for r, ok in zip(rows, results, strict=True) if ok]

    async def _publish(self, row: OutboxRow) -> bool:
        try:
            try:
                await self.bus.publish(row.exchange, row.routing_key, row.body)
            except Unroutable:
                if row.exchange != self.bus.topology.executions:
                    raise
                # A service queue can vanish (deleted by hand, broker reset): declare it again.
                await self.bus.declare_queue(self.bus.topology.service_queue(row.routing_key))
                await self.bus.publish(row.exchange, row.routing_key, row.body)
        except BusError as e:
            log.warning("outbox_publish_failed", outbox_id=row.id, error=str(e))
            return False
        return True

    async def _delete(self, ids: list[int]) -> None:
        """Forget published rows. If PostgreSQL is unreachable they stay, and the sweep
        publishes them again later (a duplicate the claim refuses): the relay goes on."""
        if not ids:
            return
        try:
            await self.pool.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", ids)
        except TRANSIENT_ERRORS as e:
            log.warning("outbox_delete_failed", rows=len(ids), error=str(e))

    async def _sweep_loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.sweep_interval)
            if stop.is_set():
                return
            try:
                await self.sweep()
            except Exception as e:  # the next sweep retries; the loop must outlive a failure
                log.warning("outbox_sweep_failed", error=str(e))

    async def sweep(self) -> int:
        """Publish and delete rows older than sweep_age; returns how many were published."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT id, exchange, routing_key, body FROM outbox "
                "WHERE created_at < now() - make_interval(secs => $1) "
                "ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED",
                self.sweep_age,
                BATCH,
            )
            if not rows:
                return 0
            failpoint("outbox.before_publish")
            batch = [OutboxRow(r["exchange"], r["routing_key"], r["body"], r["id"]) for r in rows]
            published = await self._publish_all(batch)
            if published:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", published)
            log.info("outbox_swept", published=len(published), pending=len(batch))
            return len(published)
