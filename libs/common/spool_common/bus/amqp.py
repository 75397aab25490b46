"""The RabbitMQ adapter: the only module that imports aio_pika.

It fixes the aio-pika defaults that lose or hide things (reference/reliability.md §0.4):
publisher confirms on, unroutable publishes raise, every publish has a timeout, prefetch is
always set, and acking a delivery from before a reconnect is logged instead of crashing.
Driver errors are translated here into `BusError` subclasses.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aio_pika
import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractRobustConnection,
    AbstractRobustQueue,
)
from yarl import URL

from spool_common import metrics
from spool_common.bus import consumers
from spool_common.bus.consumers import Subscription, declare
from spool_common.bus.dispositions import Disposition, Outcome, disposition_for
from spool_common.bus.topology import QueueSpec, Topology
from spool_common.logging import get_logger
from spool_common.messages import AnyMessage, DecodeError, Message, decode, encode

log = get_logger(__name__)


class BusError(Exception):
    """A bus operation failed; transient unless a subclass says otherwise."""


class Unroutable(BusError):
    """The broker found no queue for a mandatory publish."""


class PublishTimeout(BusError):
    """No confirm within the publish timeout (broker blocked, or reconnecting)."""


class RequestTimeout(BusError):
    """No reply to a request within its timeout."""


@dataclass
class Delivery:
    """One received message. `message` is None when the body could not be decoded."""

    raw: AbstractIncomingMessage
    message: AnyMessage | None
    error: DecodeError | None

    @property
    def redelivered(self) -> bool:
        return bool(self.raw.redelivered)

    async def settle(self, disposition: Disposition) -> None:
        """Ack, requeue or dead-letter. A stale delivery (from before a reconnect) is ignored:
        the broker has already requeued it and will deliver it again."""
        try:
            if disposition is Disposition.ACK:
                await self.raw.ack()
            elif disposition is Disposition.REQUEUE:
                await self.raw.nack(requeue=True)
            else:
                await self.raw.reject(requeue=False)
        except (aiormq.exceptions.ChannelInvalidStateError, aiormq.exceptions.AMQPError) as e:
            log.warning("stale_delivery_not_settled", disposition=disposition, error=str(e))


Handler = Callable[[Delivery], Awaitable[None]]
Responder = Callable[[AnyMessage], Awaitable[Message]]


class Bus:
    """A robust connection, one confirming publisher channel, consumers, and request/reply."""

    def __init__(
        self, url: str, topology: Topology, *, name: str, publish_timeout: float = 10.0
    ) -> None:
        self.url = url
        self.topology = topology
        self.name = name
        self.publish_timeout = publish_timeout
        self._connection: AbstractRobustConnection | None = None
        self._publisher: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}
        self._subscriptions: list[Subscription] = []
        self._watch: asyncio.Task[None] | None = None
        self._reply_queue: str | None = None
        self._pending: dict[str, asyncio.Future[AnyMessage]] = {}
        self._whole = False  # connected, every channel restored: consumers may start
        self._reconnect_waiters: list[asyncio.Future[None]] = []

    # connection ----------------------------------------------------------------------
    async def connect(self, *, attempts: int = 30, interval: float = 1.0) -> None:
        """Connect (retrying while the broker starts), then declare the static topology."""
        for attempt in range(1, attempts + 1):
            try:
                # The name shows in the broker's connection list (rabbitmqctl, management UI).
                url = URL(self.url).update_query(name=self.name)
                self._connection = await aio_pika.connect_robust(url, reconnect_interval=1)
                break
            except (OSError, aiormq.exceptions.AMQPError) as e:
                if attempt == attempts:
                    raise BusError(f"cannot connect to RabbitMQ at {self.url}: {e}") from e
                log.warning("bus_connect_retry", attempt=attempt, error=str(e))
                await asyncio.sleep(interval)
        self._conn.close_callbacks.add(self._on_lost)
        self._conn.reconnect_callbacks.add(self._on_reconnected)
        self._publisher = await self._conn.channel(publisher_confirms=True, on_return_raises=True)
        await self.apply_topology()
        self._whole = True

    def _on_lost(self, *_: object) -> None:
        """The connection closed (or a reconnect attempt failed): until a reconnect has
        restored every channel, no consumer is started again (bus/consumers.py)."""
        self._whole = False

    async def _on_reconnected(self, *_: object) -> None:
        """Every channel is back, the exclusive queues with them: start the consumers."""
        self._whole = True
        await consumers.keep_all(self._subscriptions)
        waiters, self._reconnect_waiters = self._reconnect_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        log.warning("bus_reconnected", name=self.name)
        metrics.bus_reconnected(self.name.split("-", 1)[0])  # "agent-<replica>" -> "agent"

    def next_reconnect(self) -> asyncio.Future[None]:
        """A future that resolves when the connection is next restored, its consumers with
        it. Cancel it to stop waiting."""
        self._reconnect_waiters = [w for w in self._reconnect_waiters if not w.done()]
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._reconnect_waiters.append(waiter)
        return waiter

    async def retry_after(self, delay: float) -> None:
        """Sleep `delay` seconds, or until the connection is restored if that comes sooner:
        what failed because the broker was away is tried again as soon as it can go through
        (a final report that sat out its backoff could find its lease reaped, T07)."""
        waiter = self.next_reconnect()
        try:
            await asyncio.wait({waiter}, timeout=delay)
        finally:
            waiter.cancel()

    @property
    def _conn(self) -> AbstractRobustConnection:
        if self._connection is None:
            raise BusError("bus is not connected")
        return self._connection

    @property
    def heartbeat(self) -> float:
        """The heartbeat interval the URL asks for, seconds (aiormq's 60 without one)."""
        return float(URL(self.url).query.get("heartbeat", "60"))

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def close(self) -> None:
        for fut in self._pending.values():
            fut.cancel()
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    # topology ------------------------------------------------------------------------
    async def apply_topology(self) -> None:
        """Declare every exchange and static queue. Idempotent; run by every process."""
        channel = self._channel()
        for spec in self.topology.exchanges():
            self._exchanges[spec.name] = await channel.declare_exchange(
                spec.name, aio_pika.ExchangeType(spec.kind.value), durable=True
            )
        for queue in self.topology.static_queues():
            await self.declare_queue(queue)

    async def declare_queue(self, spec: QueueSpec) -> None:
        await declare(self._channel(), spec)

    async def delete_queue(self, name: str) -> None:
        await self._channel().queue_delete(name)

    async def queue_depth(self, name: str) -> tuple[int, int]:
        """(ready messages, consumers) of a queue, by a passive declare."""
        channel = await self._conn.channel()
        try:
            queue = await channel.declare_queue(name, passive=True)
            result = queue.declaration_result
            return int(result.message_count or 0), int(result.consumer_count or 0)
        finally:
            await channel.close()

    def _channel(self) -> AbstractChannel:
        if self._publisher is None:
            raise BusError("bus is not connected")
        return self._publisher

    # publishing ----------------------------------------------------------------------
    async def publish(
        self,
        exchange: str,
        routing_key: str,
        message: Message | bytes,
        *,
        persistent: bool = True,
        reply_to: str | None = None,
        correlation_id: str | None = None,
        timeout: float | None = None,
    ) -> None:
        """Publish with a broker confirm within `timeout` (default: the publish timeout); raise
        Unroutable, PublishTimeout or another BusError (all transient)."""
        body = message if isinstance(message, bytes) else encode(message)
        amqp_message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=(
                aio_pika.DeliveryMode.PERSISTENT
                if persistent
                else aio_pika.DeliveryMode.NOT_PERSISTENT
            ),
            reply_to=reply_to,
            correlation_id=correlation_id,
        )
        with _publish_errors(f"{exchange}/{routing_key}"):
            async with asyncio.timeout(timeout or self.publish_timeout):
                ex = await self._exchange(exchange)
                await ex.publish(amqp_message, routing_key, mandatory=True)

    async def probe(self, timeout: float) -> None:
        """Raise BusError unless the broker confirms a publish within `timeout`: whether a
        publish (an agent's lease renewal, say) gets through right now. The probe is addressed
        to no queue, so the broker returns it with its confirm and nobody receives it."""
        with contextlib.suppress(Unroutable):
            probe = self.topology.name("probe")
            await self.publish("", probe, b"", persistent=False, timeout=timeout)

    async def _exchange(self, name: str) -> AbstractExchange:
        if name == "":
            return self._channel().default_exchange
        if name not in self._exchanges:
            self._exchanges[name] = await self._channel().get_exchange(name, ensure=False)
        return self._exchanges[name]

    # consuming -----------------------------------------------------------------------
    async def consume(
        self, queue: str | QueueSpec, handler: Handler, *, prefetch: int
    ) -> Subscription:
        """Consume a queue on its own channel with prefetch; the handler settles each delivery.
        Given a QueueSpec, the queue is declared (and bound) on that same channel, which is what
        an exclusive queue needs to be restored after a reconnect, and it is declared and
        consumed again if the broker cancels the consumer; a name is declared passively, and a
        cancelled consumer of it only makes `consuming` False. After a reconnect the consumer
        starts again only once every channel is back (bus/consumers.py)."""
        if prefetch < 1:
            raise ValueError("prefetch must be at least 1 (0 would mean unlimited)")
        channel = await self._conn.channel()
        await channel.set_qos(prefetch_count=prefetch)
        if isinstance(queue, QueueSpec):
            declared = await declare(channel, queue)
        else:
            # A passive declare registers the queue with the robust channel, which declares it
            # again after a reconnect (get_queue(ensure=False) would not).
            declared = await channel.declare_queue(queue, passive=True)
        if not isinstance(declared, AbstractRobustQueue):  # a robust connection's channel's
            raise TypeError(f"{declared!r} is not a robust queue")

        async def _on_message(raw: AbstractIncomingMessage) -> None:
            try:
                message: AnyMessage | None = decode(raw.body)
                error = None
            except DecodeError as e:
                message, error = None, e
            await handler(Delivery(raw, message, error))

        spec = queue if isinstance(queue, QueueSpec) else None
        subscription = Subscription(channel, declared, _on_message, spec)
        await subscription.start()
        self._subscriptions.append(subscription)
        if self._watch is None:
            self._watch = asyncio.create_task(
                consumers.watch(self._subscriptions, lambda: self._whole)
            )
        return subscription

    @property
    def consuming(self) -> bool:
        """No consumer of ours is known to have been cancelled by the broker for good."""
        return consumers.healthy(self._subscriptions)

    # request / reply -----------------------------------------------------------------
    async def request(
        self, exchange: str, routing_key: str, message: Message, *, timeout: float
    ) -> AnyMessage:
        """Send a request and wait for its reply on this connection's private reply queue."""
        reply_to = await self._ensure_reply_queue()
        correlation_id = uuid.uuid4().hex
        future: asyncio.Future[AnyMessage] = asyncio.get_running_loop().create_future()
        self._pending[correlation_id] = future
        try:
            await self.publish(
                exchange,
                routing_key,
                message,
                persistent=False,
                reply_to=reply_to,
                correlation_id=correlation_id,
            )
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError as e:
            raise RequestTimeout(f"no reply to {message.type} within {timeout}s") from e
        finally:
            self._pending.pop(correlation_id, None)

    async def _ensure_reply_queue(self) -> str:
        if self._reply_queue is None:
            name = self.topology.name(f"reply.{self.name}.{uuid.uuid4().hex[:12]}")
            channel = await self._conn.channel()
            queue = await channel.declare_queue(name, exclusive=True, auto_delete=True)
            await queue.consume(self._on_reply, no_ack=True)
            self._reply_queue = name
        return self._reply_queue

    async def _on_reply(self, raw: AbstractIncomingMessage) -> None:
        future = self._pending.get(raw.correlation_id or "")
        if future is None or future.done():
            return
        try:
            future.set_result(decode(raw.body))
        except DecodeError as e:
            future.set_exception(e)

    async def reply(self, delivery: Delivery, answer: Message) -> None:
        """Answer a request. A requester that has gone away is not an error."""
        reply_to = delivery.raw.reply_to
        if not reply_to:
            return
        with contextlib.suppress(Unroutable):
            await self.publish(
                "", reply_to, answer, persistent=False, correlation_id=delivery.raw.correlation_id
            )


