"""Table tests for the deployment rules: a deploy request's defaults and checks, revision
resolution, init params, env files, updates as merges, and the status a user sees."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spool_common.errors import ValidationFailure
from spool_common.models import (
    AutoscalerType,
    FunctionIO,
    InstanceType,
    KubernetesRuntime,
    OnResetAction,
    Package,
    PackageInputType,
    PackageModule,
    RabbitmqAutoscaler,
    RpsAutoscaler,
    Service,
)
from spool_gateway.deployment_rules import (
    ERROR_WINDOW,
    SERVER_OWNED,
    ServiceSpec,
    ServiceStatus,
    build_service,
    checked_module_inputs,
    merged_env,
    parse_spec,
    patched_spec,
    resolve_revision,
    service_status,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
EARLIER = NOW - timedelta(days=3)
BASE: dict[str, Any] = {"name": "my-svc", "projectId": "P", "packageId": "K"}

# The "Runtime JSON example" of the dtlpy reference (section 2.3): what `package.deploy` sends.
DTLPY_SERVICE: dict[str, Any] = {
    "name": "my-svc",
    "projectId": "P",
    "packageId": "K",
    "initParams": {"model_name": "resnet50"},
    "botUserName": "bot@example.com",
    "versions": None,
    "packageRevision": "1.0.3",
    "driverId": None,
    "active": True,
    "moduleName": "default_module",
    "executionTimeout": 10800,
    "drainTime": 600,
    "onReset": "failed",
    "maxAttempts": 3,
    "runExecutionAsProcess": False,
    "secrets": ["integrationId"],
    "runtime": {
        "podType": "regular-s",
        "numReplicas": 1,
        "concurrency": 10,
        "autoscaler": {
            "type": "rabbitmq",
            "minReplicas": 1,
            "maxReplicas": 20,
            "queueLength": 20,
            "cooldownPeriod": 300,
            "pollingInterval": 10,
        },
    },
}

INIT_INPUTS = [
    FunctionIO(type=PackageInputType.STRING, name="model_name", mandatory=True),
    FunctionIO(type=PackageInputType.INTEGER, name="batch", value=8),
    FunctionIO(type=PackageInputType.BOOLEAN, name="verbose"),
]
PACKAGE = Package(
    id="K",
    name="detector",
    version="1.0.3",
    project_id="P",
    modules=[PackageModule(init_inputs=INIT_INPUTS), PackageModule(name="trainer")],
)
VERSIONS = ["1.0.0", "1.0.1", "1.0.2", "1.0.3"]


def refusal(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The (field, reason) pairs `parse_spec` refuses `body` with."""
    with pytest.raises(ValidationFailure) as caught:
        parse_spec(body)
    return [(e.field, e.reason) for e in caught.value.errors]


def fields_of(failure: pytest.ExceptionInfo[ValidationFailure]) -> list[str]:
    return [e.field for e in failure.value.errors]


def spec(**extra: Any) -> ServiceSpec:
    return parse_spec({**BASE, "initParams": {"model_name": "resnet50"}, **extra})


def deployed(**extra: Any) -> Service:
    """A stored service as a first deploy of `spec(**extra)` makes it, by alice, EARLIER."""
    return build_service(
        spec(**extra),
        PACKAGE,
        "1.0.3",
        service_id="svc-1",
        who="alice",
        now=EARLIER,
        previous=None,
    )


# --- parse_spec: defaults ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("attribute", "default"),
    [
        pytest.param("execution_timeout", 3600, id="executionTimeout"),
        pytest.param("drain_time", 600, id="drainTime"),
        pytest.param("on_reset", OnResetAction.FAILED, id="onReset"),
        pytest.param("package_revision", "latest", id="packageRevision"),
        pytest.param("module_name", "default_module", id="moduleName"),
        pytest.param("max_attempts", 3, id="maxAttempts"),
        pytest.param("run_execution_as_process", False, id="runExecutionAsProcess"),
        pytest.param("active", True, id="active"),
        pytest.param("init_params", {}, id="initParams"),
        pytest.param("secrets", [], id="secrets"),
        pytest.param("env_file", None, id="envFile"),
    ],
)
def test_service_defaults_follow_dtlpy(attribute: str, default: Any) -> None:
    assert getattr(parse_spec(BASE), attribute) == default


