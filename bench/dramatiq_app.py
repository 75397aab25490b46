"""The Dramatiq broker and actor of the Dramatiq peer benchmark (bench/peers.py starts the worker).

    cd bench && BENCH_DONE_FILE=/tmp/done ../.venv/bin/python -m dramatiq dramatiq_app \
        --processes 2 --threads 8 --queues bench.dramatiq

Configured from the environment, so that the driver and the worker subprocess agree:
- BENCH_QUEUE: the dedicated queue (default bench.dramatiq; Dramatiq adds .DQ and .XQ to it);
- BENCH_DONE_FILE: the file `noop` appends one byte to per completed message.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from measure import BROKER_URL, mark_done

QUEUE = os.environ.get("BENCH_QUEUE", "bench.dramatiq")
DONE_FILE = os.environ.get("BENCH_DONE_FILE", "")

broker = RabbitmqBroker(url=BROKER_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE)
def noop() -> None:
    """The no-op execution: only records that it ran."""
    mark_done(DONE_FILE)
