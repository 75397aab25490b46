"""structlog configured once per entry point: JSON lines rendered by orjson."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import orjson
import structlog


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default).decode()


def configure_logging(service: str, level: str = "info", fmt: str = "json") -> None:
    """Configure structlog and the stdlib root logger. Call once, in the entry point."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: Any = (
        structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            _redact,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)


# Secret values this process holds (an agent: its service's secrets), masked in every line.
_secrets: tuple[str, ...] = ()
MASK = "[redacted]"
MIN_REDACTED = 4  # shorter values would mask ordinary words


def redact(values: Iterable[str]) -> None:
    """From now on, mask these strings wherever they appear in a log line (messages, fields,
    tracebacks). Longest first, so a secret containing another is masked whole."""
    global _secrets
    _secrets = tuple(sorted({v for v in values if len(v) >= MIN_REDACTED}, key=len, reverse=True))


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        for secret in _secrets:
            if secret in value:
                value = value.replace(secret, MASK)
        return value
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask(v) for v in value]
    return value


def _redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    if not _secrets:
        return event_dict
    return {key: _mask(value) for key, value in event_dict.items()}


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
