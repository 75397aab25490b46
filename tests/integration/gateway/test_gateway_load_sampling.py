"""The load sampler on the real servers: one LoadSampled per round on `load.sampled` with each
service's queued, running, requests and latencies since the previous sample; a service that
went idle is sent once more with zeros; the queue gauges follow; several gateways sample each
window once. Executions are created through the gateway's API and moved on by its own claim and
finish, as an agent would."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from prometheus_client import REGISTRY
from support.gateway_live import Live, live_gateway, until

from spool_common.bus.amqp import Bus, Delivery
from spool_common.bus.dispositions import Disposition
from spool_common.bus.topology import Binding, QueueSpec, RoutingKey
from spool_common.messages import (
    ClaimRequest,
    ClaimVerdict,
    ExecutionFinished,
    LoadSampled,
    ServiceLoad,
)
from spool_common.models import ExecutionStatus
from spool_gateway.lifecycle import dead_letter_entry
from spool_gateway.load_rules import LATENCY_CAP
from spool_gateway.load_sampler import LoadSampler
from spool_gateway.load_store import _LOAD, _SUMMARY
from spool_gateway.settings import GatewaySettings

pytestmark = pytest.mark.integration

# Windows are at least INTERVAL / 2 long and at most 5 * INTERVAL; no lag, so what was just
# written is in the next sample.
INTERVAL = 0.5
SETTINGS = GatewaySettings(load_sample_interval=INTERVAL, load_sample_lag=0.0)


@pytest.fixture
async def live(pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str]) -> AsyncIterator[Live]:
    async with live_gateway(pool, bus, SETTINGS) as harness:
        yield harness
    broker_cleanup.extend(harness.queues)


@pytest.fixture
async def published(bus: Bus, broker_cleanup: list[str]) -> list[LoadSampled]:
    """Every LoadSampled off a queue of the test's own bound to `load.sampled` (removed after
    the test)."""
    samples: list[LoadSampled] = []
    spec = QueueSpec(
        bus.topology.name("test.load"), (Binding(bus.topology.events, RoutingKey.LOAD_SAMPLED),)
    )

    async def collect(delivery: Delivery) -> None:
        if isinstance(delivery.message, LoadSampled):
            samples.append(delivery.message)
        await delivery.settle(Disposition.ACK)

    await bus.consume(spec, collect, prefetch=10)
    broker_cleanup.append(spec.name)
    return samples


class Agent:
    """Claims and finishes executions through the gateway, as an agent's reports would."""

    def __init__(self, live: Live, service_id: str) -> None:
        self.live = live
        self.service_id = service_id
        self.created: dict[str, datetime] = {}

    async def create(self, count: int) -> list[str]:
        ids = []
        for _ in range(count):
            response = await self.live.api.post(f"/executions/{self.service_id}", json={})
            assert response.status_code == 201, response.text
            body = response.json()
            self.created[body["id"]] = datetime.fromisoformat(body["createdAt"])
            ids.append(body["id"])
        return ids

    async def claim(self, execution_id: str) -> None:
        request = ClaimRequest(
            execution_id=execution_id, service_id=self.service_id, replica_id="r1"
        )
        reply = await self.live.gw.claim(request)
        assert reply.verdict is ClaimVerdict.GRANTED

    async def finish(self, execution_id: str, seconds: float) -> None:
        """End the running attempt `seconds` after the execution was created."""
        created = self.created[execution_id]
        report = ExecutionFinished(
            execution_id=execution_id,
            attempt=1,
            replica_id="r1",
            status=ExecutionStatus.SUCCESS,
            started_at=created,
            finished_at=created + timedelta(seconds=seconds),
        )
        assert await self.live.gw.finish(report)


class Rounds:
    """Sampling rounds at least INTERVAL apart (a shorter window is skipped as too soon)."""

    def __init__(self, sampler: LoadSampler) -> None:
        self.sampler = sampler
        self.last = 0.0

    async def next(self) -> LoadSampled:
        await asyncio.sleep(max(0.0, self.last + INTERVAL - time.monotonic()))
        sample = await self.sampler.sample()
        self.last = time.monotonic()
        assert sample is not None
        return sample


