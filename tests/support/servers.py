"""Where the test servers are: the shared RabbitMQ and PostgreSQL on 127.0.0.1."""

from __future__ import annotations

import os

AMQP_URL = os.environ.get("SPOOL_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/?heartbeat=5")
DATABASE_URL = os.environ.get(
    "SPOOL_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/spool_test"
)
