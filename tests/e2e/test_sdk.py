"""The Python SDK against the real platform: projects, push (and a new revision), deploy,
execute (sync and not), wait, logs, failures, terminate, rerun, update with MLRun's modifiers,
rollback, pause and resume, status, scaling, triggers (event with Filters, dry runs, published
events, and cron), notifications, users and tokens, members, bots, secrets, delete, typed
errors, and retries of rate-limited creates.

The SDK is synchronous (like dtlpy): each test runs its SDK calls in a thread, beside the
event loop that holds the platform's processes."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from support.platform import LocalPlatform, running_platform

import spool
from spool import ExecutionStatus, Filters, TriggerAction, TriggerResource, TriggerType

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

RATE, BURST = 5, 5  # executions per second per project, so the retry test meets a 429

CODE = """
import os
import time

class ServiceRunner:
    def __init__(self, greeting):
        self.greeting = greeting

    def run(self, name):
        print(f"saying {self.greeting} to {name}")
        return f"{self.greeting} {name}"

    def busy(self, seconds, progress):
        progress.update(progress=50, message="half way")
        end = time.time() + seconds
        while time.time() < end:
            pass
        return seconds

    def boom(self):
        raise ValueError("kaboom")

    def env(self, name):
        return os.environ.get(name)

    def chatty(self, n):
        for i in range(n):
            print(f"line {i}")
            time.sleep(0.05)
        return n

    def on_item(self, item):
        return {"itemId": item.id}

    def tick(self, config):
        return config
"""


def _function(function: str, **inputs: str) -> dict[str, Any]:
    return {"name": function, "input": [{"name": k, "type": t} for k, t in inputs.items()]}


FUNCTIONS = [
    _function("run", name="String"),
    _function("busy", seconds="Number"),
    _function("boom"),
    _function("env", name="String"),
    _function("chatty", n="Number"),
    _function("on_item", item="Item"),
    _function("tick", config="Json"),
]


def _manifest(functions: list[dict[str, Any]]) -> bytes:
    module = {
        "name": "default_module",
        "initInputs": [{"name": "greeting", "type": "String"}],
        "functions": functions,
    }
    return orjson.dumps({"name": "sdk-demo", "modules": [module]})


@dataclass(frozen=True)
class Deployed:
    project: spool.Project
    package: spool.Package
    service: spool.Service


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    env = {"SPOOL_EXECUTION_RATE": str(RATE), "SPOOL_EXECUTION_BURST": str(BURST)}
    async with running_platform(tmp_path_factory.mktemp("platform"), env) as p:
        yield p


@pytest.fixture(scope="module")
def sdk(platform: LocalPlatform) -> Iterator[spool.Client]:
    with spool.Client(platform.url, platform.token) as client:
        yield client


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A package directory, with the clutter a push must leave out."""
    root = tmp_path_factory.mktemp("src")
    (root / "main.py").write_text(CODE)
    (root / "package.json").write_bytes(_manifest(FUNCTIONS))
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\x00junk")
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    return root


def _deploy(sdk: spool.Client, source: Path) -> Deployed:
    project = sdk.projects.create("sdk")
    package = sdk.packages.push(src_path=source, project=project)
    runtime = spool.KubernetesRuntime(
        concurrency=4,
        autoscaler=spool.KubernetesRabbitmqAutoscaler(
            min_replicas=1, max_replicas=2, queue_length=10, polling_interval=1
        ),
    )
    service = package.deploy(service_name="greeter", runtime=runtime, init_input={"greeting": "hi"})
    return Deployed(project, package, service)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def deployed(sdk: spool.Client, source: Path) -> Deployed:
    return await asyncio.to_thread(_deploy, sdk, source)