@contextlib.contextmanager
def _publish_errors(what: str) -> Iterator[None]:
    """A publish's driver errors as BusErrors. A CancelledError that was not meant for this
    task is one too: aiormq hands the cancelled reader of a connection it found stuck (no
    frame for three heartbeats) to every confirm still pending, and that must not end the
    caller's loop (it ended the gateway's outbox relay for good, T07)."""
    try:
        yield
    except TimeoutError as e:
        raise PublishTimeout(f"no confirm for {what}") from e
    except aiormq.exceptions.PublishError as e:
        raise Unroutable(f"no queue bound for {what}") from e
    except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError) as e:
        raise BusError(f"publish to {what} failed: {e}") from e
    except asyncio.CancelledError as e:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
        raise BusError(f"publish to {what} failed: the connection was lost") from e


def describe(delivery: Delivery) -> dict[str, Any]:
    """Fields for a log line about a delivery."""
    return {
        "routing_key": delivery.raw.routing_key,
        "redelivered": delivery.redelivered,
        "type": getattr(delivery.message, "type", None),
    }


async def settle_after(
    delivery: Delivery,
    work: Callable[[AnyMessage | None], Awaitable[Outcome]],
    transient: tuple[type[BaseException], ...],
) -> None:
    """Run `work` on the decoded message and settle the delivery by its outcome. An exception
    of a `transient` type requeues it (nothing was recorded); any other exception is a bug or
    a message that can never be handled: it is logged and dead-lettered, never redelivered."""
    try:
        outcome = await work(delivery.message)
    except transient as e:
        log.warning("delivery_requeued", error=str(e), **describe(delivery))
        outcome = Outcome.TRANSIENT
    except Exception:
        log.exception("delivery_failed", **describe(delivery))
        outcome = Outcome.REJECTED
    if outcome not in (Outcome.HANDLED, Outcome.DUPLICATE, Outcome.TRANSIENT):
        log.warning(
            "delivery_rejected", outcome=outcome, error=str(delivery.error), **describe(delivery)
        )
    await delivery.settle(disposition_for(outcome))
