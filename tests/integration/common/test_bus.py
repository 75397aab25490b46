"""The bus adapter against the real RabbitMQ: confirms, unroutable publishes, request/reply,
poison bodies, consumers that survive a connection the broker closed, and reconnects that
take no deliveries until every channel is back."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime

import aio_pika
import aiormq
import pytest
from support.tcp_proxy import tcp_proxy
from yarl import URL

from spool_common import metrics
from spool_common.bus.amqp import Bus, Delivery, RequestTimeout, Unroutable
from spool_common.bus.dispositions import Disposition
from spool_common.bus.topology import Topology
from spool_common.messages import ClaimReply, ClaimRequest, ClaimVerdict, ExecutionRequested

pytestmark = pytest.mark.integration


def _request(n: int = 0) -> ExecutionRequested:
    return ExecutionRequested(
        execution_id=f"e{n}",
        service_id="s1",
        project_id="p",
        function_name="run",
        created_at=datetime.now(UTC),
    )


async def _collect(bus: Bus, queue: str, n: int) -> list[Delivery]:
    got: list[Delivery] = []
    done = asyncio.Event()

    async def handler(delivery: Delivery) -> None:
        got.append(delivery)
        await delivery.settle(Disposition.ACK)
        if len(got) >= n:
            done.set()

    await bus.consume(queue, handler, prefetch=10)
    await asyncio.wait_for(done.wait(), 10)
    return got


async def test_publish_without_a_queue_raises_unroutable(bus: Bus) -> None:
    with pytest.raises(Unroutable):
        await bus.publish(bus.topology.executions, "no-such-service", _request())


async def test_published_messages_are_consumed_and_decoded(bus: Bus) -> None:
    queue = bus.topology.service_queue("s1")
    await bus.declare_queue(queue)
    await asyncio.gather(
        *(bus.publish(bus.topology.executions, "s1", _request(i)) for i in range(20))
    )
    got = await _collect(bus, queue.name, 20)
    ids = [d.message.execution_id for d in got if isinstance(d.message, ExecutionRequested)]
    assert sorted(ids) == sorted(f"e{i}" for i in range(20))


async def test_undecodable_body_reaches_the_handler_as_an_error(bus: Bus) -> None:
    queue = bus.topology.service_queue("s1")
    await bus.declare_queue(queue)
    await bus.publish(bus.topology.executions, "s1", b"{not json")
    await bus.publish(bus.topology.executions, "s1", b'{"type": "no.such.type", "version": 1}')
    got = await _collect(bus, queue.name, 2)
    assert [d.message for d in got] == [None, None]
    assert "not JSON" in str(got[0].error)
    assert "type" in str(got[1].error)


async def test_prefetch_zero_is_refused(bus: Bus) -> None:
    with pytest.raises(ValueError, match="prefetch"):
        await bus.consume(bus.topology.gateway_claims.name, lambda d: asyncio.sleep(0), prefetch=0)


async def test_request_gets_its_reply_and_times_out_without_one(bus: Bus) -> None:
    async def answer(delivery: Delivery) -> None:
        assert isinstance(delivery.message, ClaimRequest)
        reply = ClaimReply(execution_id=delivery.message.execution_id, verdict=ClaimVerdict.GONE)
        await bus.reply(delivery, reply)
        await delivery.settle(Disposition.ACK)

    request = ClaimRequest(execution_id="e1", service_id="s1", replica_id="r1")
    with pytest.raises(RequestTimeout):
        await bus.request(bus.topology.agent, "claim", request, timeout=0.5)
    # The unanswered request is still queued; drain it before answering the next.
    await bus.consume(bus.topology.gateway_claims.name, answer, prefetch=5)
    reply = await bus.request(bus.topology.agent, "claim", request, timeout=5)
    assert isinstance(reply, ClaimReply)
    assert reply.verdict is ClaimVerdict.GONE


def _close_connection_named(name: str) -> None:
    out = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    pids = [line.split()[0] for line in out.splitlines() if name in line]
    assert pids, f"connection {name} not found"
    for pid in pids:
        subprocess.run(
            ["rabbitmqctl", "-q", "close_connection", pid, "test: forced close"],
            check=True,
            timeout=60,
        )


# aiormq leaves the old socket's StreamWriter to the garbage collector after a forced close.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_consumers_are_restored_after_the_broker_closes_the_connection(bus: Bus) -> None:
    queue = bus.topology.service_queue("s1")
    await bus.declare_queue(queue)
    got: list[str] = []

    async def handler(delivery: Delivery) -> None:
        assert isinstance(delivery.message, ExecutionRequested)
        got.append(delivery.message.execution_id)
        await delivery.settle(Disposition.ACK)

    await bus.consume(queue.name, handler, prefetch=5)
    await bus.publish(bus.topology.executions, "s1", _request(1))
    reconnects = metrics.BUS_RECONNECTS.labels(bus.name.split("-", 1)[0])
    before = reconnects._value.get()
    retry = asyncio.create_task(bus.retry_after(600))  # a failed publish's backoff
    await asyncio.to_thread(_close_connection_named, bus.name)
    for _ in range(100):  # the robust connection reconnects within about a second
        try:
            await bus.publish(bus.topology.executions, "s1", _request(2))
            break
        except Exception:
            await asyncio.sleep(0.1)
    for _ in range(100):
        if "e2" in got:
            break
        await asyncio.sleep(0.1)
    for _ in range(100):  # the reconnect callback runs after the channels are restored
        if reconnects._value.get() > before:
            break
        await asyncio.sleep(0.1)
    assert "e1" in got
    assert "e2" in got
    assert reconnects._value.get() == before + 1  # counted on /metrics
    await asyncio.wait_for(retry, 10)  # ended by the reconnect, not by its 600 s


async def _await(check: Callable[[], bool], what: str, timeout: float = 15) -> None:
    for _ in range(int(timeout / 0.1)):
        if check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}")


async def _delete_queue_elsewhere(amqp_url: str, name: str) -> None:
    """Delete a queue over another connection, as an operator or a policy would: the broker
    sends basic.cancel to its consumers (T09)."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(name)