@pytest.mark.parametrize(
    ("attribute", "default"),
    [
        pytest.param("pod_type", InstanceType.REGULAR_S, id="podType"),
        pytest.param("num_replicas", 1, id="numReplicas"),
        pytest.param("concurrency", 10, id="concurrency"),
        pytest.param("autoscaler", None, id="autoscaler"),
        pytest.param("env", {}, id="env"),
    ],
)
def test_runtime_defaults_follow_dtlpy(attribute: str, default: Any) -> None:
    assert getattr(parse_spec(BASE).runtime, attribute) == default


def test_defaults_appear_on_the_wire_in_camel_case() -> None:
    wire = parse_spec(BASE).to_wire()
    assert {k: wire[k] for k in ("executionTimeout", "drainTime", "onReset", "maxAttempts")} == {
        "executionTimeout": 3600,
        "drainTime": 600,
        "onReset": "failed",
        "maxAttempts": 3,
    }
    assert wire["runtime"]["podType"] == "regular-s"
    assert wire["runtime"]["autoscaler"] is None


def test_a_dtlpy_service_json_parses_with_every_value_kept() -> None:
    parsed = parse_spec(DTLPY_SERVICE)
    assert (parsed.name, parsed.project_id, parsed.package_id) == ("my-svc", "P", "K")
    assert parsed.package_revision == "1.0.3"
    assert parsed.init_params == {"model_name": "resnet50"}
    assert parsed.bot_user_name == "bot@example.com"
    assert parsed.execution_timeout == 10800
    assert parsed.max_attempts == 3
    assert parsed.secrets == ["integrationId"]
    assert parsed.runtime.pod_type is InstanceType.REGULAR_S
    assert parsed.runtime.autoscaler == RabbitmqAutoscaler(
        min_replicas=1, max_replicas=20, queue_length=20, cooldown_period=300, polling_interval=10
    )


@pytest.mark.parametrize(
    ("autoscaler", "expected"),
    [
        pytest.param(
            {"type": "rabbitmq", "minReplicas": 0, "maxReplicas": 5, "queueLength": 10},
            RabbitmqAutoscaler(min_replicas=0, max_replicas=5, queue_length=10),
            id="rabbitmq-scale-to-zero",
        ),
        pytest.param(
            {"type": "rps", "minReplicas": 1, "maxReplicas": 3, "threshold": 50},
            RpsAutoscaler(min_replicas=1, max_replicas=3, threshold=50),
            id="rps",
        ),
        pytest.param(
            {"type": "rabbitmq", "minReplicas": 2, "maxReplicas": 2},
            RabbitmqAutoscaler(min_replicas=2, max_replicas=2),
            id="min-equals-max",
        ),
    ],
)
def test_autoscalers_parse(autoscaler: dict[str, Any], expected: Any) -> None:
    parsed = parse_spec({**BASE, "runtime": {"autoscaler": autoscaler}})
    assert parsed.runtime.autoscaler == expected
    assert parsed.runtime.autoscaler is not None
    assert parsed.runtime.autoscaler.type is AutoscalerType(autoscaler["type"])


@pytest.mark.parametrize(
    "name",
    ["a", "my-svc", "svc2", "0day", "a" * 63, "a-b-c"],
)
def test_good_service_names(name: str) -> None:
    assert parse_spec({**BASE, "name": name}).name == name


