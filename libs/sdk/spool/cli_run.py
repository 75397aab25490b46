"""`spool` commands about executions: exec, logs, executions ls, rerun, terminate, replay."""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import orjson

import spool
import spool_agent
from spool.cli_args import execution_input, find_service, project_id
from spool.cli_context import Context
from spool.cli_errors import UsageError, execution_exit
from spool.cli_format import execution_line, executions_table, json_text
from spool.cli_progress import Display, NoDisplay, display_for, wait
from spool.errors import SpoolError
from spool.execution import Execution
from spool.logs import LogLine

SHORT_ID = 8  # service logs prefix each line with this much of its execution's id
TERMINATE_WAIT = 10.0  # seconds `terminate` waits to report the execution stopped
# Frames of these folders are the replay's machinery, not the user's code: left out of the
# traceback `replay` prints, which then reads as it would on the platform.
MACHINERY = tuple(
    str(Path(module.__file__).parent) + os.sep for module in (spool, spool_agent) if module.__file__
)


def finish(ctx: Context, execution: Execution, timeout: float | None, skip: int = 0) -> int:
    """Wait with a progress display (of the status log from entry `skip` on); print the
    output (or why it failed). Exit 0 on success, 1 on any other end; a timeout propagates
    (exit 6) after printing the execution."""
    display: Display = NoDisplay() if ctx.json else display_for(ctx.stderr, skip)
    try:
        with contextlib.closing(display):  # the bar is gone (and the cursor back) first
            wait(execution, timeout, display)
    except TimeoutError:
        if ctx.json:
            ctx.emit(execution.to_json(), "")
        raise
    ctx.note(execution_line(execution))
    code = execution_exit(execution.status)
    if ctx.json:
        ctx.emit(execution.to_json(), "")
    elif code == 0:
        ctx.emit(None, json_text(execution.output))
    else:
        ref = execution.id
        ctx.note(f"see its log: spool logs {ref}; debug it here: spool replay {ref}")
    return int(code)


def exec_(args: argparse.Namespace, ctx: Context) -> int:
    inputs = execution_input(args.input, args.inputs)
    service = find_service(ctx.client, args.service, ctx.project)
    execution = service.execute(inputs, function_name=args.function)
    if args.wait:
        ctx.note(f"execution {execution.id} created")
        return finish(ctx, execution, args.timeout)
    ctx.emit(execution.to_json(), execution.id)
    ctx.note(f"follow it with: spool logs -f {execution.id}")
    return 0


def _log_json(line: LogLine) -> str:
    return orjson.dumps(
        {
            "timestamp": line.timestamp.isoformat(),
            "message": line.message,
            "stream": line.stream,
            "executionId": line.execution_id,
            "replicaId": line.replica_id,
        }
    ).decode()


def _lines(args: argparse.Namespace, ctx: Context) -> tuple[Iterator[LogLine], bool]:
    """The lines to print, and whether to prefix each with its execution's id."""
    if bool(args.execution) == bool(args.service):
        raise UsageError("give an EXECUTION id, or --service SERVICE (not both)")
    if args.tail is not None and not args.service:
        raise UsageError("--tail goes with --service (an execution's log is read whole)")
    if args.tail is not None and not 1 <= args.tail <= 1000:
        raise UsageError(f"--tail must be from 1 to 1000, got {args.tail}")
    if args.service:
        service = find_service(ctx.client, args.service, ctx.project)
        return service.logs(follow=args.follow, tail=args.tail), True
    execution = ctx.client.executions.get(args.execution)
    return execution.logs(follow=args.follow), False


def logs(args: argparse.Namespace, ctx: Context) -> int:
    """Human: the lines as printed. --json: one JSON object per line (JSON Lines)."""
    lines, prefixed = _lines(args, ctx)
    for line in lines:
        if ctx.json:
            text = _log_json(line)
        elif prefixed:
            text = f"[{(line.execution_id or '-')[:SHORT_ID]}] {line.message}"
        else:
            text = line.message
        ctx.stdout.write(text + "\n")
        ctx.stdout.flush()
    return 0


def executions_ls(args: argparse.Namespace, ctx: Context) -> int:
    client = ctx.client
    service = find_service(client, args.service, ctx.project) if args.service else None
    project = project_id(client, ctx.project) if ctx.project and service is None else None
    found = client.executions.list(
        service_id=service.id if service else None,
        project_id=project,
        status=args.status,
        limit=args.limit,
    )
    ctx.emit([e.to_json() for e in found], executions_table(found, ctx.clock()))
    return 0


def rerun(args: argparse.Namespace, ctx: Context) -> int:
    execution = ctx.client.executions.get(args.execution).rerun()
    if args.wait:
        return finish(ctx, execution, args.timeout, skip=len(execution.status_log) - 1)
    ctx.emit(execution.to_json(), f"execution {execution.id} {execution.status.value} (rerun)")
    return 0


def terminate(args: argparse.Namespace, ctx: Context) -> int:
    """Ask the platform to stop it, and wait a little for the agent to have stopped it."""
    execution = ctx.client.executions.get(args.execution).terminate()
    with contextlib.suppress(TimeoutError):
        execution.wait(timeout=TERMINATE_WAIT)
    text = execution_line(execution)
    if not execution.status.is_terminal:
        text = f"termination requested; {text} (still)"
    ctx.emit(execution.to_json(), text)
    return 0


def user_frames(error: BaseException) -> TracebackType | None:
    """The traceback from the first frame outside the replay's machinery (all of it if none
    is outside)."""
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename.startswith(MACHINERY):
        tb = tb.tb_next
    return tb or error.__traceback__


def _recorded(ctx: Context, execution_id: str) -> str:
    """What the platform recorded for the execution, to compare with."""
    with contextlib.suppress(SpoolError):
        error = ctx.client.executions.get(execution_id).error
        if error is not None:
            return f" (on the platform: {error.type}: {error.message})"
    return ""


def _raised(ctx: Context, execution_id: str, error: Exception) -> int:
    """The function's exception, as Python prints it, then one line; exit 1."""
    ctx.stderr.write("".join(traceback.format_exception(type(error), error, user_frames(error))))
    if ctx.json:
        body = {"type": type(error).__name__, "message": str(error)}
        ctx.emit({"executionId": execution_id, "raised": body}, "")
    what = f"{type(error).__name__}: {error}"
    recorded = _recorded(ctx, execution_id)
    ctx.stderr.write(f"spool: replay of execution {execution_id} raised {what}{recorded}\n")
    return 1


def replay(args: argparse.Namespace, ctx: Context) -> int:
    """Run a platform execution here, on --src or on the code of the revision it ran (in a
    temporary folder, removed afterwards). With --json, the code's prints go to stderr."""
    from spool.local import replay as run_replay

    quiet = contextlib.redirect_stdout(ctx.stderr) if ctx.json else contextlib.nullcontext()
    with tempfile.TemporaryDirectory(prefix="spool-replay-") as folder:
        try:
            with quiet:
                output = run_replay(args.execution, args.src, debugger=args.pdb, download_to=folder)
        except SpoolError:
            raise  # the platform's answer: its own exit code
        except Exception as e:  # the function raised: what the replay is for
            return _raised(ctx, args.execution, e)
    ctx.emit({"executionId": args.execution, "output": output}, json_text(output))
    return 0
