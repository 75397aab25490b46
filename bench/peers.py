"""Peers of the Spool benchmarks on the same machine: Celery, Dramatiq and the raw limit.

    .venv/bin/python bench/peers.py celery --pool prefork -n 20000        # -c 2 by default
    .venv/bin/python bench/peers.py celery --pool threads -n 20000        # -c 10 by default
    .venv/bin/python bench/peers.py celery --pool prefork --acks-late-confirms -n 20000
    .venv/bin/python bench/peers.py celery-latency -n 1000
    .venv/bin/python bench/peers.py dramatiq -n 20000                     # 2 processes x 8 threads
    .venv/bin/python bench/peers.py raw --mode naive -n 20000
    .venv/bin/python bench/peers.py raw --mode batched -n 20000
    .venv/bin/python bench/peers.py raw-latency -n 1000

Needs RabbitMQ (127.0.0.1:5672, guest/guest) and PostgreSQL (127.0.0.1:5432, user postgres,
trust) running, and the `bench` extra installed (`pip install -e '.[dev,bench]'`).

Every run prints exactly one JSON line on stdout (a `measure.Result`: executions per second,
and CPU milliseconds per execution of the whole box, broker and database included, over the
measured window); progress goes to stderr.

Throughput runs send all N executions first, then wait until they are drained; the clock runs
from the first send to the last completion. Celery and Dramatiq workers are subprocesses with
defaults (prefetch and all) on a dedicated queue; their no-op task appends one byte to a file and
the driver polls the file's size. Warm-up tasks run (and the worker is proven ready) before the
clock starts.

`raw` is the Spool-like pipeline written directly with aio-pika and asyncpg, with Spool's
guarantees: per execution a row INSERTed (synchronous_commit=on) and a persistent message
published to a durable quorum queue with publisher confirms; a worker process (`raw-worker`)
consumes (prefetch 100), UPDATEs the row to in-progress, runs a no-op, UPDATEs it to success
(appending to its status log), and acks only then. `naive` does one row per statement (4
concurrent submitters, 4 worker connections); `batched` inserts 100 rows per statement, pipelines
their 100 publishes, and its worker UPDATEs whatever deliveries are waiting (up to 100) with one
statement each and acks them with one multiple ack. The worker tells the driver on its stdout
when the successes are committed and acked.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import aio_pika
import asyncpg
import uvloop
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from measure import BROKER_URL, PG_DSN, BoxCpu, Result, log, summary_ms

PEERS_PY = Path(__file__).resolve()
BENCH_DIR = PEERS_PY.parent

CELERY_QUEUE = "bench.celery"
# Celery declares an exchange named after the default queue, plus its control / event exchanges.
CELERY_EXCHANGES = (CELERY_QUEUE, "celery.pidbox", "reply.celery.pidbox", "celeryev")
DRAMATIQ_QUEUE = "bench.dramatiq"
DRAMATIQ_QUEUES = (DRAMATIQ_QUEUE, f"{DRAMATIQ_QUEUE}.DQ", f"{DRAMATIQ_QUEUE}.XQ")
RAW_QUEUE = "bench.raw"
RAW_DB = "spool_bench_raw"
RAW_DSN = PG_DSN.rsplit("/", 1)[0] + f"/{RAW_DB}"

STALL_TIMEOUT = 60.0  # seconds without progress before a run is declared stuck


# --- broker housekeeping ---------------------------------------------------------------------


async def _remove(queues: Sequence[str], exchanges: Sequence[str]) -> None:
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        channel = await connection.channel()
        for queue in queues:
            await channel.queue_delete(queue)
        for exchange in exchanges:
            await channel.exchange_delete(exchange)


def remove_from_broker(queues: Sequence[str], exchanges: Sequence[str] = ()) -> None:
    """Delete queues and exchanges (whatever they hold; missing ones are fine)."""
    uvloop.run(_remove(queues, exchanges))


# --- worker subprocesses (Celery, Dramatiq) --------------------------------------------------


class Worker:
    """A worker subprocess in a session (process group) of its own, logging to a file; `stop()`
    asks it to shut down, then kills whatever is left of its group."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        full_env = {**os.environ, **env, "PYTHONPATH": str(BENCH_DIR)}
        log("starting:", " ".join(argv))
        self.proc = subprocess.Popen(
            argv,
            cwd=BENCH_DIR,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def check(self) -> None:
        """Raise if the worker has exited."""
        code = self.proc.poll()
        if code is not None:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"worker exited with {code}; its log ends with:\n{tail}")

    def stop(self, grace: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._log.close()


def wait_for_size(path: Path, target: int, worker: Worker, interval: float = 0.005) -> None:
    """Poll the size of `path` until it reaches `target`; raise if the worker dies or makes no
    progress for STALL_TIMEOUT seconds."""
    size, last_progress = -1, time.monotonic()
    while True:
        now_size = path.stat().st_size
        if now_size >= target:
            return
        if now_size != size:
            size, last_progress = now_size, time.monotonic()
        elif time.monotonic() - last_progress > STALL_TIMEOUT:
            raise TimeoutError(f"{path}: stuck at {size} of {target} for {STALL_TIMEOUT} s")
        worker.check()
        time.sleep(interval)


def send_then_drain(
    send: Callable[[], object], n: int, done: Path, worker: Worker
) -> tuple[float, float]:
    """Send `n` tasks, then wait until `done` has grown by `n` bytes. Returns (seconds to send,
    seconds to completion), both from the first send."""
    target = done.stat().st_size + n
    t0 = time.perf_counter()
    for _ in range(n):
        send()
    sent = time.perf_counter() - t0
    wait_for_size(done, target, worker)
    return sent, time.perf_counter() - t0


def load_app(module: str, env: dict[str, str]) -> Any:
    """Import a peer's app module with the environment its worker subprocess gets."""
    os.environ.update(env)
    return importlib.import_module(module)


def timed_drain(
    send: Callable[[], object], n: int, warmup: int, done: Path, worker: Worker
) -> tuple[float, float, float]:
    """Warm up (which also proves the worker is consuming), then the measured send-and-drain.
    Returns (seconds to send, seconds to completion, box CPU seconds)."""
    log(f"warm-up: {warmup} tasks")
    send_then_drain(send, warmup, done, worker)
    log(f"measuring: {n} tasks sent, then drained")
    with BoxCpu() as cpu:
        sent, seconds = send_then_drain(send, n, done, worker)
    log(f"sent in {sent:.2f} s, drained in {seconds:.2f} s")
    return sent, seconds, cpu.seconds


# --- Celery ----------------------------------------------------------------------------------


def celery_worker_argv(pool: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        "--pool",
        pool,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "warning",
        "--queues",
        CELERY_QUEUE,
        "--hostname",
        f"bench-{os.getpid()}@%h",
    ]


def default_concurrency(pool: str, concurrency: int | None) -> int:
    if concurrency is not None:
        return concurrency
    return 2 if pool == "prefork" else 10


def celery_throughput(args: argparse.Namespace) -> Result:
    concurrency = default_concurrency(args.pool, args.concurrency)
    variant = f"{args.pool} -c{concurrency}" + (" acks_late+confirms" if args.acks_late else "")
    remove_from_broker([CELERY_QUEUE], CELERY_EXCHANGES)  # leftovers of an aborted run
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        done = Path(tmp) / "done"
        done.touch()
        env = {
            "BENCH_QUEUE": CELERY_QUEUE,
            "BENCH_DONE_FILE": str(done),
            "BENCH_CELERY_ACKS_LATE": "1" if args.acks_late else "0",
            "BENCH_CELERY_RPC": "0",
        }
        app = load_app("celery_app", env)
        worker = Worker(celery_worker_argv(args.pool, concurrency), env, Path(tmp) / "worker.log")
        try:
            sent, seconds, cpu = timed_drain(app.noop.delay, args.n, args.warmup, done, worker)
        finally:
            worker.stop()
            app.app.close()
            remove_from_broker([CELERY_QUEUE], CELERY_EXCHANGES)
    params = {"pool": args.pool, "concurrency": concurrency, "send_seconds": round(sent, 3)}
    return Result("celery", variant, args.n, seconds, cpu, params=params)


def celery_latency(args: argparse.Namespace) -> Result:
    concurrency = default_concurrency(args.pool, args.concurrency)
    remove_from_broker([CELERY_QUEUE], CELERY_EXCHANGES)
    with tempfile.TemporaryDirectory(prefix="bench-celery-") as tmp:
        env = {
            "BENCH_QUEUE": CELERY_QUEUE,
            "BENCH_DONE_FILE": str(Path(tmp) / "done"),
            "BENCH_CELERY_ACKS_LATE": "0",
            "BENCH_CELERY_RPC": "1",
        }
        app = load_app("celery_app", env)
        worker = Worker(celery_worker_argv(args.pool, concurrency), env, Path(tmp) / "worker.log")
        try:
            app.echo.delay(-1).get(timeout=120)  # the worker is up
            log(f"warm-up: {args.warmup} round trips")
            for i in range(args.warmup):
                app.echo.delay(i).get(timeout=10)
            log(f"measuring: {args.n} sequential round trips")
            durations: list[float] = []
            with BoxCpu() as cpu:
                t0 = time.perf_counter()
                for i in range(args.n):
                    start = time.perf_counter()
                    app.echo.delay(i).get(timeout=10)
                    durations.append(time.perf_counter() - start)
                seconds = time.perf_counter() - t0
        finally:
            worker.stop()
            app.app.close()
            remove_from_broker([CELERY_QUEUE], CELERY_EXCHANGES)
    return Result(
        "celery",
        f"rpc round trip {args.pool} -c{concurrency}",
        args.n,
        seconds,
        cpu.seconds,
        latency_ms=summary_ms(durations),
        params={"pool": args.pool, "concurrency": concurrency, "backend": "rpc://"},
    )


# --- Dramatiq --------------------------------------------------------------------------------


def dramatiq_throughput(args: argparse.Namespace) -> Result:
    remove_from_broker(DRAMATIQ_QUEUES)
    with tempfile.TemporaryDirectory(prefix="bench-dramatiq-") as tmp:
        done = Path(tmp) / "done"
        done.touch()
        env = {"BENCH_QUEUE": DRAMATIQ_QUEUE, "BENCH_DONE_FILE": str(done)}
        app = load_app("dramatiq_app", env)
        argv = [
            sys.executable,
            "-m",
            "dramatiq",
            "dramatiq_app",
            "--processes",
            str(args.processes),
            "--threads",
            str(args.threads),
            "--queues",
            DRAMATIQ_QUEUE,
        ]
        worker = Worker(argv, env, Path(tmp) / "worker.log")
        try:
            sent, seconds, cpu = timed_drain(app.noop.send, args.n, args.warmup, done, worker)
        finally:
            worker.stop()
            app.broker.close()
            remove_from_broker(DRAMATIQ_QUEUES)
    variant = f"{args.processes} processes x {args.threads} threads"
    params = {
        "processes": args.processes,
        "threads": args.threads,
        "send_seconds": round(sent, 3),
    }
    return Result("dramatiq", variant, args.n, seconds, cpu, params=params)


# --- raw: aio-pika + asyncpg -----------------------------------------------------------------

CREATE_TABLE = """
CREATE TABLE executions (
    id          text PRIMARY KEY,
    status      text NOT NULL,
    status_log  jsonb NOT NULL,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL,
    started_at  timestamptz,
    finished_at timestamptz
)
"""


# A status log entry: {"status": ..., "at": ...}, appended to the row's jsonb array.
INSERT_ONE = """
INSERT INTO executions (id, status, status_log, created_at, updated_at)
VALUES ($1, 'queued', jsonb_build_array(jsonb_build_object('status', 'queued', 'at', now())),
        now(), now())
"""
INSERT_MANY = """
INSERT INTO executions (id, status, status_log, created_at, updated_at)
SELECT b.id, 'queued', jsonb_build_array(jsonb_build_object('status', 'queued', 'at', now())),
       now(), now()
FROM unnest($1::text[]) AS b(id)
"""
START_ONE = """
UPDATE executions
SET status = 'in-progress',
    status_log = status_log
        || jsonb_build_array(jsonb_build_object('status', 'in-progress', 'at', now())),
    started_at = now(), updated_at = now()
WHERE id = $1 AND status = 'queued'
"""
FINISH_ONE = """
UPDATE executions
SET status = 'success',
    status_log = status_log
        || jsonb_build_array(jsonb_build_object('status', 'success', 'at', now())),
    finished_at = now(), updated_at = now()
WHERE id = $1 AND status = 'in-progress'
"""
START_MANY = """
UPDATE executions AS e
SET status = 'in-progress',
    status_log = e.status_log
        || jsonb_build_array(jsonb_build_object('status', 'in-progress', 'at', now())),
    started_at = now(), updated_at = now()
FROM unnest($1::text[]) AS b(id)
WHERE e.id = b.id AND e.status = 'queued'
"""
FINISH_MANY = """
UPDATE executions AS e
SET status = 'success',
    status_log = e.status_log
        || jsonb_build_array(jsonb_build_object('status', 'success', 'at', now())),
    finished_at = now(), updated_at = now()
FROM unnest($1::text[]) AS b(id)
WHERE e.id = b.id AND e.status = 'in-progress'
"""


def noop() -> None:
    """The execution's function."""


async def pg_pool(size: int) -> Any:
    return await asyncpg.create_pool(
        RAW_DSN, min_size=size, max_size=size, server_settings={"synchronous_commit": "on"}
    )


async def declare_raw_queue(channel: AbstractChannel) -> aio_pika.abc.AbstractQueue:
    return await channel.declare_queue(
        RAW_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )


async def prepare_raw() -> None:
    """Create the database if missing, the table afresh, and the queue afresh (empty)."""
    admin = await asyncpg.connect(PG_DSN)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", RAW_DB):
            await admin.execute(f'CREATE DATABASE "{RAW_DB}"')
    finally:
        await admin.close()
    db = await asyncpg.connect(RAW_DSN)
    try:
        await db.execute("DROP TABLE IF EXISTS executions")
        await db.execute(CREATE_TABLE)
    finally:
        await db.close()
    await _remove([RAW_QUEUE], ())
    connection = await aio_pika.connect(BROKER_URL)
    async with connection:
        await declare_raw_queue(await connection.channel())


class RawWorkerProcess:
    """`peers.py raw-worker` as a subprocess: its stdout says `ready`, then `done COUNT TIME`."""

    def __init__(self, proc: asyncio.subprocess.Process, log_path: Path) -> None:
        self.proc = proc
        self.log_path = log_path

    @classmethod
    async def start(cls, log_path: Path, *worker_args: str) -> RawWorkerProcess:
        argv = [sys.executable, str(PEERS_PY), "raw-worker", *worker_args]
        log("starting:", " ".join(argv))
        with log_path.open("wb") as log_file:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log_file,
                start_new_session=True,
            )
        worker = cls(proc, log_path)
        line = await worker.line(60.0)
        if line != ["ready"]:
            raise RuntimeError(f"raw worker said {line!r} instead of ready")
        return worker

    async def line(self, timeout: float) -> list[str]:
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            tail = self.log_path.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"raw worker exited; its log ends with:\n{tail}")
        return raw.decode().split()

    async def done(self, timeout: float) -> tuple[int, float]:
        """The next `done COUNT TIME` report: successes acked so far, and when (time.time())."""
        words = await self.line(timeout)
        if len(words) != 3 or words[0] != "done":
            raise RuntimeError(f"raw worker said {words!r}")
        return int(words[1]), float(words[2])

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.proc.wait(), 10.0)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        await self.proc.wait()


