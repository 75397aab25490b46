"""Scale decisions (`scale.decided`, recorded once, `GET /services/{id}/scaling`) and the query
log (`GET /services/{id}/query-log`, JSON and CSV), through a whole gateway on the real servers
(support/gateway_live.py)."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from support.gateway_live import Live, live_gateway, until

from spool_common.bus.amqp import Bus
from spool_common.messages import (
    ClaimRequest,
    ExecutionFinished,
    ReplicaChanged,
    ReplicaState,
    ScaleDecided,
)
from spool_common.models import ExecutionStatus, PackageFunction, PackageModule
from spool_gateway.scaling_store import Recorded, ScalingStore

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def live(pool: asyncpg.Pool, bus: Bus, broker_cleanup: list[str]) -> AsyncIterator[Live]:
    async with live_gateway(pool, bus) as harness:
        yield harness
    broker_cleanup.extend(harness.queues)


async def a_service(live: Live) -> str:
    modules = [
        PackageModule(functions=[PackageFunction(name="run"), PackageFunction(name="score")])
    ]
    project_id, package_id = await live.package(modules)
    return await live.deploy(project_id, package_id)


def decision(service_id: str, at: datetime, replicas: int, previous: int | None) -> ScaleDecided:
    return ScaleDecided(
        service_id=service_id,
        replicas=replicas,
        previous=previous,
        rule="queue",
        reason=f"queue 12 > 5 per replica x {previous}",
        inputs={"queued": 12.0, "running": 2.0},
        at=at,
    )


async def get(live: Live, path: str, **params: Any) -> Any:
    response = await live.api.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# --- scale decisions -------------------------------------------------------------------------


async def test_a_decision_delivered_three_times_is_recorded_once(
    live: Live, bus: Bus, pool: asyncpg.Pool
) -> None:
    service_id = await a_service(live)
    first = decision(service_id, T0, 3, 1)
    for _ in range(3):
        await bus.publish(bus.topology.events, "scale.decided", first)

    async def listed() -> bool:
        return len(await get(live, f"/services/{service_id}/scaling")) == 1

    await until(listed)
    await asyncio.sleep(0.3)  # the two other deliveries are handled by now
    assert await pool.fetchval("SELECT count(*) FROM scaling_decisions") == 1
    assert await live.gw.scaling.record(first, keep=10) is Recorded.DUPLICATE
    assert await get(live, f"/services/{service_id}/scaling") == [
        {
            "at": "2026-05-01T12:00:00Z",
            "from": 1,
            "to": 3,
            "rule": "queue",
            "reason": "queue 12 > 5 per replica x 1",
            "inputs": {"queued": 12.0, "running": 2.0},
        }
    ]


async def test_decisions_are_listed_newest_first_and_the_oldest_are_dropped(
    live: Live, pool: asyncpg.Pool
) -> None:
    service_id = await a_service(live)
    other = await a_service(live)
    steps = [(0, 1, None), (1, 2, 1), (2, 4, 2), (3, 2, 4), (4, 0, 2)]  # (minute, to, from)
    for minute, replicas, previous in steps:
        recorded = await live.gw.scaling.record(
            decision(service_id, T0 + timedelta(minutes=minute), replicas, previous), keep=4
        )
        assert recorded is Recorded.RECORDED
    assert await live.gw.scaling.record(decision(other, T0, 1, 0), keep=4) is Recorded.RECORDED
    gone = decision("no-such-service", T0, 1, 0)
    assert await live.gw.scaling.record(gone, keep=4) is Recorded.UNKNOWN_SERVICE

    path = f"/services/{service_id}/scaling"
    listed = await get(live, path)
    assert [(d["from"], d["to"]) for d in listed] == [(2, 0), (4, 2), (2, 4), (1, 2)]  # 4 kept
    assert [d["at"] for d in listed] == sorted((d["at"] for d in listed), reverse=True)
    since = (T0 + timedelta(minutes=3)).isoformat()
    assert [d["to"] for d in await get(live, path, since=since)] == [0, 2]
    assert [d["to"] for d in await get(live, path, since="2026-05-01T12:03:00")] == [0, 2]  # UTC
    assert [d["to"] for d in await get(live, path, limit=1)] == [0]
    assert [d["to"] for d in await get(live, f"/services/{other}/scaling")] == [1]
    assert await pool.fetchval("SELECT count(*) FROM scaling_decisions") == 5


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"since": "yesterday"}, "since", id="since-not-a-time"),
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 1001}, "limit", id="limit-too-big"),
    ],
)
async def test_a_bad_scaling_query_names_the_field(
    live: Live, params: dict[str, Any], field: str
) -> None:
    service_id = await a_service(live)
    response = await live.api.get(f"/services/{service_id}/scaling", params=params)
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]


async def test_scaling_of_an_unknown_service_is_not_found(live: Live) -> None:
    response = await live.api.get("/services/nope/scaling")
    assert response.status_code == 404, response.text
    assert response.json()["details"] == [{"field": "serviceId", "reason": "no such service"}]


# --- query log -------------------------------------------------------------------------------


class Log:
    """A service with four executions: `run` ended after 1.25 s, `score` running, an invoke of
    `run` that did not finish within its timeout, and `run` again (queued)."""

    def __init__(self, live: Live, service_id: str, rows: list[dict[str, Any]]) -> None:
        self.live = live
        self.service_id = service_id
        self.rows = rows

    async def query(self, **params: Any) -> Any:
        return await get(self.live, f"/services/{self.service_id}/query-log", **params)


@pytest.fixture
async def query_log(live: Live) -> Log:
    service_id = await a_service(live)
    created = []
    for function in ("run", "score"):
        response = await live.api.post(f"/executions/{service_id}", json={"functionName": function})
        assert response.status_code == 201, response.text
        created.append(response.json())
    invoked = await live.api.post(
        f"/executions/{service_id}/invoke", params={"timeout": 0.05}, json={}
    )
    assert invoked.status_code == 202, invoked.text
    created.append(invoked.json())
    queued = await live.api.post(f"/executions/{service_id}", json={})
    created.append(queued.json())
    ended, running = created[0], created[1]
    for execution in (ended, running):
        request = ClaimRequest(execution_id=execution["id"], service_id=service_id, replica_id="r")
        await live.gw.claim(request)
    start = datetime.fromisoformat(ended["createdAt"])
    finished = ExecutionFinished(
        execution_id=ended["id"],
        attempt=1,
        replica_id="r",
        status=ExecutionStatus.SUCCESS,
        started_at=start,
        finished_at=start + timedelta(seconds=1.25),
    )
    assert await live.gw.finish(finished)
    return Log(live, service_id, created)


async def test_the_query_log_has_one_row_per_execution_oldest_first(query_log: Log) -> None:
    ended, running, invoked, queued = query_log.rows
    finished_at = datetime.fromisoformat(ended["createdAt"]) + timedelta(seconds=1.25)
    assert await query_log.query() == [
        {
            "executionId": ended["id"],
            "functionName": "run",
            "kind": "execution",
            "createdAt": ended["createdAt"],
            "finishedAt": finished_at.isoformat().replace("+00:00", "Z"),
            "latencySeconds": 1.25,
            "status": "success",
        },
        {
            "executionId": running["id"],
            "functionName": "score",
            "kind": "execution",
            "createdAt": running["createdAt"],
            "finishedAt": None,
            "latencySeconds": None,
            "status": "in-progress",
        },
        {
            "executionId": invoked["id"],
            "functionName": "run",
            "kind": "invoke",
            "createdAt": invoked["createdAt"],
            "finishedAt": None,
            "latencySeconds": None,
            "status": "created",
        },
        {
            "executionId": queued["id"],
            "functionName": "run",
            "kind": "execution",
            "createdAt": queued["createdAt"],
            "finishedAt": None,
            "latencySeconds": None,
            "status": "created",
        },
    ]


async def test_the_query_log_is_filtered_by_time_and_function(query_log: Log) -> None:
    ended, running, invoked, queued = query_log.rows

    def ids(rows: list[dict[str, Any]]) -> list[str]:
        return [r["executionId"] for r in rows]

    assert ids(await query_log.query(functionName="score")) == [running["id"]]
    assert ids(await query_log.query(functionName="nope")) == []
    since_invoke = await query_log.query(**{"from": invoked["createdAt"]})
    assert ids(since_invoke) == [invoked["id"], queued["id"]]  # from is inclusive
    until_invoke = await query_log.query(to=invoked["createdAt"])
    assert ids(until_invoke) == [ended["id"], running["id"]]  # to is exclusive
    window = await query_log.query(**{"from": running["createdAt"], "to": queued["createdAt"]})
    assert ids(window) == [running["id"], invoked["id"]]
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert await query_log.query(to=an_hour_ago) == []
    assert ids(await query_log.query(functionName="run", limit=2)) == [ended["id"], invoked["id"]]


async def test_the_query_log_says_when_it_was_cut_at_the_limit(query_log: Log) -> None:
    path = f"/services/{query_log.service_id}/query-log"
    cut = await query_log.live.api.get(path, params={"limit": 3})
    assert len(cut.json()) == 3
    assert cut.headers["X-Spool-Truncated"] == "true"
    whole = await query_log.live.api.get(path, params={"limit": 4})
    assert len(whole.json()) == 4
    assert "X-Spool-Truncated" not in whole.headers


async def test_the_query_log_as_csv_has_a_header_row(query_log: Log) -> None:
    ended, running, invoked, queued = query_log.rows
    response = await query_log.live.api.get(
        f"/services/{query_log.service_id}/query-log", params={"format": "csv"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.text.splitlines()[0] == (
        "executionId,functionName,kind,createdAt,finishedAt,latencySeconds,status"
    )
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["executionId"], r["kind"], r["status"]) for r in rows] == [
        (ended["id"], "execution", "success"),
        (running["id"], "execution", "in-progress"),
        (invoked["id"], "invoke", "created"),
        (queued["id"], "execution", "created"),
    ]
    assert (rows[0]["latencySeconds"], rows[1]["latencySeconds"], rows[1]["finishedAt"]) == (
        "1.25",
        "",
        "",
    )
    assert rows[0]["createdAt"] == ended["createdAt"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        pytest.param({"format": "xml"}, "format", id="format-unknown"),
        pytest.param({"from": "last tuesday"}, "from", id="from-not-a-time"),
        pytest.param({"to": "soon"}, "to", id="to-not-a-time"),
        pytest.param(
            {"from": "2026-05-02T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
            "from",
            id="from-after-to",
        ),
        pytest.param(
            {"from": "2026-05-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"}, "from", id="empty-range"
        ),
        pytest.param({"limit": 0}, "limit", id="limit-zero"),
        pytest.param({"limit": 10_001}, "limit", id="limit-too-big"),
        pytest.param({"functionName": ""}, "functionName", id="functionName-empty"),
    ],
)
async def test_a_bad_query_log_request_names_the_field(
    live: Live, params: dict[str, Any], field: str
) -> None:
    service_id = await a_service(live)
    response = await live.api.get(f"/services/{service_id}/query-log", params=params)
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]


async def test_the_query_log_of_an_unknown_service_is_not_found(live: Live) -> None:
    response = await live.api.get("/services/nope/query-log")
    assert response.status_code == 404, response.text


# --- the load of services (GET /services/load) and the executions list's filters -------------


async def test_the_load_counts_open_executions_and_those_of_the_window(
    query_log: Log, live: Live
) -> None:
    idle = await a_service(live)
    project = (await get(live, f"/services/{idle}"))["projectId"]
    (load,) = await get(live, "/services/load", serviceId=query_log.service_id)
    assert {k: v for k, v in load.items() if k != "at"} == {
        "serviceId": query_log.service_id,
        "queued": 2,  # the invoke and the last execution
        "inFlight": 1,
        "created": 4,
        "finished": 1,
        "executionsPerMinute": 1.0,  # one finished in 60 s
        "latencyP50": 1.25,
        "latencyP75": 1.25,
        "window": 60,
    }
    assert abs(datetime.fromisoformat(load["at"]) - datetime.now(UTC)) < timedelta(minutes=1)
    by_service = {x["serviceId"]: x for x in await get(live, "/services/load", projectId=project)}
    assert set(by_service) == {idle}  # each a_service has its own project
    assert by_service[idle]["latencyP50"] is None
    assert by_service[idle]["queued"] == by_service[idle]["finished"] == 0
    (wide,) = await get(live, "/services/load", serviceId=query_log.service_id, window=600)
    assert wide["executionsPerMinute"] == 0.1
    assert wide["window"] == 600


async def test_the_load_of_an_unknown_service_is_not_found(live: Live) -> None:
    response = await live.api.get("/services/load", params={"serviceId": "nope"})
    assert response.status_code == 404, response.text
    assert response.json()["details"] == [{"field": "serviceId", "reason": "no such service"}]


async def test_the_status_of_every_service_is_each_ones_status_in_one_request(
    live: Live,
) -> None:
    project_id, package_id = await live.package()
    ready, scaled, paused = [await live.deploy(project_id, package_id, n) for n in "abc"]
    other = await a_service(live)  # another project
    scaler = {"type": "rabbitmq", "minReplicas": 0, "maxReplicas": 4}
    patch = {"runtime": {"autoscaler": scaler}}
    assert (await live.api.patch(f"/services/{scaled}", json=patch)).status_code == 200
    assert (await live.api.post(f"/services/{paused}/stop")).status_code == 200
    now = datetime.now(UTC)
    heard = [
        (ready, "r-old", ReplicaState.STOPPED, now - timedelta(minutes=5)),
        (ready, "r-drain", ReplicaState.DRAINING, now - timedelta(seconds=2)),
        (ready, "r-up", ReplicaState.READY, now),
        (other, "o-up", ReplicaState.READY, now),
    ]
    for service_id, replica_id, state, at in heard:
        event = ReplicaChanged(
            replica_id=replica_id, service_id=service_id, state=state, at=at, revision=1
        )
        await live.gw.services.record_replica(event)
    await ScalingStore(live.gw.catalog.pool).record(decision(scaled, now, 3, 0), keep=10)

    listed = await get(live, "/services/status", projectId=project_id)
    assert [s["serviceId"] for s in listed] == [ready, scaled, paused]  # by creation
    assert listed == [await get(live, f"/services/{i}/status") for i in (ready, scaled, paused)]
    first, second, third = listed
    assert (first["status"], first["desiredReplicas"]) == ("Active", 1)
    assert [r["replicaId"] for r in first["runtimeStatus"]] == ["r-up", "r-drain"]  # newest first
    assert (second["status"], second["desiredReplicas"]) == ("Initializing", 3)  # the decision
    assert (second["revision"], third["status"]) == (2, "Inactive")
    everything = {s["serviceId"] for s in await get(live, "/services/status")}  # admin: all
    assert {ready, scaled, paused, other} <= everything
    unknown = await live.api.get("/services/status", params={"projectId": "nope"})
    assert unknown.status_code == 404, unknown.text
    assert [d["field"] for d in unknown.json()["details"]] == ["projectId"]


async def test_executions_are_listed_by_function_and_creation_time(query_log: Log) -> None:
    ended, running, invoked, queued = query_log.rows

    async def ids(**params: Any) -> list[str]:
        found = await get(query_log.live, "/executions", serviceId=query_log.service_id, **params)
        return [e["id"] for e in found]

    assert await ids(functionName="score") == [running["id"]]
    assert await ids(functionName="nope") == []
    newest_first = [queued["id"], invoked["id"], running["id"], ended["id"]]
    assert await ids() == newest_first
    assert await ids(**{"from": invoked["createdAt"]}) == newest_first[:2]  # inclusive
    assert await ids(to=invoked["createdAt"]) == newest_first[2:]  # exclusive
    window = {"from": running["createdAt"], "to": queued["createdAt"]}
    assert await ids(functionName="run", **window) == [invoked["id"]]
    naive = datetime.fromisoformat(invoked["createdAt"]).replace(tzinfo=None).isoformat()
    assert await ids(**{"from": naive}) == newest_first[:2]  # no zone: UTC


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        pytest.param("/services/load", {"window": 1}, "window", id="window-too-short"),
        pytest.param("/services/load", {"window": 3601}, "window", id="window-too-long"),
        pytest.param("/services/load", {"window": "a minute"}, "window", id="window-not-a-number"),
        pytest.param("/executions", {"from": "yesterday"}, "from", id="from-not-a-time"),
        pytest.param(
            "/executions",
            {"from": "2026-05-02T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
            "from",
            id="from-after-to",
        ),
        pytest.param("/executions", {"functionName": ""}, "functionName", id="empty-function"),
    ],
)
async def test_a_bad_load_or_executions_query_names_the_field(
    live: Live, path: str, params: dict[str, Any], field: str
) -> None:
    response = await live.api.get(path, params=params)
    assert response.status_code == 400, response.text
    assert [d["field"] for d in response.json()["details"]] == [field]