def _until(check: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
    """Poll `check` until it answers something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what or check}")


def _fetch(deployed: Deployed, execution_id: str) -> spool.Execution:
    """The execution as the server has it now."""
    return deployed.service.client.executions.get(execution_id)


def _own_service(deployed: Deployed, name: str) -> spool.Service:
    return deployed.package.deploy(service_name=name, init_input={"greeting": "yo"})


async def test_projects_and_typed_errors(sdk: spool.Client, platform: LocalPlatform) -> None:
    def body() -> None:
        project = sdk.projects.create("sdk-projects")
        assert sdk.projects.get(project_id=project.id).name == "sdk-projects"
        assert sdk.projects.get(project_name="sdk-projects").id == project.id
        assert project.id in [p.id for p in sdk.projects.list()]
        with pytest.raises(spool.Conflict) as taken:
            sdk.projects.create("sdk-projects")
        assert "name: already taken" in str(taken.value)
        with pytest.raises(spool.NotFound):
            sdk.projects.get(project_id="nope")
        with pytest.raises(spool.BadRequest, match="exactly one of"):
            sdk.projects.get()
        with (
            spool.Client(platform.url, "not-a-token") as stranger,
            pytest.raises(spool.Unauthorized, match="token not accepted"),
        ):
            stranger.projects.list()

    await asyncio.to_thread(body)


async def test_push_zips_the_code_and_a_second_push_is_a_revision(
    sdk: spool.Client, source: Path, tmp_path: Path
) -> None:
    def body() -> None:
        project = sdk.projects.create("sdk-push")
        copy = tmp_path / "pkg"
        shutil.copytree(source, copy)
        first = sdk.packages.push(src_path=copy, project_id=project.id)
        assert (first.name, first.version) == ("sdk-demo", "1.0.0")
        assert [f.name for f in first.modules[0].functions] == [f["name"] for f in FUNCTIONS]

        (copy / "package.json").write_bytes(_manifest([*FUNCTIONS, _function("extra")]))
        (copy / "main.py").write_text(CODE + "\n    def extra(self):\n        return 1\n")
        second = project.packages.push(src_path=copy)
        assert (second.id, second.version) == (first.id, "1.0.1")
        assert "extra" in [f.name for f in second.modules[0].functions]  # the new package.json
        assert [p.version for p in second.revisions] == ["1.0.0", "1.0.1"]
        found = sdk.packages.get(package_name="sdk-demo", project_id=project.id)
        assert found.version == "1.0.1"
        assert sdk.packages.get(package_id=first.id, version="1.0.0").version == "1.0.0"
        assert [p.id for p in sdk.packages.list(project_id=project.id)] == [first.id]
        with pytest.raises(spool.BadRequest) as missing:
            sdk.packages.push(src_path=copy)
        assert missing.value.details[0].field == "projectId"

    await asyncio.to_thread(body)


DECORATED = """
import spool


class ServiceRunner(spool.BaseServiceRunner):
    @spool.function(display_name="Add")
    def add(self, a: int, b: int = 1):
        return a + b

    @spool.function
    def shout(self, text: str, progress: spool.Progress):
        progress.update(progress=50)
        return text.upper()
"""


async def test_a_package_declared_by_decorators_deploys_and_runs(
    sdk: spool.Client, tmp_path: Path
) -> None:
    """No package.json: the functions are the methods marked @spool.function, their inputs
    typed from the annotations, and calls are checked against those types."""

    def body() -> None:
        project = sdk.projects.create("sdk-decorated")
        (tmp_path / "main.py").write_text(DECORATED)
        package = sdk.packages.push(src_path=tmp_path, package_name="decorated", project=project)
        [module] = package.modules
        assert [(f.name, [(i.name, i.type.value) for i in f.input]) for f in module.functions] == [
            ("add", [("a", "Integer"), ("b", "Integer")]),
            ("shout", [("text", "String")]),
        ]
        service = package.deploy(service_name="decorated")
        assert service.execute(function_name="add", execution_input={"a": 2}, sync=True) == 3
        done = service.execute(function_name="shout", execution_input={"text": "hi"})
        assert done.wait(timeout=60).output == "HI"
        with pytest.raises(spool.BadRequest) as wrong:
            service.execute(function_name="add", execution_input={"a": "two"})
        assert wrong.value.details[0].field.startswith("input.a")

    await asyncio.to_thread(body)


async def test_deploy_from_file_with_services_and_triggers(
    sdk: spool.Client, source: Path, tmp_path: Path
) -> None:
    def body() -> None:
        project = sdk.projects.create("sdk-from-file")
        copy = tmp_path / "pkg"
        shutil.copytree(source, copy)
        manifest = orjson.loads((copy / "package.json").read_bytes())
        trigger = {
            "name": "filed-items",
            "spec": {"resource": "Item", "operation": {"functionName": "on_item"}},
        }
        service = {"name": "filed", "initParams": {"greeting": "hey"}, "triggers": [trigger]}
        manifest["services"] = [{**service, "runtime": {"concurrency": 2}}]
        (copy / "package.json").write_bytes(orjson.dumps(manifest))

        done = project.packages.deploy_from_file(copy)
        assert done.package.version == "1.0.0"
        (deployed,) = done.services
        assert (deployed.name, deployed.runtime.concurrency) == ("filed", 2)
        assert [t.name for t in done.triggers] == ["filed-items"]
        assert deployed.execute({"name": "file"}, sync=True, timeout=90) == "hey file"
        again = sdk.packages.deploy_from_file(copy, project_id=project.id)
        assert (again.package.version, again.services[0].id) == ("1.0.0", deployed.id)

    await asyncio.to_thread(body)


async def test_deploy_execute_wait_and_logs(deployed: Deployed, sdk: spool.Client) -> None:
    def body() -> None:
        service = deployed.service
        assert service.runtime.concurrency == 4
        assert service.runtime.autoscaler is not None
        assert service.runtime.autoscaler.type == "rabbitmq"
        assert service.init_params == {"greeting": "hi"}
        assert service.package_revision == deployed.package.version
        assert sdk.services.get(service_name="greeter", project_id=deployed.project.id).id == (
            service.id
        )

        assert service.execute({"name": "world"}, sync=True, timeout=90) == "hi world"
        execution = service.execute({"name": "ada"})
        assert isinstance(execution, spool.Execution)
        assert execution.wait(timeout=90) is execution
        assert (execution.status, execution.output) == (ExecutionStatus.SUCCESS, "hi ada")
        assert [e.status for e in execution.status_log] == ["created", "in-progress", "success"]
        lines = [line.message for line in execution.logs(follow=True)]
        assert lines == ["saying hi to ada", "[Done] Executing function."]
        assert sdk.executions.get(execution.id).output == "hi ada"
        listed = service.executions.list(status=ExecutionStatus.SUCCESS)
        assert execution.id in [e.id for e in listed]
        by_service = sdk.executions.list(service_id=service.id, status="failed")
        assert execution.id not in [e.id for e in by_service]
        io = spool.FunctionIO(name="name", type=spool.PackageInputType.STRING, value="io")
        done = service.execute(io, sync=True, return_output=False, timeout=90)
        assert isinstance(done, spool.Execution)
        assert done.output == "hi io"

    await asyncio.to_thread(body)


async def test_failures_rerun_and_bad_requests(deployed: Deployed) -> None:
    def body() -> None:
        service = deployed.service
        with pytest.raises(spool.ExecutionFailed, match="kaboom"):
            service.execute(function_name="boom", sync=True, timeout=90)
        failed = service.execute(function_name="boom").wait(timeout=90)
        assert failed.status == ExecutionStatus.FAILED
        assert failed.error is not None
        assert "kaboom" in failed.error.message
        first_attempts = failed.attempts
        again = failed.rerun()
        assert again is failed
        assert again.wait(timeout=90).status == ExecutionStatus.FAILED
        assert again.attempts > first_attempts
        assert failed.id in [e.id for e in service.executions.list(status="failed")]

        with pytest.raises(spool.BadRequest) as unknown:
            service.execute(function_name="nope")
        assert unknown.value.details[0].field == "functionName"
        with pytest.raises(spool.BadRequest) as module:
            deployed.package.deploy(service_name="bad-module", module_name="nope")
        assert module.value.details[0].field == "moduleName"
        assert "no module 'nope'" in str(module.value)

    await asyncio.to_thread(body)


async def test_wait_timeout_progress_and_terminate(deployed: Deployed) -> None:
    def body() -> None:
        execution = deployed.service.execute({"seconds": 60}, function_name="busy")
        with pytest.raises(TimeoutError, match=execution.id):
            execution.wait(timeout=0.5)
        _until(lambda: _fetch(deployed, execution.id).progress == 50, 60, "progress 50")
        assert execution.terminate() is execution
        execution.wait(timeout=60)
        assert execution.status == ExecutionStatus.TERMINATED
        assert "termination signal" in (execution.latest_status.message or "")

    await asyncio.to_thread(body)


async def test_logs_follow_until_the_end(deployed: Deployed) -> None:
    def body() -> None:
        execution = deployed.service.execute({"n": 20}, function_name="chatty")
        lines = [line.message for line in execution.logs(follow=True)]
        assert lines == [*(f"line {i}" for i in range(20)), "[Done] Executing function."]
        assert execution.status == ExecutionStatus.SUCCESS
        from_service = deployed.service.logs(execution_id=execution.id)
        assert [str(line) for line in from_service] == lines
        newest = deployed.service.logs(execution_id=execution.id, tail=3)
        assert [str(line) for line in newest] == lines[-3:]

    await asyncio.to_thread(body)


def _env(service: spool.Service) -> Any:
    return service.execute({"name": "GREETING_ENV"}, "env", sync=True, timeout=90)


async def test_update_with_modifiers_revisions_and_rollback(deployed: Deployed) -> None:
    def body() -> None:
        service = _own_service(deployed, "updated")
        first_revision = service.revisions[-1].revision
        service.runtime.concurrency = 3
        service.set_env("GREETING_ENV", "x").with_requests(mem="256M", cpu="100m")
        service.with_priority_class("high")
        assert service.update() is service
        assert service.runtime.concurrency == 3
        assert service.runtime.env == {"GREETING_ENV": "x"}
        assert service.runtime.priority_class_name == "high"
        assert service.changes() == {}
        # A rolling update: the old replica serves until the new one is ready.
        _until(lambda: _env(service) == "x", 90, "the new revision's replica")
        assert len(service.revisions) == 2

        again = deployed.package.deploy(service_name="updated", execution_timeout=100)
        assert again.id == service.id
        assert (again.execution_timeout, again.runtime.concurrency) == (100, 3)  # kept

        service.rollback(first_revision)
        assert service.runtime.concurrency == 10
        assert service.runtime.env == {}
        _until(lambda: _env(service) is None, 90, "the rolled-back replica")

    await asyncio.to_thread(body)


async def test_pause_resume_and_status(deployed: Deployed) -> None:
    def body() -> None:
        service = _own_service(deployed, "paused")
        _until(lambda: service.status().status == "Active", timeout=60, what="Active")
        status = service.status()
        assert status.desired_replicas == 1
        assert [r.state for r in status.runtime_status] == ["ready"]
        listed = {s.service_id: s for s in deployed.project.services.statuses()}
        assert listed[service.id] == status
        assert {s.service_id for s in deployed.project.services.load()} == set(listed)
        assert service.pause() is service
        assert service.active is False
        assert service.status().status == "Inactive"
        queued = service.execute({"name": "later"})
        time.sleep(1.0)
        assert _fetch(deployed, queued.id).status == ExecutionStatus.CREATED
        assert service.resume().active is True
        assert queued.wait(timeout=90).output == "yo later"

        load = service.load(window=600)
        assert isinstance(load, spool.ServiceLoad)
        assert (load.service_id, load.queued, load.finished) == (service.id, 0, 1)
        assert load.latency_p50 is not None
        assert load.latency_p50 >= 1.0  # it waited while the service was paused
        by_function = service.executions.list(function_name="run", created_from=load.at)
        assert by_function == []  # nothing created since the load was read

        (old,) = [r.replica_id for r in service.status().runtime_status]
        service.restart_replica(old)
        _until(
            lambda: (
                [(r.replica_id != old, r.state) for r in service.status().runtime_status]
                == [(True, "ready")]
            ),
            timeout=60,
            what="a new replica in place of the restarted one",
        )
        with pytest.raises(spool.NotFound):
            service.restart_replica(old)

    await asyncio.to_thread(body)


async def test_autoscaler_decisions(deployed: Deployed) -> None:
    def body() -> None:
        decisions = _until(deployed.service.scaling, timeout=60, what="a scaling decision")
        decision = decisions[0]
        assert isinstance(decision, spool.ScalingDecision)
        assert 1 <= decision.to <= 2
        assert decision.rule
        assert decision.reason

    await asyncio.to_thread(body)


async def test_event_and_cron_triggers(deployed: Deployed, sdk: spool.Client) -> None:
    def body() -> None:
        service = deployed.service
        trigger = service.triggers.create(
            function_name="on_item",
            name="on-input",
            resource=TriggerResource.ITEM,
            actions=[TriggerAction.CREATED],
            filters=Filters(field="dir", values="/input"),
        )
        assert trigger.spec.model_dump(by_alias=True)["filter"] == {
            "$and": [{"hidden": False}, {"type": "file"}, {"dir": "/input"}]
        }
        other = {"id": "i-other", "name": "b.jpg", "dir": "/other"}
        verdicts = {v.name: v for v in deployed.project.triggers.dry_run(entity=other)}
        assert verdicts["on-input"].trigger_id == trigger.id
        assert not verdicts["on-input"].fires
        assert "dir" in verdicts["on-input"].reason
        inside = {"id": "i-in", "name": "a.jpg", "dir": "/input"}
        (verdict,) = sdk.triggers.dry_run(
            TriggerResource.ITEM, TriggerAction.CREATED, inside, project_id=deployed.project.id
        )
        assert (verdict.name, verdict.fires) == ("on-input", True)
        with pytest.raises(spool.BadRequest, match="project"):
            sdk.triggers.dry_run(entity=inside)

        sdk.events.publish(project=deployed.project, entity=other)
        event_id = deployed.project.events.publish(
            resource=TriggerResource.ITEM, action=TriggerAction.CREATED, entity=inside
        )
        assert event_id
        fired = _until(
            lambda: sdk.executions.list(trigger_id=trigger.id), timeout=60, what="a fire"
        )
        assert [e.output for e in (e.wait(timeout=90) for e in fired)] == [{"itemId": "i-in"}]
        assert trigger.id in [t.id for t in service.triggers.list()]

        trigger.active = False
        assert trigger.update().active is False
        assert sdk.triggers.get(trigger.id).active is False

        cron = service.triggers.create(
            function_name="tick",
            name="nightly",
            type=TriggerType.CRON,
            cron="0 5 * * *",
            start_at=datetime(2024, 5, 1, tzinfo=UTC),
            execution_input={"config": {"k": 1}},
        )
        assert cron.type == TriggerType.CRON
        assert cron.spec.model_dump(by_alias=True)["cron"] == "0 5 * * *"
        assert cron.spec.input == {"config": {"k": 1}}
        with pytest.raises(spool.BadRequest, match="not used by a Cron trigger"):
            service.triggers.create(trigger_type="Cron", cron="* * * * *", filters={"a": 1})
        cron.delete()
        with pytest.raises(spool.NotFound):
            sdk.triggers.get(cron.id)

    await asyncio.to_thread(body)


async def test_rate_limited_creates_are_retried(
    deployed: Deployed, platform: LocalPlatform
) -> None:
    def body() -> None:
        waits: list[float] = []

        def nap(seconds: float) -> None:
            waits.append(seconds)
            time.sleep(seconds)

        with spool.Client(platform.url, platform.token, sleep=nap) as patient:
            service = patient.services.get(service_id=deployed.service.id)
            created = [service.execute({"name": str(i)}) for i in range(3 * BURST)]
        assert len({e.id for e in created}) == 3 * BURST
        assert waits
        assert all(0 <= w <= 60 for w in waits)

        once = spool.RetryPolicy(attempts=1)
        with spool.Client(platform.url, platform.token, retry=once) as hasty:
            service = hasty.services.get(service_id=deployed.service.id)
            refusals = []
            for i in range(3 * BURST):
                try:
                    service.execute({"name": str(i)})
                except spool.RateLimited as e:
                    refusals.append(e)
        assert refusals
        assert refusals[0].retry_after is not None
        assert refusals[0].details[0].field == "projectId"

    await asyncio.to_thread(body)


async def test_delete(deployed: Deployed, sdk: spool.Client) -> None:
    def body() -> None:
        service = _own_service(deployed, "deleted")
        service.delete()
        with pytest.raises(spool.NotFound):
            sdk.services.get(service_id=service.id)

    await asyncio.to_thread(body)


CRASHING = """
class ServiceRunner:
    def __init__(self):
        raise RuntimeError("the model file is missing")

    def run(self):
        return 1
"""


async def test_notifications_of_a_crashing_service(deployed: Deployed, tmp_path: Path) -> None:
    def body() -> None:
        (tmp_path / "main.py").write_text(CRASHING)
        module = {"name": "default_module", "functions": [{"name": "run"}]}
        manifest = {"name": "sdk-crashy", "modules": [module]}
        (tmp_path / "package.json").write_bytes(orjson.dumps(manifest))
        package = deployed.project.packages.push(src_path=tmp_path)
        runtime = spool.KubernetesRuntime(
            autoscaler=spool.KubernetesRabbitmqAutoscaler(min_replicas=1, max_replicas=1)
        )
        service = package.deploy(service_name="crashy", runtime=runtime)
        kind = spool.NotificationType.INIT_ERROR
        found = _until(lambda: service.notifications(type=kind), timeout=60, what="InitError")
        assert all(n.type is kind and n.service_id == service.id for n in found)
        assert any("the model file is missing" in line for line in found[0].log_tail)
        in_project = deployed.project.notifications(type=kind, service_id=service.id, limit=1000)
        assert found[0].id in [n.id for n in in_project]
        assert found[0].id not in [n.id for n in deployed.service.notifications()]
        service.delete(force=True)

    await asyncio.to_thread(body)


async def test_users_tokens_members_and_bots(sdk: spool.Client, platform: LocalPlatform) -> None:
    def body() -> None:
        ada = sdk.users.create("sdk-ada")
        assert ada.user.name == "sdk-ada"
        assert ada.token.token.startswith("spl_")
        assert ada.token.token not in f"{ada!r} {ada.token}"
        assert ada.user.id in [u.id for u in sdk.users.list()]
        with pytest.raises(spool.Forbidden):
            sdk.users.me()  # the admin token is no user's
        with spool.Client(platform.url, ada.token.token) as as_ada:
            assert as_ada.users.me() == ada.user
            _tokens(platform, as_ada.users.tokens, lambda c: c.users.me())
            _members_and_bots(sdk, platform, as_ada.projects.create("sdk-team"), ada.user)

    await asyncio.to_thread(body)


def _tokens(
    platform: LocalPlatform, tokens: spool.Tokens, check: Callable[[spool.Client], Any]
) -> None:
    """A new token works until it is revoked (at once: the same gateway)."""
    ci = tokens.create(name="ci", expires_in=3600)
    assert ci.info.expires_at is not None
    assert ci.info.id in [t.id for t in tokens.list()]
    with spool.Client(platform.url, ci.token) as as_ci:
        assert check(as_ci)
        tokens.revoke(ci.info.id)
        with pytest.raises(spool.Unauthorized):
            check(as_ci)
    (listed,) = [t for t in tokens.list() if t.id == ci.info.id]
    assert listed.revoked_at is not None


def _members_and_bots(
    sdk: spool.Client, platform: LocalPlatform, project: spool.Project, owner: spool.User
) -> None:
    def roles() -> dict[str, spool.MemberRole]:
        return {m.member_id: m.role for m in project.members.list()}

    bob = sdk.users.create("sdk-bob").user
    assert roles() == {owner.id: spool.MemberRole.OWNER}
    assert project.members.add(bob.id, spool.MemberRole.VIEWER).member_kind == "user"
    assert project.members.update(bob.id, "developer").role is spool.MemberRole.DEVELOPER
    assert roles()[bob.id] is spool.MemberRole.DEVELOPER
    project.members.remove(bob.id)
    assert bob.id not in roles()
    with pytest.raises(spool.Conflict, match="last owner"):
        project.members.remove(owner.id)

    bot = project.bots.create("reporting", role=spool.MemberRole.VIEWER)
    assert (bot.name, roles()[bot.id]) == ("reporting", spool.MemberRole.VIEWER)
    assert [b.id for b in project.bots.list()] == [bot.id]
    _tokens(platform, bot.tokens, lambda c: c.projects.get(project_id=project.id))
    spare = project.bots.create("spare")
    project.bots.delete(spare.id)
    bot.delete()
    assert project.bots.list() == []
    assert set(roles()) == {owner.id}


async def test_secrets_are_metadata_only(sdk: spool.Client) -> None:
    def body() -> None:
        project = sdk.projects.create("sdk-secrets")
        created = project.secrets.create("API_KEY", "s3cret-value")
        assert (created.name, created.project_id) == ("API_KEY", project.id)
        assert "s3cret" not in orjson.dumps(created.to_wire()).decode()
        with pytest.raises(spool.Conflict, match="PUT replaces"):
            project.secrets.create("API_KEY", "again")
        with pytest.raises(spool.BadRequest):
            project.secrets.create("PATH", "/nope")
        assert [s.name for s in project.secrets.list()] == ["API_KEY"]
        replaced = project.secrets.update("API_KEY", "n3w-value")
        assert replaced.updated_at >= created.updated_at
        assert project.secrets.get("API_KEY").updated_at == replaced.updated_at
        project.secrets.delete("API_KEY")
        with pytest.raises(spool.NotFound):
            project.secrets.get("API_KEY")
        with pytest.raises(spool.NotFound):
            project.secrets.update("API_KEY", "gone")

    await asyncio.to_thread(body)