def gauge(name: str, service_id: str) -> float | None:
    return REGISTRY.get_sample_value(name, {"service_id": service_id})


async def services(live: Live, count: int) -> list[Agent]:
    project_id, package_id = await live.package()
    return [
        Agent(live, await live.deploy(project_id, package_id, name=f"svc{i}")) for i in range(count)
    ]


async def test_each_round_publishes_every_services_load_since_the_previous_one(
    live: Live, published: list[LoadSampled]
) -> None:
    a, b, c = await services(live, 3)
    rounds = Rounds(LoadSampler(live.gw))
    first = await rounds.next()  # nothing yet: where the next window starts
    assert first.services == {}

    # C: one execution, created and ended (1.5 s create -> end).
    (c1,) = await c.create(1)
    await c.claim(c1)
    await c.finish(c1, 1.5)
    second = await rounds.next()
    assert second.services == {
        c.service_id: ServiceLoad(queued=0, running=0, requests=1, latencies=[1.5])
    }

    # A: three created, one of them running. B: two created and running, one ended. C: idle.
    a1, _, _ = await a.create(3)
    await a.claim(a1)
    b1, b2 = await b.create(2)
    await b.claim(b1)
    await b.claim(b2)
    await b.finish(b1, 0.25)
    third = await rounds.next()
    assert third.services == {
        a.service_id: ServiceLoad(queued=2, running=1, requests=3, latencies=[]),
        b.service_id: ServiceLoad(queued=0, running=1, requests=2, latencies=[0.25]),
        c.service_id: ServiceLoad(queued=0, running=0, requests=0, latencies=[]),  # went idle
    }
    assert third.at > second.at
    assert third.interval == pytest.approx((third.at - second.at).total_seconds())
    assert gauge("spool_queue_depth", a.service_id) == 2
    assert gauge("spool_executions_in_flight", a.service_id) == 1
    assert gauge("spool_executions_in_flight", b.service_id) == 1

    # B's last one ends; C, idle in the previous sample too, is no longer sent.
    await b.finish(b2, 2.0)
    fourth = await rounds.next()
    assert fourth.services == {
        a.service_id: ServiceLoad(queued=2, running=1, requests=0, latencies=[]),
        b.service_id: ServiceLoad(queued=0, running=0, requests=0, latencies=[2.0]),
    }
    assert gauge("spool_executions_in_flight", b.service_id) == 0
    assert gauge("spool_queue_depth", a.service_id) == 2

    async def all_four() -> bool:
        return len(published) >= 4

    await until(all_four)
    assert published == [first, second, third, fourth]


async def test_latencies_are_capped_to_the_newest_thousand_per_service(
    live: Live, pool: asyncpg.Pool
) -> None:
    (a,) = await services(live, 1)
    rounds = Rounds(LoadSampler(live.gw))
    await rounds.next()
    (template,) = await a.create(1)
    # 1,200 ended executions written at once (seconds 0.001 ... 1.2 create -> end).
    await pool.execute(
        "INSERT INTO executions (id, project_id, service_id, function_name, input, status, "
        "status_log, max_attempts, meta, created_at, updated_at) "
        "SELECT e.id || '-' || i, project_id, service_id, function_name, input, status, "
        "status_log, max_attempts, meta, created_at, updated_at "
        "FROM executions e, generate_series(1, 1200) i WHERE e.id = $1",
        template,
    )
    await pool.execute(
        "UPDATE executions SET status = 'success', "
        "finished_at = created_at + make_interval(secs => split_part(id, '-', 2)::int / 1000.0) "
        "WHERE id LIKE $1 || '-%'",
        template,
    )
    load = (await rounds.next()).services[a.service_id]
    assert (load.queued, load.requests, len(load.latencies)) == (1, 1201, 1000)
    assert all(0.001 <= x <= 1.2 for x in load.latencies)