# --- parse_spec: refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        pytest.param({"runtime": {"podType": "gpu-k80-s"}}, "runtime.podType", id="removed-k80"),
        pytest.param({"runtime": {"podType": "huge"}}, "runtime.podType", id="unknown-pod"),
        pytest.param({"runtime": {"concurrency": 0}}, "runtime.concurrency", id="concurrency-0"),
        pytest.param({"runtime": {"concurrency": -1}}, "runtime.concurrency", id="concurrency-neg"),
        pytest.param({"runtime": {"numReplicas": -1}}, "runtime.numReplicas", id="replicas-neg"),
        pytest.param({"executionTimeout": 0}, "executionTimeout", id="timeout-0"),
        pytest.param({"executionTimeout": 2_500_001}, "executionTimeout", id="timeout-too-long"),
        pytest.param({"drainTime": -1}, "drainTime", id="drain-negative"),
        pytest.param({"onReset": "sometimes"}, "onReset", id="on-reset"),
        pytest.param({"maxAttempts": 0}, "maxAttempts", id="max-attempts-0"),
        pytest.param({"name": "MySvc"}, "name", id="name-capitals"),
        pytest.param({"name": "my svc"}, "name", id="name-space"),
        pytest.param({"name": "my-svc-"}, "name", id="name-trailing-dash"),
        pytest.param({"name": "-my-svc"}, "name", id="name-leading-dash"),
        pytest.param({"name": "my_svc"}, "name", id="name-underscore"),
        pytest.param({"name": "a" * 64}, "name", id="name-64-chars"),
        pytest.param({"name": ""}, "name", id="name-empty"),
        pytest.param(
            {"runtime": {"resources": {"limits": {"memory": "1Gb"}}}},
            "runtime.resources.limits.memory",
            id="memory-unit",
        ),
        pytest.param(
            {"runtime": {"resources": {"requests": {"cpu": "lots"}}}},
            "runtime.resources.requests.cpu",
            id="cpu-quantity",
        ),
        pytest.param(
            {
                "runtime": {
                    "volumes": [{"name": "v", "type": "pvc", "source": "c", "mountPath": "d"}]
                }
            },
            "runtime.volumes[0].mountPath",
            id="relative-mount-path",
        ),
        pytest.param(
            {"runtime": {"preemptionMode": "sometimes"}},
            "runtime.preemptionMode",
            id="preemption-mode",
        ),
        pytest.param(
            {"runtime": {"stateThresholds": {"running": "5 parsecs"}}},
            "runtime.stateThresholds.running",
            id="state-threshold",
        ),
    ],
)
def test_bad_input_names_the_field_the_user_sent(extra: dict[str, Any], field: str) -> None:
    assert [f for f, _ in refusal({**BASE, **extra})] == [field]


@pytest.mark.parametrize("missing", ["name", "projectId", "packageId"])
def test_required_fields(missing: str) -> None:
    body = {k: v for k, v in BASE.items() if k != missing}
    assert [f for f, _ in refusal(body)] == [missing]


def test_min_replicas_above_max_names_both() -> None:
    autoscaler = {"type": "rabbitmq", "minReplicas": 5, "maxReplicas": 2}
    [(field, reason)] = refusal({**BASE, "runtime": {"autoscaler": autoscaler}})
    assert field == "runtime.autoscaler"
    assert "minReplicas (5)" in reason
    assert "maxReplicas (2)" in reason


@pytest.mark.parametrize(
    ("autoscaler", "quoted"),
    [
        pytest.param({"minReplicas": 0, "maxReplicas": 2}, "type", id="no-type"),
        pytest.param({"type": "cpu", "minReplicas": 0, "maxReplicas": 2}, "cpu", id="cpu"),
        pytest.param({"type": "keda"}, "keda", id="unknown"),
    ],
)
def test_autoscaler_type_is_required_and_never_cpu(autoscaler: dict[str, Any], quoted: str) -> None:
    # dtlpy raises KeyError on a missing type and NotImplementedError on "cpu" when it reads a
    # service back, so neither may be stored.
    [(field, reason)] = refusal({**BASE, "runtime": {"autoscaler": autoscaler}})
    assert field == "runtime.autoscaler"
    assert quoted in reason