def persistent(execution_id: str) -> aio_pika.Message:
    return aio_pika.Message(execution_id.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT)


def chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


async def submit_naive(pool: Any, channel: AbstractChannel, ids: Sequence[str], k: int) -> None:
    """`k` concurrent submitters: per execution one INSERT, then one publish awaiting its
    confirm."""
    exchange = channel.default_exchange

    async def submitter(part: Sequence[str]) -> None:
        async with pool.acquire() as conn:
            for execution_id in part:
                await conn.execute(INSERT_ONE, execution_id)
                await exchange.publish(persistent(execution_id), RAW_QUEUE, mandatory=True)

    await asyncio.gather(*(submitter(ids[i::k]) for i in range(k)))


async def submit_batched(
    pool: Any, channel: AbstractChannel, ids: Sequence[str], k: int, batch: int
) -> None:
    """`k` concurrent submitters: per `batch` executions one INSERT, then their publishes
    pipelined (all confirms awaited together)."""
    exchange = channel.default_exchange
    batches = list(chunks(ids, batch))

    async def submitter(mine: Sequence[Sequence[str]]) -> None:
        async with pool.acquire() as conn:
            for part in mine:
                await conn.execute(INSERT_MANY, list(part))
                await asyncio.gather(
                    *(exchange.publish(persistent(i), RAW_QUEUE, mandatory=True) for i in part)
                )

    await asyncio.gather(*(submitter(batches[i::k]) for i in range(k)))


