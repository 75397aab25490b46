"""The Celery app and tasks of the Celery peer benchmarks (bench/peers.py starts the worker).

    cd bench && BENCH_DONE_FILE=/tmp/done ../.venv/bin/python -m celery -A celery_app worker \
        --pool prefork -c 2 --loglevel warning

Configured from the environment, so that the driver and the worker subprocess agree:
- BENCH_QUEUE: the dedicated queue (default bench.celery);
- BENCH_DONE_FILE: the file `noop` appends one byte to per completed task;
- BENCH_CELERY_ACKS_LATE=1: `task_acks_late` and publisher confirms (`confirm_publish`);
- BENCH_CELERY_RPC=1: results go back over the rpc:// backend (for `echo`), else none are kept.
"""

from __future__ import annotations

import os

from celery import Celery
from measure import BROKER_URL, mark_done

QUEUE = os.environ.get("BENCH_QUEUE", "bench.celery")
DONE_FILE = os.environ.get("BENCH_DONE_FILE", "")
ACKS_LATE = os.environ.get("BENCH_CELERY_ACKS_LATE") == "1"
RPC = os.environ.get("BENCH_CELERY_RPC") == "1"

app = Celery("bench", broker=BROKER_URL, backend="rpc://" if RPC else None)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=not RPC,
    broker_connection_retry_on_startup=True,
)
if ACKS_LATE:
    app.conf.update(task_acks_late=True, broker_transport_options={"confirm_publish": True})


@app.task(name="bench.noop")
def noop() -> None:
    """The no-op execution: only records that it ran."""
    mark_done(DONE_FILE)


@app.task(name="bench.echo")
def echo(value: int) -> int:
    return value