def test_requests_above_limits_are_refused() -> None:
    resources = {"requests": {"memory": "2Gi"}, "limits": {"memory": "1Gi"}}
    [(field, reason)] = refusal({**BASE, "runtime": {"resources": resources}})
    assert field == "runtime.resources"
    assert reason == "requests.memory is larger than limits.memory"


@pytest.mark.parametrize(
    ("env", "errors"),
    [
        pytest.param(
            {"GOOD": "x", "BAD": 1},
            [("runtime.env.BAD", 'must be a string; quote it: "1"')],
            id="number",
        ),
        pytest.param(
            {"BAD": True}, [("runtime.env.BAD", 'must be a string; quote it: "true"')], id="bool"
        ),
        pytest.param(
            {"BAD": None}, [("runtime.env.BAD", 'must be a string; quote it: ""')], id="null"
        ),
        pytest.param(
            {"SPOOL_BAD": "x"},
            [("runtime.env.SPOOL_BAD", "names starting with SPOOL_ are reserved for Spool")],
            id="reserved-prefix",
        ),
        pytest.param(
            {"A": 1, "SPOOL_B": "x"},
            [
                ("runtime.env.A", 'must be a string; quote it: "1"'),
                ("runtime.env.SPOOL_B", "names starting with SPOOL_ are reserved for Spool"),
            ],
            id="two-bad",
        ),
    ],
)
def test_bad_env_names_the_variable(env: dict[str, Any], errors: list[tuple[str, str]]) -> None:
    assert refusal({**BASE, "runtime": {"env": env}}) == errors


@pytest.mark.parametrize("name", ["1BAD", "MY-VAR", "A B", ""])
def test_bad_env_names_are_refused_on_the_name(name: str) -> None:
    [(field, reason)] = refusal({**BASE, "runtime": {"env": {name: "x"}}})
    assert field == f"runtime.env.{name}"
    assert "not a valid variable name" in reason


def test_a_nul_in_an_env_value_names_the_variable() -> None:
    [(field, _)] = refusal({**BASE, "runtime": {"env": {"GOOD": "x", "BAD": "a\x00b"}}})
    assert field == "runtime.env.BAD"


def _volume(name: str, path: str) -> dict[str, str]:
    return {"name": name, "type": "pvc", "source": "claim", "mountPath": path}


@pytest.mark.parametrize(
    ("volumes", "what"),
    [
        pytest.param([_volume("data", "/a"), _volume("data", "/b")], "name", id="same-name"),
        pytest.param([_volume("a", "/data"), _volume("b", "/data")], "mountPath", id="same-path"),
    ],
)
def test_two_volumes_may_not_share_a_name_or_mount_path(
    volumes: list[dict[str, str]], what: str
) -> None:
    assert refusal({**BASE, "runtime": {"volumes": volumes}}) == [
        ("runtime.volumes", f"two volumes share the same {what}")
    ]


def test_every_problem_is_reported_at_once() -> None:
    body = {**BASE, "executionTimeout": 0, "runtime": {"concurrency": 0}}
    assert sorted(f for f, _ in refusal(body)) == ["executionTimeout", "runtime.concurrency"]


# --- resolve_revision ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "revision"),
    [
        pytest.param("latest", "1.0.3", id="latest"),
        pytest.param("", "1.0.3", id="empty"),
        pytest.param("1.0.1", "1.0.1", id="older"),
        pytest.param("1.0.0", "1.0.0", id="first"),
        pytest.param("1.0.3", "1.0.3", id="current-by-number"),
    ],
)
def test_resolve_revision(requested: str, revision: str) -> None:
    assert resolve_revision(requested, PACKAGE, VERSIONS) == revision