async def raw_throughput_async(args: argparse.Namespace) -> Result:
    submitters = args.submitters or (4 if args.mode == "naive" else 1)
    await prepare_raw()
    ids = [str(uuid.uuid4()) for _ in range(args.n)]
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as tmp:
        worker = await RawWorkerProcess.start(
            Path(tmp) / "worker.log", "--mode", args.mode, "--expect", str(args.n)
        )
        try:
            pool = await pg_pool(submitters)
            connection = await aio_pika.connect(BROKER_URL)
            async with pool, connection:
                channel = await connection.channel()  # publisher confirms are on by default
                log(f"measuring: {args.n} executions submitted ({args.mode}), then drained")
                cpu = BoxCpu().start()
                t0 = time.time()
                if args.mode == "naive":
                    await submit_naive(pool, channel, ids, submitters)
                else:
                    await submit_batched(pool, channel, ids, submitters, args.batch)
                sent = time.time() - t0
                count, t_end = await worker.done(STALL_TIMEOUT + args.n / 100)
                cpu.stop()
        finally:
            await worker.stop()
            await _remove([RAW_QUEUE], ())
    log(f"submitted in {sent:.2f} s, {count} successes after {t_end - t0:.2f} s")
    params = {"submitters": submitters, "send_seconds": round(sent, 3), "queue": "quorum"}
    return Result("raw", args.mode, args.n, t_end - t0, cpu.seconds, params=params)


