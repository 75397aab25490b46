"""The SDK's pure decisions: errors from API answers, retries, long-poll and log paging,
execution inputs, trigger specs, event bodies, deploy bodies, merge patches, and what a push
zips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

import spool
from spool.client import RetryPolicy, retry_wait
from spool.codebase import manifest, read_sources, skipped, zip_sources
from spool.entity import merge_diff
from spool.errors import from_response
from spool.event import event_body, project_of
from spool.execution import input_json, poll_seconds, resource_input
from spool.logs import Step, next_step
from spool.package import deploy_body
from spool.trigger import trigger_spec
from spool_common.archive import read_archive
from spool_common.models import Package, PackageModule, TriggerAction, TriggerResource, TriggerType


def _body(message: str, *details: tuple[str, str], code: str = "invalid_request") -> bytes:
    return orjson.dumps(
        {
            "error": code,
            "message": message,
            "details": [{"field": f, "reason": r} for f, r in details],
        }
    )


@pytest.mark.parametrize(
    ("status", "body", "kind", "text"),
    [
        (
            400,
            _body("runtime.concurrency: must be >= 1", ("runtime.concurrency", "must be >= 1")),
            spool.BadRequest,
            "runtime.concurrency: must be >= 1",
        ),
        (
            409,
            _body("a project named 'x' exists", ("name", "already taken"), code="conflict"),
            spool.Conflict,
            "a project named 'x' exists (name: already taken)",
        ),
        (
            404,
            _body("service 's' not found", ("serviceId", "no such service")),
            spool.NotFound,
            "serviceId: no such service",
        ),
        (401, _body("missing bearer token"), spool.Unauthorized, "missing bearer token"),
        (403, _body("forbidden"), spool.Forbidden, "forbidden"),
        (413, _body("codebase is larger than 5 bytes"), spool.BadRequest, "larger"),
        (502, b"<html>Bad gateway</html>", spool.ServerError, "GET /x answered HTTP 502: <html>"),
        (418, b"", spool.SpoolError, "answered HTTP 418: no body"),
    ],
)
def test_error_answers_become_typed_errors_naming_the_field(
    status: int, body: bytes, kind: type[spool.SpoolError], text: str
) -> None:
    error = from_response(status, body, None, "GET /x")
    assert type(error) is kind
    assert error.status == status
    assert text in str(error)


def test_details_and_retry_after_are_kept() -> None:
    body = _body("rate limit", ("projectId", "too many executions"), code="rate_limited")
    error = from_response(429, body, "3")
    assert isinstance(error, spool.RateLimited)
    assert error.retry_after == 3.0
    assert error.code == "rate_limited"
    assert error.details == (spool.Detail("projectId", "too many executions"),)


@pytest.mark.parametrize(
    ("status", "retry_after", "attempt", "expected"),
    [
        (429, "2", 1, 2.0),
        (503, "0", 3, 0.0),
        (503, "2", 4, None),  # the last attempt
        (429, None, 1, None),  # no Retry-After: not known to be safe
        (429, "soon", 1, None),
        (429, "61", 1, None),  # longer than max_wait: the caller decides
        (500, "1", 1, None),
        (400, "1", 1, None),
    ],
)
def test_retry_only_refusals_that_say_when(
    status: int, retry_after: str | None, attempt: int, expected: float | None
) -> None:
    assert (
        retry_wait(status, retry_after, attempt, RetryPolicy(attempts=4, max_wait=60)) == expected
    )


@pytest.mark.parametrize(
    ("remaining", "expected"), [(None, 60.0), (120.0, 60.0), (2.5, 2.5), (0.0, None), (-1.0, None)]
)
def test_long_poll_seconds(remaining: float | None, expected: float | None) -> None:
    assert poll_seconds(remaining) == expected


@pytest.mark.parametrize(
    ("lines", "follow", "ended", "done", "quiet", "expected"),
    [
        (1000, False, False, False, 0, Step.MORE),
        (1000, True, True, True, 9, Step.MORE),
        (3, False, False, False, 0, Step.STOP),
        (0, True, False, False, 0, Step.WAIT),
        (0, True, True, True, 0, Step.STOP),
        (0, True, True, False, 1, Step.WAIT),  # ended, but its last lines may still come
        (0, True, True, False, 5, Step.STOP),  # nothing since: a killed replica writes no end
        (0, True, False, True, 9, Step.WAIT),  # an earlier attempt's end, while it reruns
    ],
)
def test_log_paging(
    lines: int, follow: bool, ended: bool, done: bool, quiet: float, expected: Step
) -> None:
    assert next_step(lines, 1000, follow, ended, done, quiet) is expected


def test_execution_inputs_in_dtlpys_forms() -> None:
    io = spool.FunctionIO(name="item", type=spool.PackageInputType.ITEM, value="i1")
    other = spool.FunctionIO(name="n", type=spool.PackageInputType.NUMBER, value=3)
    assert input_json(None) == {}
    assert input_json({"name": "world"}) == {"name": "world"}
    assert input_json(io) == {"item": "i1"}
    assert input_json([io, other]) == {"item": "i1", "n": 3}
    assert resource_input("i1", "d1", None) == {"item": {"dataset_id": "d1", "item_id": "i1"}}
    assert resource_input(None, "d1", None) == {"dataset": {"dataset_id": "d1"}}
    assert resource_input("i", "d", "a") == {
        "annotation": {"dataset_id": "d", "item_id": "i", "annotation_id": "a"}
    }
    assert resource_input(None, None, None) == {}


OPERATION = {"type": "function", "serviceId": "s", "functionName": "run"}


def test_trigger_specs() -> None:
    event = trigger_spec(
        TriggerType.EVENT,
        OPERATION,
        filters=spool.Filters(field="dir", values="/in"),
        actions="Created",
        resource=None,
        inputs=None,
    )
    assert event == {
        "operation": OPERATION,
        "actions": ["Created"],
        "filter": {"$and": [{"hidden": False}, {"type": "file"}, {"dir": "/in"}]},
    }
    cron = trigger_spec(TriggerType.CRON, OPERATION, cron="0 5 * * *", inputs={"k": 1})
    assert cron == {"operation": OPERATION, "cron": "0 5 * * *", "input": {"k": 1}}


def test_a_trigger_argument_of_the_other_kind_is_refused() -> None:
    with pytest.raises(spool.BadRequest) as caught:
        trigger_spec(TriggerType.CRON, OPERATION, cron="* * * * *", filters={"a": 1})
    assert [d.field for d in caught.value.details] == ["filters"]
    with pytest.raises(spool.BadRequest, match="cron"):
        trigger_spec(TriggerType.EVENT, OPERATION, cron="* * * * *")


def _package(*modules: str, name: str = "my_pkg") -> Package:
    return Package(
        id="k1",
        name=name,
        version="1.0.2",
        project_id="p1",
        modules=[PackageModule(name=m) for m in modules],
    )


def test_deploy_body_sends_only_what_was_given() -> None:
    body = deploy_body(_package("detector"), None, {"executionTimeout": 60})
    assert body == {
        "name": "my-pkg",
        "projectId": "p1",
        "packageId": "k1",
        "packageRevision": "1.0.2",
        "moduleName": "detector",
        "executionTimeout": 60,
    }
    runtime = spool.KubernetesRuntime(concurrency=3)
    body = deploy_body(_package("a", "b"), "svc", {"runtime": runtime, "packageRevision": "1.0.0"})
    assert "moduleName" not in body  # several modules: the gateway's default_module
    assert body["packageRevision"] == "1.0.0"
    assert body["runtime"]["concurrency"] == 3


MergeCase = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        ({"a": 1, "r": {"x": 1}}, {"a": 1, "r": {"x": 1}}, {}),
        ({"r": {"x": 1, "y": 2}}, {"r": {"x": 1}}, {"r": {"y": None}}),
        ({"r": {"e": {"K": "1"}}}, {"r": {"e": {"K": "2"}}}, {"r": {"e": {"K": "2"}}}),
        ({"o": {"x": 1, "y": 2}}, {"o": {"x": 1}}, {"o": {"x": 1}}),  # not merged: whole
        ({"r": None}, {"r": {"x": 1}}, {"r": {"x": 1}}),
    ],
)
def test_merge_diff(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]) -> None:
    assert merge_diff(old, new, lambda path: path.startswith("r")) == patch


@pytest.mark.parametrize(
    ("path", "left_out"),
    [
        ("main.py", False),
        ("pkg/mod.py", False),
        (".gitignore", False),
        (".git/config", True),
        ("pkg/__pycache__/mod.cpython-311.pyc", True),
        (".venv/lib/site.py", True),
        ("mod.pyc", True),
    ],
)
def test_what_a_push_leaves_out(path: str, left_out: bool) -> None:
    assert skipped(path) is left_out


def test_read_sources_zips_the_code_and_nothing_else(tmp_path: Path) -> None:
    for path in ("main.py", "lib/util.py", ".git/HEAD", "lib/__pycache__/u.pyc", ".venv/x.py"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text("x = 1\n")
    (tmp_path / "package.json").write_text('{"name": "demo"}')
    files = read_sources(tmp_path)
    assert sorted(files) == ["lib/util.py", "main.py", "package.json"]
    assert manifest(files) == {"name": "demo"}
    data = zip_sources(files)
    assert data == zip_sources(read_sources(tmp_path))  # the same sources, the same bytes
    assert sorted(read_archive(data).files) == sorted(files)


def test_bad_sources_are_refused(tmp_path: Path) -> None:
    with pytest.raises(spool.BadRequest, match="not a directory"):
        read_sources(tmp_path / "missing")
    with pytest.raises(spool.BadRequest, match="no files"):
        read_sources(tmp_path)
    with pytest.raises(spool.BadRequest, match=r"package\.json is not valid JSON"):
        manifest({"package.json": b"{"})


@pytest.mark.parametrize(
    ("entity", "entity_id", "body"),
    [
        (None, None, {"resource": "Item", "action": "Created", "entity": {}}),
        ({"id": "i-1"}, None, {"resource": "Item", "action": "Created", "entity": {"id": "i-1"}}),
        (
            {"name": "a.jpg"},
            "i-2",
            {
                "resource": "Item",
                "action": "Created",
                "entity": {"name": "a.jpg"},
                "entityId": "i-2",
            },
        ),
    ],
)
def test_event_body(entity: dict[str, Any] | None, entity_id: str | None, body: Any) -> None:
    found = event_body(TriggerResource.ITEM, TriggerAction.CREATED, entity, entity_id)
    assert orjson.loads(orjson.dumps(found)) == body


@pytest.mark.parametrize(
    ("project_id", "project", "bound", "chosen"),
    [
        ("p-arg", "p-obj", "p-bound", "p-arg"),
        (None, "p-obj", "p-bound", "p-obj"),
        (None, None, "p-bound", "p-bound"),
    ],
)
def test_the_project_of_a_call(
    project_id: str | None, project: str | None, bound: str | None, chosen: str
) -> None:
    given = spool.Project(id=project, name="x") if project else None
    assert project_of(project_id, given, bound) == chosen


def test_a_call_without_a_project_is_refused() -> None:
    with pytest.raises(spool.BadRequest, match="project_id= or project=") as refused:
        project_of(None, None, None)
    assert refused.value.details[0].field == "projectId"


def test_a_new_token_stays_out_of_reprs() -> None:
    info = {"id": "t-1", "kind": "user", "subject": "u-1", "createdAt": "2024-05-01T00:00:00Z"}
    new = spool.NewToken.model_validate({"token": "spl_s3cret", "info": info})
    user = {"id": "u-1", "name": "ada", "createdAt": "2024-05-01T00:00:00Z"}
    created = spool.NewUser.model_validate({"user": user, "token": new.to_wire()})
    assert "spl_s3cret" not in f"{new!r} {new} {created!r} {created}"
    assert created.token.token == "spl_s3cret"