@pytest.mark.parametrize("requested", ["1.0.9", "2.0.0", "LATEST", "1.0"])
def test_unknown_revision_lists_the_known_ones(requested: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        resolve_revision(requested, PACKAGE, VERSIONS)
    [error] = caught.value.errors
    assert error.field == "packageRevision"
    assert f"'{requested}'" in error.reason
    assert "1.0.0, 1.0.1, 1.0.2, 1.0.3" in error.reason


# --- checked_module_inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("init_params", "module", "checked"),
    [
        pytest.param(
            {"model_name": "resnet50"},
            "default_module",
            {"model_name": "resnet50", "batch": 8},
            id="default-value-filled",
        ),
        pytest.param(
            {"model_name": "resnet50", "batch": 32, "verbose": True},
            "default_module",
            {"model_name": "resnet50", "batch": 32, "verbose": True},
            id="all-given",
        ),
        pytest.param({}, "trainer", {}, id="module-without-init-inputs"),
    ],
)
def test_init_params_are_checked_and_completed(
    init_params: dict[str, Any], module: str, checked: dict[str, Any]
) -> None:
    assert checked_module_inputs(spec(initParams=init_params, moduleName=module), PACKAGE) == (
        checked
    )


def test_unknown_module_lists_the_modules() -> None:
    with pytest.raises(ValidationFailure) as caught:
        checked_module_inputs(spec(moduleName="nope"), PACKAGE)
    [error] = caught.value.errors
    assert error.field == "moduleName"
    assert "'nope'" in error.reason
    assert "default_module, trainer" in error.reason


@pytest.mark.parametrize(
    ("init_params", "fields"),
    [
        pytest.param({}, ["initParams.model_name"], id="missing-required"),
        pytest.param({"batch": 4}, ["initParams.model_name"], id="missing-required-other-given"),
        pytest.param(
            {"model_name": "r", "threshold": 0.5}, ["initParams.threshold"], id="unknown-key"
        ),
        pytest.param({"model_name": 3}, ["initParams.model_name"], id="wrong-type-string"),
        pytest.param({"model_name": "r", "batch": "8"}, ["initParams.batch"], id="wrong-type-int"),
        pytest.param(
            {"model_name": "r", "verbose": "yes"}, ["initParams.verbose"], id="wrong-type-bool"
        ),
        pytest.param({"model_name": None}, ["initParams.model_name"], id="required-null"),
    ],
)
def test_bad_init_params_name_the_param(init_params: dict[str, Any], fields: list[str]) -> None:
    with pytest.raises(ValidationFailure) as caught:
        checked_module_inputs(spec(initParams=init_params), PACKAGE)
    assert fields_of(caught) == fields


# --- merged_env ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "env_file", "merged"),
    [
        pytest.param({}, None, {}, id="nothing"),
        pytest.param({"A": "1"}, None, {"A": "1"}, id="runtime-only"),
        pytest.param({}, "A=1\n", {"A": "1"}, id="file-only"),
        pytest.param(
            {"A": "1"},
            "# comment\nexport B='two'\nC=\"x y\"\n",
            {"A": "1", "B": "two", "C": "x y"},
            id="both",
        ),
        pytest.param({"A": "1"}, "", {"A": "1"}, id="empty-file"),
    ],
)
def test_env_file_is_merged(
    env: dict[str, str], env_file: str | None, merged: dict[str, str]
) -> None:
    assert merged_env(spec(runtime={"env": env}, envFile=env_file)) == merged


@pytest.mark.parametrize(
    ("env", "env_file", "quoted"),
    [
        pytest.param({}, "A=1\nB\n", "line 2", id="no-equals"),
        pytest.param({}, "A=1\n\nA=2\n", "line 3", id="set-twice-in-file"),
        pytest.param({}, 'A="open\n', "line 1", id="unclosed-quote"),
        pytest.param({}, "1A=x\n", "line 1", id="bad-name"),
        pytest.param({"A": "1"}, "B=2\nA=3\n", "A", id="also-in-runtime-env"),
    ],
)
def test_bad_env_file_is_refused_on_env_file(
    env: dict[str, str], env_file: str, quoted: str
) -> None:
    with pytest.raises(ValidationFailure) as caught:
        merged_env(spec(runtime={"env": env}, envFile=env_file))
    [error] = caught.value.errors
    assert error.field == "envFile"
    assert quoted in error.reason


