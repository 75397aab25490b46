"""The `spool` command: Spool from a shell, on top of the SDK.

    spool login http://127.0.0.1:8080 --project demo
    spool deploy examples/hello
    spool exec hello run -i name=world --wait

Human output by default; `--json` prints machine-readable JSON on stdout and nothing else
there. Exit codes are listed in `spool --help` (and `cli_errors.EPILOG`). The handlers live
in `cli_manage` and `cli_run`; this module only parses and dispatches.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import version
from typing import IO

from spool.cli_context import Context
from spool.cli_errors import EPILOG, error_json, error_line, exit_code
from spool.cli_manage import (
    deploy,
    login,
    projects_create,
    projects_ls,
    push,
    scale,
    status,
    triggers_create,
    triggers_ls,
    use,
)
from spool.cli_run import exec_, executions_ls, logs, replay, rerun, terminate
from spool_common.models import (
    ExecutionStatus,
    TriggerAction,
    TriggerExecutionMode,
    TriggerResource,
)

Handler = Callable[[argparse.Namespace, Context], int]
Adder = Callable[..., argparse.ArgumentParser]

DESCRIPTION = """\
Spool from the shell: push and deploy packages, run functions and watch them, read logs,
manage triggers, see why the autoscaler scaled, replay a failed execution here.

SERVICE is a service id (32 hex digits) or a name, looked up in the project given by
--project, else $SPOOL_PROJECT, else the default saved by `spool login --project` or
`spool use`, else in every project the token can see. The URL and token come from
$SPOOL_URL / $SPOOL_TOKEN, else the config file `spool login` writes ($SPOOL_CONFIG, else
$XDG_CONFIG_HOME/spool/config.json, else ~/.config/spool/config.json).
"""


def _common() -> argparse.ArgumentParser:
    """--json and --project, accepted before or after the command (SUPPRESS: a subcommand's
    default does not overwrite what was given before it)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="print JSON for scripts"
    )
    common.add_argument(
        "--project", default=argparse.SUPPRESS, help="the project to work in (id or name)"
    )
    return common


def _wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--wait", action="store_true", help="wait for the end, showing progress")
    parser.add_argument("--timeout", type=float, help="with --wait: give up after seconds")


def _setup_commands(add: Adder) -> None:
    p = add("login", help="check a token, then save it with the URL")
    p.add_argument("url", nargs="?", help="the gateway, e.g. http://127.0.0.1:8080 (asked)")
    token = p.add_mutually_exclusive_group()
    token.add_argument("--token", help="the token (asked if left out)")
    token.add_argument("--token-stdin", action="store_true", help="read the token from stdin")
    p.set_defaults(handler=login)
    p = add("use", help="make a project the default")
    p.add_argument("project_ref", metavar="PROJECT", help="a project id or name")
    p.set_defaults(handler=use)
    projects = add("projects", help="list or create projects").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = projects.add_parser("ls", help="list projects", parents=[_common()])
    p.set_defaults(handler=projects_ls)
    p = projects.add_parser("create", help="create a project", parents=[_common()])
    p.add_argument("name")
    p.set_defaults(handler=projects_create)
    p = add("push", help="push a package (a new one, or a new revision)")
    p.add_argument("path", nargs="?", default=".", help="the package folder (default .)")
    p.add_argument("--name", help="the package name (default: package.json's)")
    p.set_defaults(handler=push)
    p = add("deploy", help="push, then deploy package.json's services and triggers")
    p.add_argument("path", nargs="?", default=".", help="the package folder (default .)")
    p.set_defaults(handler=deploy)


