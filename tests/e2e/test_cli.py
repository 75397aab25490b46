"""The `spool` command against the real platform, run as a user runs it: a separate process
(`python -m spool.cli`) with its own config file and HOME, so a developer's login is never
read or touched. Login (token checked, saved 0600), deploy of the examples, exec --wait with
its progress (exit 0; a failing function exits 1), logs, executions ls (table and JSON),
status, scale (the autoscaler's reasons), triggers create/ls, rerun, terminate, replay of a
failed execution (the same exception, exit 1), and the exit codes of errors: bad token 4,
unknown service 3, bad input 5 naming the field, timeout 6, conflict 8.

The cheaper error cases call `spool.cli.main` in the test process; the main flow always runs
the real command."""

from __future__ import annotations

import asyncio
import io
import os
import shutil
import stat
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from support.platform import LocalPlatform

from spool.cli import main

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
AUTOSCALER = {"type": "rabbitmq", "minReplicas": 1, "maxReplicas": 2, "queueLength": 10}
DONE_LINE = "[Done] Executing function."


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return orjson.loads(self.out)


@dataclass(frozen=True)
class Cli:
    """Runs `spool` as a subprocess, with the environment a user's shell would give it."""

    env: dict[str, str]
    config: Path

    async def __call__(
        self, *args: str | Path, stdin: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "spool.cli", *map(str, args),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env={**self.env, **(env or {})},
        )  # fmt: skip
        data = (stdin or "").encode()
        out, err = await asyncio.wait_for(process.communicate(data), timeout=90)
        assert process.returncode is not None
        return Result(process.returncode, out.decode(), err.decode())

    async def inline(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """`spool.cli.main` in this process (in a thread, beside the platform's loop)."""
        out, err = io.StringIO(), io.StringIO()
        saved = dict(os.environ)
        os.environ.update({**self.env, **(env or {})})
        for name in ("SPOOL_URL", "SPOOL_TOKEN", "SPOOL_PROJECT"):
            if name not in self.env and name not in (env or {}):
                os.environ.pop(name, None)
        try:
            code = await asyncio.to_thread(main, list(args), out, err)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        return Result(code, out.getvalue(), err.getvalue())


def _cli(root: Path) -> Cli:
    home = root / "home"
    home.mkdir()
    config = root / "spool.json"
    keep = {k: os.environ[k] for k in ("PATH", "LANG", "PYTHONPATH") if k in os.environ}
    env = {**keep, "HOME": str(home), "SPOOL_CONFIG": str(config), "COLUMNS": "200"}
    return Cli(env, config)


@pytest.fixture(scope="module")
def cli(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return _cli(tmp_path_factory.mktemp("cli"))


@dataclass(frozen=True)
class Session:
    project: str
    deployed: dict[str, Any]  # example name -> `spool --json deploy` output
    scaled: str  # the id of a service with an autoscaler


def _scaled_package(root: Path) -> Path:
    """examples/hello with a package.json service that has an autoscaler."""
    folder = root / "hello-scaled"
    shutil.copytree(EXAMPLES / "hello", folder)
    manifest = orjson.loads((folder / "package.json").read_bytes())
    runtime = {"autoscaler": {**AUTOSCALER, "pollingInterval": 1}}
    manifest |= {"name": "hello-scaled", "services": [{"name": "hello-scaled", "runtime": runtime}]}
    (folder / "package.json").write_bytes(orjson.dumps(manifest))
    return folder


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def session(
    cli: Cli, platform: LocalPlatform, tmp_path_factory: pytest.TempPathFactory
) -> Session:
    """Logged in with the token on stdin, a project made the default, the examples deployed."""
    login = await cli("login", platform.url, "--token-stdin", stdin=platform.token + "\n")
    assert login.code == 0, login.err
    created = await cli("--json", "projects", "create", "cli")
    assert created.code == 0, created.err
    assert (await cli("use", "cli")).code == 0
    deployed = {}
    for name in ("hello", "long-job", "image-pipeline"):
        result = await cli("--json", "deploy", EXAMPLES / name)
        assert result.code == 0, result.err
        deployed[name] = result.json()
    scaled = await cli("--json", "deploy", _scaled_package(tmp_path_factory.mktemp("pkg")))
    assert scaled.code == 0, scaled.err
    return Session(created.json()["id"], deployed, scaled.json()["services"][0]["id"])


async def test_login_checks_the_token_then_saves_it_privately(
    platform: LocalPlatform, tmp_path: Path
) -> None:
    cli = _cli(tmp_path)
    refused = await cli("login", platform.url, "--token", "not-a-token")
    assert refused.code == 4
    reason = "unknown, expired or revoked token (Authorization: token not accepted)"
    assert refused.err == f"spool: error: {reason}\n"
    assert not cli.config.exists()

    done = await cli("--json", "login", platform.url + "/api/v1/", "--token", platform.token)
    assert done.code == 0, done.err
    assert done.json()["url"] == platform.url
    assert stat.S_IMODE(cli.config.stat().st_mode) == 0o600
    assert orjson.loads(cli.config.read_bytes()) == {"url": platform.url, "token": platform.token}
    assert done.err == ""  # --json: nothing but the result


async def test_deploy_prints_the_package_services_and_triggers(cli: Cli, session: Session) -> None:
    pipeline = session.deployed["image-pipeline"]
    assert [s["name"] for s in pipeline["services"]] == ["image-pipeline"]
    assert [t["name"] for t in pipeline["triggers"]] == ["image-pipeline-on-upload"]
    # hello's package.json has no services: it gets one, named after the package
    assert [s["name"] for s in session.deployed["hello"]["services"]] == ["hello"]
    again = await cli("deploy", EXAMPLES / "image-pipeline")
    assert again.code == 0, again.err
    service_id = pipeline["services"][0]["id"]
    assert f"service image-pipeline ({service_id}) runs 1.0.0" in again.out  # the same one
    assert "trigger image-pipeline-on-upload (" in again.out
    assert "Item Created (Once)" in again.out


async def test_exec_wait_shows_the_progress_and_prints_the_output(
    cli: Cli, session: Session
) -> None:
    run = await cli("exec", "long-job", "-i", "steps:=4", "-i", "step_seconds:=0.2", "--wait")
    assert run.code == 0, run.err
    assert orjson.loads(run.out) == {"steps": 4, "attempt": 1, "resumedAfterStep": 0}
    progress = [line.split() for line in run.err.splitlines() if "%" in line]
    assert progress == [
        ["in-progress", "25%", "step", "1", "of", "4"],
        ["in-progress", "50%", "step", "2", "of", "4"],
        ["in-progress", "75%", "step", "3", "of", "4"],
        ["in-progress", "100%", "step", "4", "of", "4"],
        ["success", "100%"],
    ]
    assert run.err.splitlines()[-1].split()[2:4] == ["success", "in"]

    hello = await cli("exec", "hello", "run", "-i", "name=world", "--wait")
    assert (hello.code, hello.out) == (0, '"hello world"\n')


async def test_a_failed_execution_exits_1_and_replays_here_with_the_same_exception(
    cli: Cli, session: Session
) -> None:
    inputs = ["-i", "steps:=3", "-i", "step_seconds:=0.05", "-i", "fail_at_step:=2"]
    failed = await cli("--json", "exec", "long-job", *inputs, "--wait")
    assert failed.code == 1
    execution = failed.json()
    assert execution["latestStatus"]["status"] == "failed"
    human = await cli("rerun", execution["id"], "--wait")
    assert human.code == 1
    assert "failed" in human.err
    assert "RuntimeError: step 2 of 3 failed on purpose" in human.err
    assert human.out == ""

    replayed = await cli("replay", execution["id"])
    assert replayed.code == 1
    assert replayed.err.startswith("Traceback (most recent call last):\n")
    assert '/main.py", line' in replayed.err  # the user's code, not the CLI's machinery
    assert "cli_run.py" not in replayed.err
    lines = replayed.err.splitlines()
    assert lines[-2] == "RuntimeError: step 2 of 3 failed on purpose"
    assert lines[-1].endswith(
        "raised RuntimeError: step 2 of 3 failed on purpose "
        "(on the platform: RuntimeError: step 2 of 3 failed on purpose)"
    )


async def _hello(cli: Cli, name: str) -> dict[str, Any]:
    done = await cli("--json", "exec", "hello", "-i", f"name={name}", "--wait")
    assert done.code == 0, done.err
    result: dict[str, Any] = done.json()
    return result


async def test_logs_of_an_execution_and_of_a_service(cli: Cli, session: Session) -> None:
    execution = await _hello(cli, "logs")
    followed = await cli("logs", "-f", execution["id"])
    assert (followed.code, followed.out.splitlines()) == (0, [DONE_LINE])
    as_json = await cli("--json", "logs", execution["id"])
    (line,) = [orjson.loads(text) for text in as_json.out.splitlines()]
    assert (line["message"], line["executionId"]) == (DONE_LINE, execution["id"])
    service = await cli("logs", "--service", "hello")
    assert f"[{execution['id'][:8]}] {DONE_LINE}" in service.out.splitlines()
    newest = await cli("logs", "--service", "hello", "--tail", "1")
    assert (newest.code, newest.out.splitlines()) == (0, service.out.splitlines()[-1:])
    whole = await cli("logs", "--tail", "1", execution["id"])
    assert whole.code == 2
    assert "--tail goes with --service" in whole.err


async def test_executions_ls_as_a_table_and_as_json(cli: Cli, session: Session) -> None:
    execution = await _hello(cli, "ls")
    listed = await cli("executions", "ls", "--service", "hello")
    assert listed.code == 0, listed.err
    header, *rows = listed.out.splitlines()
    assert header.split() == [
        "ID", "SERVICE", "FUNCTION", "STATUS", "PROGRESS", "ATTEMPTS", "AGE", "DURATION"
    ]  # fmt: skip
    row = next(r.split() for r in rows if r.startswith(execution["id"]))
    assert row[1:6] == ["hello", "run", "success", "100%", "1"]

    as_json = await cli("--json", "executions", "ls", "--service", "hello", "--limit", "50")
    assert execution["id"] in [e["id"] for e in as_json.json()]
    failed = await cli("--json", "executions", "ls", "--status", "failed")
    assert execution["id"] not in [e["id"] for e in failed.json()]


async def test_status_and_the_autoscalers_reasons(cli: Cli, session: Session) -> None:
    await _hello(cli, "status")  # its replica is up
    status = await cli("status", "hello")
    assert status.code == 0, status.err
    assert "status    Active" in status.out
    assert "ready" in status.out
    as_json = await cli("--json", "status", "hello")
    assert as_json.json()["status"]["desiredReplicas"] == 1

    fixed = await cli("scale", "hello")
    assert "no autoscaler: runtime.numReplicas keeps 1 replica(s)" in fixed.out
    deadline = time.monotonic() + 30
    while not (decided := await cli("--json", "scale", session.scaled)).json()["decisions"]:
        assert time.monotonic() < deadline, "no scaling decision"
        await asyncio.sleep(0.5)
    decision = decided.json()["decisions"][0]
    scaled = await cli("scale", "hello-scaled")
    assert "autoscaler rabbitmq: 1..2 replicas" in scaled.out
    assert "AGE  FROM  TO  RULE" in scaled.out.replace("   ", "  ")
    assert decision["reason"] in scaled.out


async def test_triggers_create_and_ls(cli: Cli, session: Session) -> None:
    cron = await cli(
        "triggers", "create", "hello", "--function", "run", "--cron", "*/5 * * * *",
        "--input", '{"name": "cron"}', "--name", "hello-every-5",
    )  # fmt: skip
    assert cron.code == 0, cron.err
    assert cron.out.endswith(": cron */5 * * * * -> run\n")
    event = await cli(
        "--json", "triggers", "create", "image-pipeline", "--function", "describe",
        "--resource", "Item", "--action", "Created", "--filter", '{"dir": "/cli"}',
        "--mode", "Always", "--name", "cli-items",
    )  # fmt: skip
    assert event.code == 0, event.err
    assert event.json()["spec"]["executionMode"] == "Always"

    of_hello = await cli("triggers", "ls", "--service", "hello")
    (row,) = of_hello.out.splitlines()[1:]
    cells = ["hello-every-5", "Cron", "yes", "hello", "run", "cron", "*/5", "*", "*", "*", "*"]
    assert row.split()[1:] == cells
    listed = await cli("triggers", "ls")
    assert 'Item Created (Always) {"dir":"/cli"}' in listed.out
    names = [t["name"] for t in (await cli("--json", "triggers", "ls")).json()]
    assert sorted(names) == ["cli-items", "hello-every-5", "image-pipeline-on-upload"]

    wrong = await cli("triggers", "create", "hello", "--function", "run", "--resource", "Item")
    assert wrong.code == 5
    assert wrong.err.startswith("spool: error: spec.resource: function 'run' has no input")


async def test_timeout_terminate_and_rerun(cli: Cli, session: Session) -> None:
    slow = ["-i", "steps:=100", "-i", "step_seconds:=0.1"]
    waited = await cli("--json", "exec", "long-job", *slow, "--wait", "--timeout", "1")
    assert waited.code == 6
    execution = waited.json()  # the execution as it was, for the script to carry on with
    assert "did not finish within 1 s" in orjson.loads(waited.err)["message"]

    stopped = await cli("terminate", execution["id"])
    assert stopped.code == 0, stopped.err
    assert stopped.out.startswith(f"execution {execution['id']} terminated")

    hello = await _hello(cli, "again")
    rerun = await cli("rerun", hello["id"], "--wait")
    assert (rerun.code, rerun.out) == (0, '"hello again"\n')
    assert rerun.err.splitlines()[0].split() == ["rerun", "Execution", "rerun", "by", "a", "user"]


async def test_error_exit_codes(cli: Cli, session: Session) -> None:
    bad_token = await cli.inline("status", "hello", env={"SPOOL_TOKEN": "nope"})
    assert bad_token.code == 4
    unknown = await cli("status", "nope")
    assert (unknown.code, unknown.out) == (3, "")
    why = f"no service named 'nope' in project {session.project} (service: no such service)"
    assert unknown.err == f"spool: error: {why}\n"
    missing = await cli.inline("logs", "0" * 32)
    assert missing.code == 3

    bad = await cli("exec", "long-job", "-i", "steps=four")
    assert bad.code == 5
    assert bad.err == "spool: error: input.steps: must be an integer, not a string\n"
    as_json = await cli.inline("--json", "exec", "long-job", "-i", "steps=four")
    assert (as_json.code, as_json.out) == (5, "")
    assert orjson.loads(as_json.err)["details"] == [
        {"field": "input.steps", "reason": "must be an integer, not a string"}
    ]
    taken = await cli.inline("projects", "create", "cli")
    assert taken.code == 8
    assert "name: already taken" in taken.err