# --- build_service -------------------------------------------------------------------------


def test_a_first_deploy_is_created_by_the_caller() -> None:
    service = deployed()
    assert (service.creator, service.created_at) == ("alice", EARLIER)
    assert (service.updated_by, service.updated_at) == ("alice", EARLIER)


def test_a_redeploy_keeps_creator_and_creation_time() -> None:
    service = build_service(
        spec(), PACKAGE, "1.0.3", service_id="svc-1", who="bob", now=NOW, previous=deployed()
    )
    assert (service.creator, service.created_at) == ("alice", EARLIER)
    assert (service.updated_by, service.updated_at) == ("bob", NOW)


@pytest.mark.parametrize("requested", ["latest", "1.0.1", ""])
def test_the_service_pins_the_resolved_revision(requested: str) -> None:
    service = build_service(
        spec(packageRevision=requested),
        PACKAGE,
        "1.0.2",
        service_id="svc-1",
        who="alice",
        now=NOW,
        previous=None,
    )
    assert service.package_revision == "1.0.2"


def test_the_service_carries_checked_init_params_and_merged_env() -> None:
    service = deployed(runtime={"env": {"A": "1"}, "concurrency": 4}, envFile="B=2\n")
    assert service.init_params == {"model_name": "resnet50", "batch": 8}
    assert service.runtime.env == {"A": "1", "B": "2"}
    assert service.runtime.concurrency == 4
    assert "envFile" not in service.to_wire()
    assert "env_file" not in service.model_dump()


def test_the_service_keeps_the_request_fields() -> None:
    service = deployed(executionTimeout=120, onReset="rerun", active=False, secrets=["s1"])
    assert (service.id, service.name, service.project_id) == ("svc-1", "my-svc", "P")
    assert service.execution_timeout == 120
    assert service.on_reset is OnResetAction.RERUN
    assert service.active is False
    assert service.secrets == ["s1"]


def test_build_service_refuses_bad_init_params() -> None:
    with pytest.raises(ValidationFailure) as caught:
        build_service(
            spec(initParams={}), PACKAGE, "1.0.3", service_id="s", who="a", now=NOW, previous=None
        )
    assert fields_of(caught) == ["initParams.model_name"]


# --- patched_spec --------------------------------------------------------------------------

CURRENT = deployed(
    executionTimeout=7200,
    runtime={
        "podType": "highmem-m",
        "concurrency": 4,
        "env": {"A": "1"},
        "autoscaler": {"type": "rabbitmq", "minReplicas": 0, "maxReplicas": 3},
    },
).model_copy(
    update={"version": "7", "url": "http://gate/services/svc-1", "crashloop": {"count": 0}}
)


@pytest.mark.parametrize(
    ("patch", "check"),
    [
        pytest.param(
            {"executionTimeout": 60},
            lambda s: (s.execution_timeout, s.runtime.pod_type) == (60, InstanceType.HIGHMEM_M),
            id="top-level-field",
        ),
        pytest.param(
            {"runtime": {"concurrency": 2}},
            lambda s: (s.runtime.concurrency, s.execution_timeout) == (2, 7200),
            id="runtime",
        ),
        pytest.param({"active": False}, lambda s: s.active is False, id="pause"),
        pytest.param(
            {"packageRevision": "1.0.1"}, lambda s: s.package_revision == "1.0.1", id="revision"
        ),
        pytest.param(
            {"initParams": {"model_name": "vit"}},
            lambda s: s.init_params == {"model_name": "vit"},
            id="init-params",
        ),
        pytest.param({}, lambda s: s.runtime.env == {"A": "1"}, id="empty-patch-keeps-all"),
    ],
)
def test_a_patch_is_laid_over_the_current_service(
    patch: dict[str, Any], check: Callable[[ServiceSpec], bool]
) -> None:
    patched = patched_spec(CURRENT, patch)
    assert check(patched)
    assert (patched.name, patched.project_id, patched.package_id) == ("my-svc", "P", "K")


