"""The `spool` command's exit codes, and the one line on stderr that says what went wrong.

Scripts branch on the exit code, so each kind of failure has its own and the numbers never
change. Pure: an exception (or an execution's status) in, a code and a line out.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any

import orjson

from spool import errors
from spool_common.models import ExecutionStatus


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the execution failed, timed out or was terminated; replay: the code raised
    USAGE = 2  # bad arguments (argparse's own code)
    NOT_FOUND = 3  # 404, or no object of that name
    AUTH = 4  # 401 token not accepted, 403 role does not allow it
    BAD_REQUEST = 5  # 400/413: the field and the reason are on stderr
    TIMEOUT = 6  # --wait ran out of --timeout; the execution goes on
    UNREACHABLE = 7  # cannot reach the gateway, or no URL/token configured
    CONFLICT = 8  # 409: the name is taken, or the object changed meanwhile
    BUSY = 9  # 429/503: rate limited or the queue is full; retry later
    SERVER_ERROR = 10  # 5xx, or an answer the CLI did not expect
    INTERRUPTED = 130  # Ctrl-C


EPILOG = """\
exit codes:
  0  ok
  1  the execution failed, timed out or was terminated (exec --wait, rerun --wait);
     replay: the function raised
  2  usage error (bad arguments)
  3  not found (no such execution, service, project...)
  4  authentication or permission (401, 403): run `spool login`
  5  bad request (400): the field and the reason are printed on stderr
  6  timed out waiting (exec --wait --timeout); the execution goes on
  7  cannot reach the platform, or no URL/token configured
  8  conflict (409): the name is taken
  9  rate limited or queue full (429, 503): retry later
  10 server error (5xx)
  130 interrupted (Ctrl-C)
"""

_BY_ERROR: tuple[tuple[type[errors.SpoolError], ExitCode], ...] = (
    (errors.ConfigError, ExitCode.UNREACHABLE),
    (errors.SpoolConnectionError, ExitCode.UNREACHABLE),
    (errors.NotFound, ExitCode.NOT_FOUND),
    (errors.Unauthorized, ExitCode.AUTH),
    (errors.Forbidden, ExitCode.AUTH),
    (errors.BadRequest, ExitCode.BAD_REQUEST),
    (errors.Conflict, ExitCode.CONFLICT),
    (errors.RateLimited, ExitCode.BUSY),
    (errors.Unavailable, ExitCode.BUSY),
    (errors.ExecutionFailed, ExitCode.FAILED),
    (errors.ServerError, ExitCode.SERVER_ERROR),
)


class UsageError(Exception):
    """A mistake in the arguments found after parsing (e.g. no project to work in)."""


def exit_code(error: BaseException) -> ExitCode:
    """The exit code for an exception the command did not handle itself."""
    if isinstance(error, UsageError):
        return ExitCode.USAGE
    if isinstance(error, KeyboardInterrupt):
        return ExitCode.INTERRUPTED
    if isinstance(error, TimeoutError):
        return ExitCode.TIMEOUT
    for kind, code in _BY_ERROR:
        if isinstance(error, kind):
            return code
    if isinstance(error, errors.SpoolError) and error.status is not None and error.status < 500:
        return ExitCode.BAD_REQUEST
    return ExitCode.SERVER_ERROR


def execution_exit(status: ExecutionStatus) -> ExitCode:
    """0 for an execution that succeeded, 1 for any other end."""
    return ExitCode.OK if status is ExecutionStatus.SUCCESS else ExitCode.FAILED


def _one_line(text: str) -> str:
    return " ".join(text.split())


def error_line(error: BaseException) -> str:
    """What a person reads on stderr: one line, with the fields at fault."""
    if isinstance(error, KeyboardInterrupt):
        return "spool: interrupted"
    text = str(error) or type(error).__name__
    if not isinstance(error, errors.SpoolError | UsageError | TimeoutError):
        text = f"{type(error).__name__}: {text}"
    return f"spool: error: {_one_line(text)}"


def error_json(error: BaseException) -> str:
    """What a script reads on stderr with --json: one JSON object on one line."""
    body: dict[str, Any] = {
        "error": type(error).__name__,
        "message": _one_line(str(error)),
        "exitCode": int(exit_code(error)),
    }
    if isinstance(error, errors.SpoolError):
        body["message"] = _one_line(error.message)
        body["status"] = error.status
        body["details"] = [{"field": d.field, "reason": d.reason} for d in error.details]
    return orjson.dumps(body).decode()
