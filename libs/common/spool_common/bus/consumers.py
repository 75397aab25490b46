"""Consumers that come back after a reconnect, a reopened channel, or a broker's cancel.

Consumers are started by us, never restored by aio-pika (`robust=False`): its robust
connection reopens channels one by one in no fixed order (a WeakSet), and a consumer it
restores starts taking deliveries even when a later channel of the same attempt fails. That
happens whenever the broker still holds the old connection's exclusive queues (a frozen
broker or a half-open network, until it misses two heartbeats): every failed attempt took a
prefetch of the shared queue and handed it back, and each hand-back counts against the quorum
queue's delivery limit, so executions were dead-lettered without ever running (T07). So the
bus starts every consumer again only once a reconnect has restored every channel
(`Bus._on_reconnected`), and the watch below starts any consumer that is not on its channel
as that channel is now: the channel was reopened, or the broker cancelled the consumer.

RabbitMQ cancels a consumer with `basic.cancel` when its queue is deleted (by an operator, a
policy, a quorum queue losing its leader for good). aiormq drops that frame silently and
aio-pika has no callback for it (aio-pika#334). A consumer tag missing from the very channel
it was started on, while that channel is open and we did not cancel it, was cancelled by the
broker: the queue is declared again (from its spec, bindings included) and consumed under the
same tag (T09).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiormq
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustQueue,
)

from spool_common.bus.topology import QueueSpec
from spool_common.logging import get_logger

log = get_logger(__name__)

Callback = Callable[[AbstractIncomingMessage], Awaitable[None]]
WATCH_INTERVAL = 1.0  # seconds between looks at every consumer


async def declare(channel: AbstractChannel, spec: QueueSpec) -> AbstractQueue:
    """Declare a queue as its spec says, with its bindings, on `channel`."""
    queue = await channel.declare_queue(
        spec.name,
        durable=spec.durable,
        exclusive=spec.exclusive,
        auto_delete=spec.auto_delete,
        arguments=dict(spec.arguments),
    )
    for binding in spec.bindings:
        await queue.bind(binding.exchange, binding.routing_key)
    return queue


@dataclass
class Subscription:
    """One consumer: its channel, queue and tag, and how to restore it. `spec` is None for a
    queue consumed by name (declared by someone else), which is only consumed again once it
    exists again."""

    channel: AbstractChannel
    queue: AbstractRobustQueue
    callback: Callback
    spec: QueueSpec | None
    tag: str | None = None  # the broker's, from the first start; kept for every restart
    cancelled: bool = False  # by us
    gone: bool = False  # cancelled by the broker and not restorable (no spec)
    # The underlying channel the consumer was last started on (kept, so never reused).
    _on: Any = field(default=None, repr=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)

    async def start(self) -> None:
        """Consume the queue on its channel as it is now, under the subscription's tag."""
        self.tag = await self.queue.consume(self.callback, consumer_tag=self.tag, robust=False)
        self._on = await self.channel.get_underlay_channel()

    async def cancel(self) -> None:
        """Stop receiving new deliveries; unsettled ones stay with us until settled."""
        self.cancelled = True
        if self.tag is None:
            return
        with contextlib.suppress(
            aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError
        ):
            await self.queue.cancel(self.tag)

    async def keep(self) -> None:
        """Consume again if this consumer is not on its channel as that channel is now: the
        channel was reopened (a reconnect, a channel error), or the broker cancelled the
        consumer on it. Only to be called while the connection is whole (see the module's
        docstring). Raises the broker's error if the queue cannot be consumed."""
        async with self._lock:
            if self.cancelled or self.gone or self.channel.is_closed:
                return
            try:
                underlay = await self.channel.get_underlay_channel()
            except aiormq.exceptions.ChannelInvalidStateError:
                return  # reopening: looked at again once it is open
            if not isinstance(underlay, aiormq.Channel) or underlay.is_closed:
                return
            if underlay is not self._on:  # a reopened channel: never consumed on yet
                await self.start()
                log.info("consumer_started_again", queue=self.queue.name, consumer_tag=self.tag)
                return
            if self.tag in underlay.consumers:
                return
            log.warning(
                "consumer_cancelled_by_broker", queue=self.queue.name, consumer_tag=self.tag
            )
            if self.spec is None:
                self.gone = True  # someone else's queue: /livez fails from now on
                return
            await self.queue.declare()
            for binding in self.spec.bindings:
                await self.queue.bind(binding.exchange, binding.routing_key)
            await self.start()
            log.info("consumer_restored", queue=self.queue.name, consumer_tag=self.tag)


async def keep_all(subscriptions: list[Subscription]) -> None:
    """`keep` every subscription; one that fails is logged and left to the next look."""
    for subscription in list(subscriptions):
        try:
            await subscription.keep()
        except Exception as e:  # the watch must outlive any failed look (a closing channel...)
            log.warning("consumer_restore_failed", queue=subscription.queue.name, error=repr(e))


async def watch(
    subscriptions: list[Subscription],
    whole: Callable[[], bool],
    interval: float = WATCH_INTERVAL,
) -> None:
    """Keep every consumer on its channel while the connection is `whole`, until cancelled."""
    while True:
        await asyncio.sleep(interval)
        if whole():
            await keep_all(subscriptions)


def healthy(subscriptions: list[Subscription]) -> bool:
    """No subscription is known to be lost (for a liveness probe)."""
    return not any(s.gone for s in subscriptions)
