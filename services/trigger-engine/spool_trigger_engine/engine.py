"""The trigger engine: entity events and cron ticks in, `trigger.fired` orders out.

Every fire carries a key (`rules.py`); the gateway creates at most one execution per key, so
Once holds across duplicate deliveries, restarts and several engines, and so does one
execution per cron tick. An event is acked only after its orders are confirmed by the broker;
a failed publish requeues the event (its keys make the retry harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from spool_common.bus.amqp import Bus, BusError
from spool_common.bus.dispositions import Outcome
from spool_common.cron import CronSchedule, assume_utc, due_tick, next_wakeup, parse_cron
from spool_common.errors import ValidationFailure
from spool_common.logging import get_logger
from spool_common.messages import (
    AnyMessage,
    EntityEvent,
    NotificationType,
    ServiceNotification,
    TriggerChanged,
    TriggerFired,
)
from spool_common.models import CronTriggerSpec, Trigger
from spool_trigger_engine.index import Compiled, TriggerIndex
from spool_trigger_engine.rules import MAX_LOOP_DEPTH, cron_key, event_key, is_loop, loop_depth
from spool_trigger_engine.store import TriggerStore

log = get_logger(__name__)

CRON_IDLE = 30.0  # the longest the cron loop sleeps when nothing is due sooner


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class _Cron:
    trigger: Trigger
    spec: CronTriggerSpec
    schedule: CronSchedule
    since: datetime  # ticks at or before this never fire (activation)
    start_at: datetime | None  # naive times on the wire are UTC
    end_at: datetime | None


class Engine:
    def __init__(
        self,
        bus: Bus,
        store: TriggerStore,
        *,
        clock: Callable[[], datetime] = utcnow,
        max_loop_depth: int = MAX_LOOP_DEPTH,
        cron_grace: float = 60.0,
    ) -> None:
        self.bus = bus
        self.store = store
        self.clock = clock
        self.max_loop_depth = max_loop_depth
        self.cron_grace = cron_grace
        self.index = TriggerIndex()
        self.crons: dict[str, _Cron] = {}
        self.revisions: dict[str, int] = {}
        self.last_ticks: dict[str, datetime] = {}
        self.wake = asyncio.Event()

    async def load(self) -> None:
        for trigger in await self.store.live():
            self._apply(trigger, deleted=False)
        self.last_ticks = await self.store.last_ticks()
        log.info("triggers_loaded", event_triggers=len(self.index), cron_triggers=len(self.crons))

    # trigger definitions ---------------------------------------------------------------------
    def remember(self, change: TriggerChanged) -> bool:
        """Apply a change to this process's index unless it already has a newer one."""
        trigger_id = change.trigger.id
        if self.revisions.get(trigger_id, 0) >= change.revision:
            return False
        self.revisions[trigger_id] = change.revision
        self._apply(change.trigger, change.deleted)
        self.wake.set()
        return True

    def _apply(self, trigger: Trigger, deleted: bool) -> None:
        self.index.remove(trigger.id)
        self.crons.pop(trigger.id, None)
        if deleted or not trigger.active:
            return
        if isinstance(trigger.spec, CronTriggerSpec):
            try:
                schedule = parse_cron(trigger.spec.cron)
            except ValidationFailure as e:  # validated by the gateway; never fire a bad one
                log.error("cron_trigger_invalid", trigger_id=trigger.id, error=str(e))
                return
            spec = trigger.spec
            since = assume_utc(trigger.updated_at or trigger.created_at or self.clock())
            start_at = assume_utc(spec.start_at) if spec.start_at else None
            end_at = assume_utc(spec.end_at) if spec.end_at else None
            self.crons[trigger.id] = _Cron(trigger, spec, schedule, since, start_at, end_at)
        else:
            self.index.put(trigger)

    async def on_update(self, message: AnyMessage | None) -> Outcome:
        """This process's own copy of every trigger change (its exclusive queue)."""
        if isinstance(message, TriggerChanged):
            self.remember(message)
        return Outcome.HANDLED if message is not None else Outcome.UNDECODABLE

    # the shared inbox ------------------------------------------------------------------------
    async def handle(self, message: AnyMessage | None) -> Outcome:
        if isinstance(message, TriggerChanged):
            await self.store.upsert(message.trigger, message.revision, message.deleted)
            self.remember(message)
            return Outcome.HANDLED
        if isinstance(message, EntityEvent):
            try:
                await self.on_event(message)
            except BusError as e:
                log.warning("fire_not_published", event_id=message.id, error=str(e))
                return Outcome.TRANSIENT
            return Outcome.HANDLED
        return Outcome.UNDECODABLE if message is None else Outcome.HANDLED

    async def on_event(self, event: EntityEvent) -> int:
        """Fire every matching trigger; returns how many orders were published."""
        matched = self.index.matching(event.project_id, event.resource, event.action, event.entity)
        fired = 0
        for compiled in matched:
            if is_loop(
                compiled.trigger.id, event.entity_id, event.origin, max_depth=self.max_loop_depth
            ):
                await self._loop_stopped(compiled, event)
                continue
            await self._publish(
                TriggerFired(
                    key=event_key(compiled.trigger, event, compiled.spec.execution_mode),
                    trigger_id=compiled.trigger.id,
                    project_id=compiled.trigger.project_id,
                    service_id=compiled.spec.operation.service_id,
                    function_name=compiled.spec.operation.function_name,
                    input=compiled.spec.input,
                    event=event,
                    at=self.clock(),
                )
            )
            fired += 1
        log.debug("event_matched", event_id=event.id, matched=len(matched), fired=fired)
        return fired

    async def _loop_stopped(self, compiled: Compiled, event: EntityEvent) -> None:
        trigger = compiled.trigger
        depth = loop_depth(trigger.id, event.entity_id, event.origin)
        message = (
            f"Trigger '{trigger.name}' ({trigger.id}) did not fire on {event.resource} "
            f"{event.entity_id} ({event.action}): the event was caused by its own executions "
            f"for this entity {depth} times in a row ({len(event.origin)} executions in the "
            "chain). Change the function or the trigger's filter so its own updates do not "
            "match."
        )
        log.warning("trigger_loop_stopped", trigger_id=trigger.id, entity_id=event.entity_id)
        notification = ServiceNotification(
            notification_id=uuid.uuid4().hex,
            service_id=compiled.spec.operation.service_id,
            notification=NotificationType.TRIGGER_LOOP,
            title="Trigger Loop Stopped",
            message=message,
            at=self.clock(),
        )
        await self.bus.publish(self.bus.topology.events, "notification.service", notification)

    async def _publish(self, fired: TriggerFired) -> None:
        await self.bus.publish(self.bus.topology.agent, "trigger.fired", fired)

    # cron ------------------------------------------------------------------------------------
    async def cron_round(self) -> datetime | None:
        """Fire every cron trigger that is due now; returns when to look again."""
        now = self.clock()
        wakeups: list[datetime] = []
        for trigger_id, cron in list(self.crons.items()):
            tick = due_tick(
                cron.schedule,
                last_fired=self.last_ticks.get(trigger_id),
                activated_at=cron.since,
                now=now,
                start_at=cron.start_at,
                end_at=cron.end_at,
                grace=self.cron_grace,
            )
            if tick is not None:
                await self._publish(
                    TriggerFired(
                        key=cron_key(cron.trigger, tick),
                        trigger_id=trigger_id,
                        project_id=cron.trigger.project_id,
                        service_id=cron.spec.operation.service_id,
                        function_name=cron.spec.operation.function_name,
                        input=cron.spec.input,
                        scheduled_at=tick,
                        at=now,
                    )
                )
                self.last_ticks[trigger_id] = tick
                await self.store.fired(trigger_id, tick)
                log.info("cron_fired", trigger_id=trigger_id, tick=tick.isoformat())
            wake = next_wakeup(cron.schedule, now=now, start_at=cron.start_at, end_at=cron.end_at)
            if wake is not None:
                wakeups.append(wake)
        return min(wakeups) if wakeups else None

    async def run_cron(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.wake.clear()
            try:
                wake = await self.cron_round()
            except Exception:  # a failed round (bus or database down) is retried shortly
                log.exception("cron_round_failed")
                wake = self.clock() + timedelta(seconds=1)
            delay = CRON_IDLE
            if wake is not None:
                delay = min(CRON_IDLE, max(0.05, (wake - self.clock()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(_first(stop, self.wake), delay)


async def _first(*events: asyncio.Event) -> None:
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
