"""The `spool` command's exit codes and error lines: every kind of failure has its own code,
the line on stderr names the field and the reason, and `--json` makes it a JSON object.
No server: a platform that cannot be reached, or no login at all, is what is tested here."""

from __future__ import annotations

import io
from pathlib import Path

import orjson
import pytest

from spool import errors
from spool.cli import main
from spool.cli_errors import (
    EPILOG,
    ExitCode,
    UsageError,
    error_json,
    error_line,
    execution_exit,
    exit_code,
)
from spool_common.models import ExecutionStatus

BAD_INPUT = orjson.dumps(
    {
        "error": "bad_request",
        "message": "invalid input",
        "details": [{"field": "input.steps", "reason": "must be an integer, not a string"}],
    }
)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (400, ExitCode.BAD_REQUEST),
        (413, ExitCode.BAD_REQUEST),
        (401, ExitCode.AUTH),
        (403, ExitCode.AUTH),
        (404, ExitCode.NOT_FOUND),
        (409, ExitCode.CONFLICT),
        (422, ExitCode.FAILED),
        (429, ExitCode.BUSY),
        (503, ExitCode.BUSY),
        (500, ExitCode.SERVER_ERROR),
        (502, ExitCode.SERVER_ERROR),
        (418, ExitCode.BAD_REQUEST),  # any other 4xx: the request was at fault
    ],
)
def test_http_errors_map_to_exit_codes(status: int, expected: ExitCode) -> None:
    assert exit_code(errors.from_response(status, b"{}")) is expected


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.ConfigError("no Spool URL"), ExitCode.UNREACHABLE),
        (errors.SpoolConnectionError("refused"), ExitCode.UNREACHABLE),
        (errors.BadRequest("src_path is not a directory"), ExitCode.BAD_REQUEST),
        (UsageError("no project"), ExitCode.USAGE),
        (TimeoutError("did not finish"), ExitCode.TIMEOUT),
        (KeyboardInterrupt(), ExitCode.INTERRUPTED),
        (RuntimeError("a bug"), ExitCode.SERVER_ERROR),
    ],
)
def test_other_errors_map_to_exit_codes(error: BaseException, expected: ExitCode) -> None:
    assert exit_code(error) is expected


def test_exit_codes_are_distinct_and_documented() -> None:
    codes = [int(c) for c in ExitCode]
    assert len(codes) == len(set(codes))
    for code in ExitCode:
        assert f"\n  {int(code)} " in "\n" + EPILOG


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (s, ExitCode.OK if s is ExecutionStatus.SUCCESS else ExitCode.FAILED)
        for s in ExecutionStatus
    ],
)
def test_an_execution_that_did_not_succeed_exits_1(
    status: ExecutionStatus, expected: ExitCode
) -> None:
    assert execution_exit(status) is expected


def test_the_error_line_names_the_field_and_the_reason() -> None:
    error = errors.from_response(400, BAD_INPUT)
    assert error_line(error) == (
        "spool: error: invalid input (input.steps: must be an integer, not a string)"
    )
    assert error_line(RuntimeError("two\nlines")) == "spool: error: RuntimeError: two lines"


def test_the_json_error_is_one_object_with_the_details() -> None:
    line = error_json(errors.from_response(400, BAD_INPUT))
    assert "\n" not in line
    assert orjson.loads(line) == {
        "error": "BadRequest",
        "message": "invalid input",
        "exitCode": 5,
        "status": 400,
        "details": [{"field": "input.steps", "reason": "must be an integer, not a string"}],
    }


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "config.json"
    monkeypatch.setenv("SPOOL_CONFIG", str(path))
    for name in ("SPOOL_URL", "SPOOL_TOKEN", "SPOOL_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    return path


def test_no_login_exits_7_and_says_how_to_log_in(nowhere: Path) -> None:
    code, out, err = _run("status", "hello")
    assert (code, out) == (7, "")
    assert "run `spool login`" in err
    assert str(nowhere) in err


def test_an_unreachable_platform_exits_7(nowhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOOL_URL", "http://127.0.0.1:9")  # discard: nothing listens
    monkeypatch.setenv("SPOOL_TOKEN", "t")
    code, out, err = _run("--json", "executions", "ls")
    assert (code, out) == (7, "")
    assert orjson.loads(err)["exitCode"] == 7
    code, _, err = _run("login", "http://127.0.0.1:9", "--token", "t")
    assert code == 7
    assert err.startswith("spool: error: cannot reach Spool at http://127.0.0.1:9")
    assert not nowhere.exists()  # nothing saved


def test_use_without_a_saved_login_exits_7(nowhere: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPOOL_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("SPOOL_TOKEN", "t")
    code, _, err = _run("use", "demo")
    assert code == 7
    assert "log in first" in err  # not "cannot reach": nothing was sent