async def sequential_executions(
    conn: Any, exchange: aio_pika.abc.AbstractExchange, worker: RawWorkerProcess, n: int
) -> list[float]:
    """Submit `n` executions one after another, each once the previous one's success is
    observed; returns each one's submit-to-success seconds."""
    durations = []
    for _ in range(n):
        execution_id = str(uuid.uuid4())
        start = time.perf_counter()
        await conn.execute(INSERT_ONE, execution_id)
        await exchange.publish(persistent(execution_id), RAW_QUEUE, mandatory=True)
        await worker.done(10.0)
        durations.append(time.perf_counter() - start)
    return durations


async def raw_latency_async(args: argparse.Namespace) -> Result:
    await prepare_raw()
    with tempfile.TemporaryDirectory(prefix="bench-raw-") as tmp:
        worker = await RawWorkerProcess.start(Path(tmp) / "worker.log", "--mode", "naive", "--each")
        try:
            pool = await pg_pool(1)
            connection = await aio_pika.connect(BROKER_URL)
            async with pool, connection, pool.acquire() as conn:
                exchange = (await connection.channel()).default_exchange
                log(f"warm-up: {args.warmup} executions")
                await sequential_executions(conn, exchange, worker, args.warmup)
                log(f"measuring: {args.n} sequential executions")
                with BoxCpu() as cpu:
                    t0 = time.perf_counter()
                    durations = await sequential_executions(conn, exchange, worker, args.n)
                    seconds = time.perf_counter() - t0
        finally:
            await worker.stop()
            await _remove([RAW_QUEUE], ())
    return Result(
        "raw",
        "latency",
        args.n,
        seconds,
        cpu.seconds,
        latency_ms=summary_ms(durations),
        params={"observed": "worker's stdout after the success commit and ack"},
    )


