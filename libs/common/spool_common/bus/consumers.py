"""Consumers that come back when the broker cancels them (reference/reliability.md T09).

RabbitMQ cancels a consumer with `basic.cancel` when its queue is deleted (by an operator, a
policy, a quorum queue losing its leader for good). aiormq drops that frame silently and
aio-pika has no callback for it (aio-pika#334): the process keeps running, connected and
healthy-looking, with nothing to consume. So every subscription is watched: a consumer tag
that is gone from its channel, while the channel is open and we did not cancel it, was
cancelled by the broker, and the queue is declared again (from its spec, bindings included)
and consumed under the same tag. The robust channel restores consumers after a reconnect by
itself; to keep the watch from racing that restore, a tag must be missing on two looks at the
same channel before it counts as cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiormq
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

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
    queue: AbstractQueue
    tag: str
    callback: Callback
    spec: QueueSpec | None
    cancelled: bool = False  # by us
    gone: bool = False  # cancelled by the broker and not restorable (no spec)
    _missing_on: Any = field(default=None, repr=False)  # the channel the tag was missing from

    async def cancel(self) -> None:
        """Stop receiving new deliveries; unsettled ones stay with us until settled."""
        self.cancelled = True
        with contextlib.suppress(
            aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError
        ):
            await self.queue.cancel(self.tag)

    async def lost(self) -> bool:
        """Whether the broker cancelled this consumer (seen twice on the same open channel)."""
        if self.cancelled or self.gone or self.channel.is_closed:
            self._missing_on = None
            return False
        try:
            underlay = await self.channel.get_underlay_channel()
        except aiormq.exceptions.ChannelInvalidStateError:
            self._missing_on = None  # reopening: the robust channel restores the consumer
            return False
        if not isinstance(underlay, aiormq.Channel):  # only aiormq's own channel keeps them
            return False
        if underlay.is_closed or self.tag in underlay.consumers:
            self._missing_on = None
            return False
        seen_before = self._missing_on is underlay
        self._missing_on = underlay
        return seen_before

    async def restore(self) -> None:
        """Declare the queue again and consume it under the same tag. The same queue object
        is reused, so the robust channel keeps restoring one consumer after a reconnect."""
        if self.spec is None:
            raise ValueError("a queue consumed by name is not ours to declare")
        await self.queue.declare()
        for binding in self.spec.bindings:
            await self.queue.bind(binding.exchange, binding.routing_key)
        await self.queue.consume(self.callback, consumer_tag=self.tag)
        self._missing_on = None


async def watch(subscriptions: list[Subscription], interval: float = WATCH_INTERVAL) -> None:
    """Restore every consumer the broker cancels, until cancelled itself."""
    while True:
        await asyncio.sleep(interval)
        for subscription in list(subscriptions):
            if not await subscription.lost():
                continue
            name = subscription.queue.name
            log.warning("consumer_cancelled_by_broker", queue=name, consumer_tag=subscription.tag)
            if subscription.spec is None:
                subscription.gone = True  # someone else's queue: /livez fails from now on
                continue
            try:
                await subscription.restore()
            except (aiormq.exceptions.AMQPError, aiormq.exceptions.ChannelInvalidStateError) as e:
                log.warning("consumer_restore_failed", queue=name, error=str(e))
            else:
                log.info("consumer_restored", queue=name, consumer_tag=subscription.tag)


def healthy(subscriptions: list[Subscription]) -> bool:
    """No subscription is known to be lost (for a liveness probe)."""
    return not any(s.gone for s in subscriptions)
