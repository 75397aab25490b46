"""The command line every Spool process understands: serve (the default), `migrate`, `--version`.
A wrong one exits 2 with the usage before anything is configured, connected or served."""

from __future__ import annotations

import asyncio
from importlib import metadata
from pathlib import Path

import pytest

from spool_common.entrypoint import Command, UsageError, parse_command, run_service, usage
from spool_common.settings import CommonSettings


@pytest.mark.parametrize(
    ("argv", "can_migrate", "expected"),
    [
        ([], True, Command.SERVE),
        ([], False, Command.SERVE),
        (["serve"], True, Command.SERVE),
        (["migrate"], True, Command.MIGRATE),
        (["--version"], False, Command.VERSION),
    ],
)
def test_the_command_line_names_the_command(
    argv: list[str], can_migrate: bool, expected: Command
) -> None:
    assert parse_command(argv, can_migrate=can_migrate) is expected


@pytest.mark.parametrize(
    ("argv", "can_migrate", "reason"),
    [
        (["migrate"], False, "no database migrations"),  # the agent has no schema
        (["migrat"], True, "unknown arguments: migrat"),
        (["migrate", "now"], True, "unknown arguments: migrate now"),
        (["--help"], True, "unknown arguments: --help"),
    ],
)
def test_a_wrong_command_line_is_refused_with_the_reason(
    argv: list[str], can_migrate: bool, reason: str
) -> None:
    with pytest.raises(UsageError, match=reason):
        parse_command(argv, can_migrate=can_migrate)


def test_the_usage_names_the_module_and_only_the_commands_it_has() -> None:
    assert usage("trigger-engine", can_migrate=True) == (
        "usage: python -m spool_trigger_engine [serve | migrate | --version]"
    )
    assert usage("agent", can_migrate=False) == "usage: python -m spool_agent [serve | --version]"


async def _never_called(stop: asyncio.Event, settings: CommonSettings) -> None:
    raise AssertionError("a command other than serve must not start the service")


def test_a_wrong_command_exits_2_with_the_usage_and_serves_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_service("gateway", _never_called, CommonSettings(), migrations=tmp_path, argv=["x"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "gateway: unknown arguments: x" in err
    assert "usage: python -m spool_gateway [serve | migrate | --version]" in err


def test_migrate_without_migrations_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_service("agent", _never_called, CommonSettings(), argv=["migrate"])
    assert exit_.value.code == 2
    assert "agent: this process has no database migrations" in capsys.readouterr().err


def test_version_prints_spools_version_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_service("scheduler", _never_called, CommonSettings(), argv=["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out == f"spool {metadata.version('spool')}\n"