class Reporter:
    """Tells the driver, on stdout, how many successes are committed and acked: once when
    `expect` is reached, or after every one with `each`."""

    def __init__(self, expect: int, each: bool) -> None:
        self.expect, self.each = expect, each
        self.count = 0
        self.reported = False

    def add(self, k: int) -> None:
        self.count += k
        if self.each or (not self.reported and self.count >= self.expect):
            self.reported = True
            sys.stdout.write(f"done {self.count} {time.time():.6f}\n")
            sys.stdout.flush()


def naive_handler(
    pool: Any, reporter: Reporter
) -> Callable[[AbstractIncomingMessage], Awaitable[None]]:
    """Per delivery: UPDATE in-progress, no-op, UPDATE success, ack (aio-pika runs the handler
    of each delivery as its own task: up to prefetch at once, as many as the pool has in SQL)."""

    async def handle(message: AbstractIncomingMessage) -> None:
        execution_id = message.body.decode()
        async with pool.acquire() as conn:
            await conn.execute(START_ONE, execution_id)
            noop()
            await conn.execute(FINISH_ONE, execution_id)
        await message.ack()
        reporter.add(1)

    return handle


async def batched_loop(
    pool: Any, inbox: asyncio.Queue[AbstractIncomingMessage], reporter: Reporter, batch: int
) -> None:
    """Take whatever deliveries are waiting (at least one, at most `batch`), UPDATE them to
    in-progress with one statement, run them, UPDATE them to success with one statement, and
    ack them with one multiple ack (deliveries are taken in order, so that covers exactly them).
    """
    async with pool.acquire() as conn:
        while True:
            messages = [await inbox.get()]
            while len(messages) < batch and not inbox.empty():
                messages.append(inbox.get_nowait())
            ids = [m.body.decode() for m in messages]
            await conn.execute(START_MANY, ids)
            for _ in ids:
                noop()
            await conn.execute(FINISH_MANY, ids)
            await messages[-1].ack(multiple=True)
            reporter.add(len(messages))


