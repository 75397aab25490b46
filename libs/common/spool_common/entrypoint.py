"""Process entry helper: uvloop, logging, a clean exit on SIGTERM/SIGINT, and the commands every
Spool process understands:

    python -m spool_<service>             serve (the default; `serve` may be written out)
    python -m spool_<service> migrate     apply the service's migrations to its schema, exit 0
    python -m spool_<service> --version   print Spool's version, exit 0

A wrong command line exits 2 with the usage on stderr, before anything is connected."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import NoReturn, TypeVar

import uvloop

from spool_common.logging import configure_logging, get_logger
from spool_common.settings import CommonSettings
from spool_common.store.pg import migrate

T = TypeVar("T")
S = TypeVar("S", bound=CommonSettings)

log = get_logger(__name__)

USAGE_EXIT = 2  # as argparse: the command line itself is wrong


class Command(StrEnum):
    SERVE = "serve"
    MIGRATE = "migrate"
    VERSION = "--version"


class UsageError(Exception):
    """The command line names no command this process has."""


def parse_command(argv: Sequence[str], *, can_migrate: bool) -> Command:
    """The command `argv` (without the program name) asks for; pure."""
    if not argv:
        return Command.SERVE
    known = {command.value for command in Command}
    if len(argv) > 1 or argv[0] not in known:
        raise UsageError(f"unknown arguments: {' '.join(argv)}")
    command = Command(argv[0])
    if command is Command.MIGRATE and not can_migrate:
        raise UsageError("this process has no database migrations")
    return command


def usage(name: str, *, can_migrate: bool) -> str:
    commands = [Command.SERVE, *([Command.MIGRATE] if can_migrate else []), Command.VERSION]
    return f"usage: python -m spool_{name.replace('-', '_')} [{' | '.join(commands)}]"


def spool_version() -> str:
    try:
        return metadata.version("spool")
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def run_service(
    name: str,
    main: Callable[[asyncio.Event, S], Awaitable[T]],
    settings: S,
    *,
    migrations: Path | None = None,
    argv: Sequence[str] | None = None,
) -> T:
    """Run the command of `argv` (default: the process's arguments). To serve: run
    `main(stop, settings)` on uvloop and return its result; `stop` is set on SIGTERM or SIGINT.
    `migrate` applies `migrations` to `settings.db_schema` and exits. Logging is configured
    here, once per process."""
    can_migrate = migrations is not None
    try:
        command = parse_command(sys.argv[1:] if argv is None else argv, can_migrate=can_migrate)
    except UsageError as e:
        print(f"{name}: {e}\n{usage(name, can_migrate=can_migrate)}", file=sys.stderr)
        raise SystemExit(USAGE_EXIT) from None
    if command is Command.VERSION:
        print(f"spool {spool_version()}")
        raise SystemExit(0)
    configure_logging(name, settings.log_level, settings.log_format)
    if command is Command.MIGRATE and migrations is not None:
        _migrate(settings, migrations)

    async def _entry() -> T:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop, settings)

    return uvloop.run(_entry())


def _migrate(settings: CommonSettings, directory: Path) -> NoReturn:
    """Apply the migrations of `directory` to the service's schema and exit: 0 when the schema
    is up to date, 1 when it could not be brought there (the error is logged)."""
    schema = getattr(settings, "db_schema", None)
    if not isinstance(schema, str):
        log.error("migrations_failed", reason="the service's settings have no db_schema")
        raise SystemExit(1)
    try:
        applied = uvloop.run(migrate(settings.database_url, schema, directory))
    except Exception:  # the process's edge: any failure is logged and ends it with 1
        log.exception("migrations_failed", schema=schema, directory=str(directory))
        raise SystemExit(1) from None
    log.info("migrations_done", schema=schema, applied=applied)
    raise SystemExit(0)