@pytest.mark.parametrize(
    ("runtime", "check"),
    [
        pytest.param(
            {"concurrency": 2},
            lambda r: (r.concurrency, r.pod_type, r.env) == (2, InstanceType.HIGHMEM_M, {"A": "1"}),
            id="one-key-keeps-the-rest",
        ),
        pytest.param(
            {"env": {"B": "2"}}, lambda r: r.env == {"A": "1", "B": "2"}, id="env-adds-a-variable"
        ),
        pytest.param({"env": {"A": "9"}}, lambda r: r.env == {"A": "9"}, id="env-replaces-value"),
        pytest.param({"env": {"A": None}}, lambda r: r.env == {}, id="null-removes-a-variable"),
        pytest.param(
            {"autoscaler": {"maxReplicas": 7}},
            lambda r: r.autoscaler == RabbitmqAutoscaler(min_replicas=0, max_replicas=7),
            id="autoscaler-key",
        ),
        pytest.param({"autoscaler": None}, lambda r: r.autoscaler is None, id="null-removes"),
    ],
)
def test_a_runtime_patch_is_merged_into_the_current_runtime(
    runtime: dict[str, Any], check: Callable[[KubernetesRuntime], bool]
) -> None:
    assert check(patched_spec(CURRENT, {"runtime": runtime}).runtime)


@pytest.mark.parametrize("key", sorted(SERVER_OWNED))
def test_server_owned_fields_repeating_the_current_value_are_ignored(key: str) -> None:
    wire = CURRENT.to_wire()
    assert wire[key] is not None
    patched = patched_spec(CURRENT, {key: wire[key], "drainTime": 5})
    assert patched.drain_time == 5