async def test_several_gateways_sample_each_window_once(live: Live) -> None:
    (a,) = await services(live, 1)
    one, other = LoadSampler(live.gw), LoadSampler(live.gw)
    await Rounds(one).next()
    await a.create(2)
    await asyncio.sleep(INTERVAL)
    samples = [s for s in await asyncio.gather(one.sample(), other.sample()) if s is not None]
    assert [s.services[a.service_id].requests for s in samples] == [2]
    assert await other.sample() is None  # the window just sampled is too short for another


async def test_the_loop_samples_every_interval_until_stopped(
    live: Live, published: list[LoadSampled]
) -> None:
    (a,) = await services(live, 1)
    await a.create(1)
    stop = asyncio.Event()
    running = asyncio.create_task(LoadSampler(live.gw).run(stop))

    async def three() -> bool:
        return len(published) >= 3

    await until(three)
    stop.set()
    await asyncio.wait_for(running, 5)
    assert published[0].services[a.service_id].queued == 1
    assert all(s.interval >= INTERVAL / 2 for s in published[1:])


async def test_every_way_an_execution_ends_counts_in_the_next_sample(live: Live) -> None:
    a, doomed = await services(live, 2)
    rounds = Rounds(LoadSampler(live.gw))
    await rounds.next()
    terminated, dead, rerun = await a.create(3)
    await doomed.create(1)
    for execution_id in (terminated, rerun):
        response = await live.api.post(f"/executions/{execution_id}/terminate")
        assert response.json()["latestStatus"]["status"] == "terminated", response.text
    entry = dead_letter_entry("delivery_limit", datetime.now(UTC))
    assert await live.gw.ledger.fail_queued(dead, entry)
    deleted = await live.api.delete(f"/services/{doomed.service_id}")
    assert deleted.status_code == 204, deleted.text
    sample = await rounds.next()
    assert (sample.services[a.service_id].queued, len(sample.services[a.service_id].latencies)) == (
        0,
        3,
    )
    assert len(sample.services[doomed.service_id].latencies) == 1  # canceled with its service

    # A rerun is queued again: no longer ended.
    response = await live.api.post(f"/executions/{rerun}/rerun")
    assert response.status_code == 200, response.text
    assert (await rounds.next()).services[a.service_id] == ServiceLoad(queued=1, running=0)


async def test_the_load_query_reads_only_open_and_recent_rows(
    live: Live, pool: asyncpg.Pool
) -> None:
    """100,000 executions ended over the past week: the sample's query and the load summary's
    use the time-bounded indexes and the open one, never a sequential scan of executions."""
    (a,) = await services(live, 1)
    (template,) = await a.create(1)
    await pool.execute(
        "INSERT INTO executions (id, project_id, service_id, function_name, input, status, "
        "status_log, max_attempts, meta, created_at, updated_at, finished_at, ended_at) "
        "SELECT e.id || '-' || i, project_id, service_id, function_name, input, 'success', "
        "status_log, max_attempts, meta, t, t, t + interval '1 s', t + interval '1 s' "
        "FROM executions e, generate_series(1, 100000) i, "
        "LATERAL (SELECT now() - i * interval '6 s') AS at(t) WHERE e.id = $1",
        template,
    )
    await pool.execute("ANALYZE executions")
    now = await pool.fetchval("SELECT now()")
    plan = await pool.fetchval(
        "EXPLAIN (FORMAT JSON) " + _LOAD, now - timedelta(seconds=2), now, LATENCY_CAP
    )
    scans = {(node["Node Type"], node.get("Index Name")) for node in plan_nodes(plan[0]["Plan"])}
    assert not any(kind == "Seq Scan" for kind, _ in scans), scans
    assert {"executions_open", "executions_created", "executions_ended"} <= {i for _, i in scans}

    # The same for GET /services/load (the dashboard's figures), over its widest window.
    plan = await pool.fetchval("EXPLAIN (FORMAT JSON) " + _SUMMARY, [a.service_id], 3600.0)
    nodes = list(plan_nodes(plan[0]["Plan"]))
    scanned = {(n["Node Type"], n.get("Index Name")) for n in nodes if "Relation Name" in n}
    assert all(kind != "Seq Scan" for kind, _ in scanned), scanned


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)