def _execution_commands(add: Adder) -> None:
    p = add("exec", help="run a function")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("function", nargs="?", default="run", metavar="FUNCTION", help="default run")
    p.add_argument("--input", metavar="JSON", help="the input, as a JSON object")
    p.add_argument(
        "-i", dest="inputs", action="append", default=[], metavar="KEY=VALUE",
        help="one input: key=text (a string) or key:=json (any JSON value); repeatable",
    )  # fmt: skip
    _wait_options(p)
    p.set_defaults(handler=exec_)
    p = add("logs", help="an execution's log, or a service's (--service)")
    p.add_argument("execution", nargs="?", metavar="EXECUTION")
    p.add_argument("--service", metavar="SERVICE")
    p.add_argument("-f", "--follow", action="store_true", help="keep reading new lines")
    p.add_argument(
        "--tail", type=int, metavar="N", help="with --service: begin with the newest N lines"
    )
    p.set_defaults(handler=logs)
    executions = add("executions", help="list executions").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = executions.add_parser("ls", help="newest first, as a table", parents=[_common()])
    p.add_argument("--service", metavar="SERVICE")
    p.add_argument("--status", choices=[s.value for s in ExecutionStatus])
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p.set_defaults(handler=executions_ls)
    p = add("rerun", help="run a finished execution again")
    p.add_argument("execution", metavar="EXECUTION")
    _wait_options(p)
    p.set_defaults(handler=rerun)
    p = add("terminate", help="stop an execution")
    p.add_argument("execution", metavar="EXECUTION")
    p.set_defaults(handler=terminate)
    p = add("replay", help="run a platform execution here, with its input")
    p.add_argument("execution", metavar="EXECUTION")
    p.add_argument("--src", metavar="PATH", help="your local code (default: the revision it ran)")
    p.add_argument("--pdb", action="store_true", help="under pdb")
    p.set_defaults(handler=replay)


def _service_commands(add: Adder) -> None:
    p = add("status", help="a service's status and replicas")
    p.add_argument("service", metavar="SERVICE")
    p.set_defaults(handler=status)
    p = add("scale", help="why the autoscaler did what it did (newest first)")
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--limit", type=int, default=20, help="at most this many (default 20)")
    p.set_defaults(handler=scale)
    triggers = add("triggers", help="list or create triggers").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    p = triggers.add_parser("ls", help="list triggers", parents=[_common()])
    p.add_argument("--service", metavar="SERVICE")
    p.set_defaults(handler=triggers_ls)
    p = triggers.add_parser("create", help="an event or cron trigger", parents=[_common()])
    p.add_argument("service", metavar="SERVICE")
    p.add_argument("--function", required=True, help="the function it runs")
    p.add_argument("--name", help="default: the service's name")
    p.add_argument("--cron", metavar="EXPR", help="a cron trigger on this schedule")
    p.add_argument("--resource", choices=[r.value for r in TriggerResource], help="default Item")
    p.add_argument(
        "--action", dest="actions", action="append", choices=[a.value for a in TriggerAction],
        help="repeatable; default Created",
    )  # fmt: skip
    p.add_argument("--filter", metavar="JSON", help="a DQL filter the entity must match")
    p.add_argument("--mode", choices=[m.value for m in TriggerExecutionMode], help="default Once")
    p.add_argument("--input", metavar="JSON", help="input given to the function")
    p.set_defaults(handler=triggers_create)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="spool",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    parser.add_argument("--project", help="the project to work in (id or name)")
    parser.add_argument("--version", action="version", version=f"spool {version('spool')}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help, description=help, parents=[_common()])

    _setup_commands(add)
    _execution_commands(add)
    _service_commands(add)
    return parser


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Run the parsed command; an error becomes one line on stderr and its exit code."""
    handler: Handler = args.handler
    try:
        return handler(args, ctx)
    except (Exception, KeyboardInterrupt) as e:
        ctx.stderr.write((error_json(e) if ctx.json else error_line(e)) + "\n")
        return int(exit_code(e))
    finally:
        ctx.close()


def main(
    argv: Sequence[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None
) -> int:
    """The `spool` console script; returns the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2
    ctx = Context(args.json, stdout or sys.stdout, stderr or sys.stderr, args.project)
    return run(args, ctx)


if __name__ == "__main__":
    sys.exit(main())