async def raw_worker_async(args: argparse.Namespace) -> None:
    reporter = Reporter(args.expect, args.each)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    pool = await pg_pool(args.pool_size if args.mode == "naive" else 1)
    connection = await aio_pika.connect(BROKER_URL)
    async with pool, connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=args.prefetch)
        queue = await declare_raw_queue(channel)
        batcher: asyncio.Task[None] | None = None
        if args.mode == "naive":
            await queue.consume(naive_handler(pool, reporter))
        else:
            inbox: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()

            async def enqueue(message: AbstractIncomingMessage) -> None:
                inbox.put_nowait(message)

            batcher = asyncio.create_task(batched_loop(pool, inbox, reporter, args.batch))
            await queue.consume(enqueue)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()
        if batcher is not None:
            batcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await batcher


# --- command line ----------------------------------------------------------------------------


def raw_throughput(args: argparse.Namespace) -> Result:
    return uvloop.run(raw_throughput_async(args))


def raw_latency(args: argparse.Namespace) -> Result:
    return uvloop.run(raw_latency_async(args))


def raw_worker(args: argparse.Namespace) -> None:
    uvloop.run(raw_worker_async(args))


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(required=True, metavar="COMMAND")

    c = sub.add_parser("celery", help="Celery worker: N no-op tasks sent, then drained")
    c.add_argument("--pool", choices=["prefork", "threads"], default="prefork")
    c.add_argument("--concurrency", "-c", type=int, help="default: 2 prefork, 10 threads")
    c.add_argument("--acks-late-confirms", dest="acks_late", action="store_true")
    c.add_argument("-n", type=int, default=20000)
    c.add_argument("--warmup", type=int, default=200)
    c.set_defaults(func=celery_throughput)

    cl = sub.add_parser("celery-latency", help="Celery delay().get() round trips (rpc://)")
    cl.add_argument("--pool", choices=["prefork", "threads"], default="prefork")
    cl.add_argument("--concurrency", "-c", type=int, help="default: 2 prefork, 10 threads")
    cl.add_argument("-n", type=int, default=1000)
    cl.add_argument("--warmup", type=int, default=50)
    cl.set_defaults(func=celery_latency)

    d = sub.add_parser("dramatiq", help="Dramatiq worker: N no-op messages sent, then drained")
    d.add_argument("--processes", type=int, default=2)
    d.add_argument("--threads", type=int, default=8)
    d.add_argument("-n", type=int, default=20000)
    d.add_argument("--warmup", type=int, default=200)
    d.set_defaults(func=dramatiq_throughput)

    r = sub.add_parser("raw", help="aio-pika + asyncpg pipeline: N executions, then drained")
    r.add_argument("--mode", choices=["naive", "batched"], default="batched")
    r.add_argument("-n", type=int, default=20000)
    r.add_argument("--submitters", type=int, help="default: 4 naive, 1 batched")
    r.add_argument("--batch", type=int, default=100, help="rows per INSERT (batched)")
    r.set_defaults(func=raw_throughput)

    rl = sub.add_parser("raw-latency", help="one raw execution in flight at a time")
    rl.add_argument("-n", type=int, default=1000)
    rl.add_argument("--warmup", type=int, default=50)
    rl.set_defaults(func=raw_latency)

    w = sub.add_parser("raw-worker", help="(internal) the raw pipeline's worker process")
    w.add_argument("--mode", choices=["naive", "batched"], required=True)
    w.add_argument("--expect", type=int, default=0, help="report once this many are done")
    w.add_argument("--each", action="store_true", help="report after every success")
    w.add_argument("--prefetch", type=int, default=100)
    w.add_argument("--batch", type=int, default=100, help="most deliveries per UPDATE")
    w.add_argument("--pool-size", type=int, default=4, help="connections (naive)")
    w.set_defaults(func=raw_worker)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    result = args.func(args)
    if isinstance(result, Result):
        result.emit()


if __name__ == "__main__":
    main()