@pytest.mark.parametrize("key", sorted(SERVER_OWNED))
def test_server_owned_fields_cannot_be_changed(key: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        patched_spec(CURRENT, {key: "2030-01-01T00:00:00Z", "drainTime": 5})
    [error] = caught.value.errors
    assert error.field == key
    assert error.reason == "cannot be changed by an update"


def test_a_dtlpy_full_update_body_is_accepted() -> None:
    """dtlpy's `service.update()` sends the whole service back, server fields included."""
    body = {**CURRENT.to_wire(), "runtime": {**CURRENT.to_wire()["runtime"], "concurrency": 8}}
    assert patched_spec(CURRENT, body).runtime.concurrency == 8


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        pytest.param({"runtime": {"concurrency": 0}}, "runtime.concurrency", id="concurrency-0"),
        pytest.param({"executionTimeout": 0}, "executionTimeout", id="timeout-0"),
        pytest.param({"onReset": "sometimes"}, "onReset", id="on-reset"),
        pytest.param(
            {"runtime": {"autoscaler": {"type": "cpu"}}}, "runtime.autoscaler", id="cpu-scaler"
        ),
    ],
)
def test_an_invalid_patch_names_the_field(patch: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        patched_spec(CURRENT, patch)
    assert fields_of(caught) == [field]


ENV_FILE_SERVICE = deployed(envFile="A=1\n", runtime={"env": {"B": "b"}})


@pytest.mark.parametrize(
    ("patch", "env"),
    [
        pytest.param({**BASE, "envFile": "A=1\n"}, {"A": "1", "B": "b"}, id="same-deploy-again"),
        pytest.param({"envFile": "A=2\n"}, {"A": "2", "B": "b"}, id="change-a-file-variable"),
        pytest.param({"envFile": "B=c\n"}, {"A": "1", "B": "c"}, id="file-overrides-stored"),
        pytest.param({"envFile": "C=3\n"}, {"A": "1", "B": "b", "C": "3"}, id="add-a-variable"),
        pytest.param({"executionTimeout": 5}, {"A": "1", "B": "b"}, id="no-env-file"),
    ],
)
def test_an_env_file_can_be_sent_again(patch: dict[str, Any], env: dict[str, str]) -> None:
    assert ENV_FILE_SERVICE.runtime.env == {"A": "1", "B": "b"}
    assert merged_env(patched_spec(ENV_FILE_SERVICE, patch)) == env


def test_an_update_may_not_set_a_variable_in_both_env_and_env_file() -> None:
    patch = {"envFile": "A=2\n", "runtime": {"env": {"A": "3"}}}
    with pytest.raises(ValidationFailure) as caught:
        merged_env(patched_spec(ENV_FILE_SERVICE, patch))
    [error] = caught.value.errors
    assert error.field == "envFile"
    assert "A" in error.reason


# --- service_status ------------------------------------------------------------------------


def ago(delta: timedelta) -> datetime:
    return NOW - delta


JUST_NOW = timedelta(seconds=10)


@pytest.mark.parametrize(
    ("active", "desired", "replicas", "status"),
    [
        pytest.param(False, 1, [], ServiceStatus.INACTIVE, id="inactive"),
        pytest.param(
            False, 1, [("ready", "", ago(JUST_NOW))], ServiceStatus.INACTIVE, id="inactive-ready"
        ),
        pytest.param(True, 1, [("ready", "", ago(JUST_NOW))], ServiceStatus.ACTIVE, id="ready"),
        pytest.param(
            True,
            2,
            [("failed", "exited with code 1", ago(JUST_NOW)), ("ready", "", ago(JUST_NOW))],
            ServiceStatus.ACTIVE,
            id="one-ready-one-failed",
        ),
        pytest.param(True, 0, [], ServiceStatus.ACTIVE, id="desired-0"),
        pytest.param(
            True,
            0,
            [("failed", "exited with code 1", ago(JUST_NOW))],
            ServiceStatus.ACTIVE,
            id="desired-0-after-a-failure",
        ),
        pytest.param(
            True,
            1,
            [("failed", "init failed", ago(timedelta(minutes=1)))],
            ServiceStatus.ERROR,
            id="failed-recently",
        ),
        pytest.param(
            True,
            1,
            [("starting", "", ago(JUST_NOW)), ("failed", "init failed", ago(JUST_NOW))],
            ServiceStatus.ERROR,
            id="restarting-after-a-failure",
        ),
        pytest.param(
            True, 1, [("failed", "x", ago(ERROR_WINDOW))], ServiceStatus.ERROR, id="window-edge"
        ),
        pytest.param(
            True,
            1,
            [("failed", "x", ago(ERROR_WINDOW + timedelta(seconds=1)))],
            ServiceStatus.INITIALIZING,
            id="failed-long-ago",
        ),
        pytest.param(
            True, 1, [("starting", "", ago(JUST_NOW))], ServiceStatus.INITIALIZING, id="starting"
        ),
        pytest.param(True, 1, [], ServiceStatus.INITIALIZING, id="nothing-yet"),
        pytest.param(
            True,
            1,
            [("stopped", "stopped", ago(JUST_NOW))],
            ServiceStatus.INITIALIZING,
            id="stopped-cleanly",
        ),
    ],
)
def test_service_status(
    active: bool,
    desired: int,
    replicas: list[tuple[str, str, datetime]],
    status: ServiceStatus,
) -> None:
    assert service_status(active, desired, replicas, NOW) is status


def test_service_status_depends_on_the_time_passed_in() -> None:
    failed = [("failed", "init failed", NOW)]
    assert service_status(True, 1, failed, NOW) is ServiceStatus.ERROR
    later = NOW + ERROR_WINDOW + timedelta(seconds=1)
    assert service_status(True, 1, failed, later) is ServiceStatus.INITIALIZING


@pytest.mark.parametrize(
    ("status", "wire"),
    [
        (ServiceStatus.ACTIVE, "Active"),
        (ServiceStatus.INACTIVE, "Inactive"),
        (ServiceStatus.INITIALIZING, "Initializing"),
        (ServiceStatus.ERROR, "Error"),
    ],
)
def test_status_wire_values(status: ServiceStatus, wire: str) -> None:
    assert status == wire
