"""Secret values a process holds are masked in every log line: message, fields, nested
fields and tracebacks; longer secrets first; short values are not masked."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator

import orjson
import pytest
import structlog

from spool_common import logging as spool_logging


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    spool_logging.configure_logging("test")
    yield out
    spool_logging.redact([])
    structlog.reset_defaults()


def _lines(out: io.StringIO) -> list[dict[str, object]]:
    return [orjson.loads(line) for line in out.getvalue().splitlines()]


def test_secrets_are_masked_everywhere_in_a_line(captured: io.StringIO) -> None:
    spool_logging.redact(["hunter2-canary", "hunter2-canary-longer", "ab"])
    log = spool_logging.get_logger("t")
    log.error(
        "init failed with hunter2-canary-longer",
        message="Boom: hunter2-canary",
        nested={"list": ["x hunter2-canary y"], "n": 3},
        short="ab",
    )
    try:
        raise RuntimeError("in a traceback: hunter2-canary")
    except RuntimeError:
        log.exception("crashed")
    text = captured.getvalue()
    assert "hunter2" not in text
    first, second = _lines(captured)
    assert first["event"] == "init failed with [redacted]"
    assert first["message"] == "Boom: [redacted]"
    assert first["nested"] == {"list": ["x [redacted] y"], "n": 3}
    assert first["short"] == "ab"  # shorter than MIN_REDACTED: left alone
    assert "[redacted]" in str(second["exception"])


def test_nothing_is_masked_before_redact_is_called(captured: io.StringIO) -> None:
    spool_logging.get_logger("t").info("value hunter2-canary")
    assert _lines(captured)[0]["event"] == "value hunter2-canary"