async def test_t09_a_consumer_the_broker_cancels_is_consumed_again(bus: Bus) -> None:
    """The queue is deleted under the consumer (aio-pika alone would idle for ever,
    aio-pika#334): it is declared again with its bindings and consumed under the same tag, so
    executions published after the deletion still arrive, and the process stays live."""
    queue = bus.topology.service_queue("s1")
    got: list[str] = []

    async def handler(delivery: Delivery) -> None:
        assert isinstance(delivery.message, ExecutionRequested)
        got.append(delivery.message.execution_id)
        await delivery.settle(Disposition.ACK)

    subscription = await bus.consume(queue, handler, prefetch=5)
    await bus.publish(bus.topology.executions, "s1", _request(1))
    await _await(lambda: got == ["e1"], "the first message")
    await _delete_queue_elsewhere(bus.url, queue.name)

    async def delivered_again() -> bool:
        try:
            await bus.publish(bus.topology.executions, "s1", _request(2))
        except Unroutable:  # not declared again yet
            return False
        return True

    for _ in range(150):
        if await delivered_again():
            break
        await asyncio.sleep(0.1)
    await _await(lambda: got == ["e1", "e2"], "a message published after the deletion")
    assert bus.consuming
    _, consumers = await bus.queue_depth(queue.name)
    assert consumers == 1
    await subscription.cancel()
    _, consumers = await bus.queue_depth(queue.name)
    assert consumers == 0


async def test_t09_a_cancelled_consumer_of_a_named_queue_fails_liveness(bus: Bus) -> None:
    """A queue consumed by name belongs to someone else: it is not declared again, and the
    bus stops saying it is consuming, which /livez reports."""
    queue = bus.topology.service_queue("s2")
    await bus.declare_queue(queue)
    await bus.consume(queue.name, lambda d: d.settle(Disposition.ACK), prefetch=5)
    assert bus.consuming
    await _delete_queue_elsewhere(bus.url, queue.name)
    await _await(lambda: not bus.consuming, "bus.consuming to turn False")


async def _hold_exclusively(amqp_url: str, name: str) -> aio_pika.abc.AbstractConnection:
    """A connection of its own that holds the exclusive queue `name`, as the broker still
    holds a frozen or cut-off client's old connection until it misses two heartbeats."""
    for _ in range(100):
        connection = await aio_pika.connect(amqp_url)
        try:
            channel = await connection.channel()
            await channel.declare_queue(name, exclusive=True, auto_delete=True)
            return connection
        except aiormq.exceptions.ChannelLockedResource:  # the old connection is not gone yet
            await connection.close()
            await asyncio.sleep(0.1)
    raise AssertionError(f"{name} stayed locked")


# aiormq leaves the old socket's StreamWriter to the garbage collector after a forced close.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(60)
async def test_a_reconnect_that_cannot_take_back_its_exclusive_queue_takes_no_deliveries(
    amqp_url: str, namespace: str, broker_cleanup: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    """T07: while the broker still holds the old connection's exclusive queue, every
    reconnect attempt fails on it. An attempt that restored the shared queues' consumers
    before failing took their deliveries and handed them back, and each hand-back counts
    against the quorum queue's delivery limit: executions were dead-lettered without ever
    running. Consumers start again only once every channel is back."""
    async with tcp_proxy(URL(amqp_url).port or 5672) as proxy:
        url = str(URL(amqp_url).with_port(proxy.port))
        bus = Bus(url, Topology(namespace), name=f"test-{namespace}", publish_timeout=5)
        await bus.connect()
        shared = [bus.topology.service_queue(f"s{i}") for i in range(4)]
        broker_cleanup.extend(q.name for q in shared)
        control = bus.topology.control_queue("r1")
        deliveries: Counter[str] = Counter()
        counts: dict[str, int] = {}

        async def hold(delivery: Delivery) -> None:
            """Never settled, as deliveries wait for a free slot on a busy agent."""
            assert isinstance(delivery.message, ExecutionRequested)
            deliveries[delivery.message.execution_id] += 1
            count = (delivery.raw.headers or {}).get("x-delivery-count", 0)
            assert isinstance(count, int)
            counts[delivery.message.execution_id] = count

        # Shared queues consumed on channels opened before the exclusive one and after it: a
        # reconnect reopens channels in no fixed order.
        for queue in shared[:2]:
            await bus.consume(queue, hold, prefetch=5)
        await bus.consume(control, lambda d: d.settle(Disposition.ACK), prefetch=1)
        for queue in shared[2:]:
            await bus.consume(queue, hold, prefetch=5)
        for n in range(len(shared)):
            for i in range(2):
                await bus.publish(bus.topology.executions, f"s{n}", _request(10 * n + i))
        await _await(lambda: sum(deliveries.values()) == 8, "every message delivered once")

        proxy.refuse()
        proxy.disconnect_all()
        holder = await _hold_exclusively(amqp_url, control.name)
        proxy.accept()
        await _await(lambda: caplog.text.count("failed: RESOURCE_LOCKED") >= 2, "failed attempts")
        assert sum(deliveries.values()) == 8  # none while the attempts failed
        await holder.close()

        await _await(lambda: sum(deliveries.values()) == 16, "every message delivered again")
        assert set(deliveries.values()) == {2}
        assert set(counts.values()) == {1}  # handed back once, by the connection that closed
        await bus.close()
