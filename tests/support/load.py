"""Executions created as a stream while a fault test runs (support/ledger.py writes what they
did): every answer kept with how long it took, the accepted ones by ledger key.

    async with loading(Load(client, service_id, ledger, random.Random(7)), every=0.2) as load:
        await load.submitted(10)
        ...  # the fault
    done = await await_terminal(client, service_id, set(load.accepted.values()), 300)
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
from support.ledger import ledger_input
from support.runs import eventually


@dataclass(frozen=True)
class Answer:
    at: float  # time.time(), comparable with the ledger's
    seconds: float  # how long the create took to answer
    status: int
    body: str


@dataclass
class Load:
    """Executions of 0.2-1 s created one every `every` seconds until stopped: those accepted
    (201) by ledger key, and every answer."""

    client: httpx.AsyncClient
    service_id: str
    ledger: Path
    rng: random.Random
    accepted: dict[str, str] = field(default_factory=dict)
    answers: list[Answer] = field(default_factory=list)

    async def run(self, stop: asyncio.Event, every: float) -> None:
        n = 0
        while not stop.is_set():
            await self.create(f"{self.service_id[:6]}-{n:04d}", round(self.rng.uniform(0.2, 1), 3))
            n += 1
            await asyncio.sleep(every)

    async def create(self, key: str, seconds: float) -> None:
        body = {"functionName": "run", "input": ledger_input(self.ledger, key, seconds)}
        started = time.monotonic()
        response = await self.client.post(f"/executions/{self.service_id}", json=body)
        answer = Answer(
            time.time(), time.monotonic() - started, response.status_code, response.text
        )
        self.answers.append(answer)
        if answer.status == 201:
            self.accepted[key] = str(orjson.loads(answer.body)["id"])

    async def submitted(self, count: int, timeout: float = 120) -> None:
        """Until `count` more executions have been accepted."""
        target = len(self.accepted) + count
        await eventually(f"{target} accepted", lambda: len(self.accepted) >= target, timeout)


@contextlib.asynccontextmanager
async def loading(load: Load, every: float) -> AsyncIterator[Load]:
    """`load` creating executions in the background while the block runs."""
    stop = asyncio.Event()
    task = asyncio.create_task(load.run(stop, every))
    try:
        yield load
    finally:
        stop.set()
        await task
