"""The sandbox plan (spool_agent.sandbox): limits from the service and the agent's settings,
the uid, and which blocking directories to cover so a sandbox uid reaches what it needs."""

from __future__ import annotations

from typing import Any

import pytest

from spool_agent.sandbox import (
    CPU_MARGIN,
    Host,
    SandboxPlan,
    SandboxSettings,
    ancestors_of,
    exposures,
    plan_for,
    sandbox_uid,
)
from spool_common.models import Service

GIB = 1024**3
ROOT = Host(uid=0, cpu_count=4)
USER = Host(uid=1000, hard_limits={"memory_bytes": GIB, "open_files": 512}, cpu_count=2)


def _service(**fields: Any) -> Service:
    base = {"id": "s1", "name": "s", "projectId": "p", "packageId": "k", "packageRevision": "1"}
    return Service.model_validate({**base, **fields})


@pytest.mark.parametrize(
    ("fields", "memory"),
    [
        ({}, 6_912_500_000),  # regular-s, the default pod type
        ({"runtime": {"podType": "regular-xs"}}, 3_381_250_000),
        ({"runtime": {"resources": {"limits": {"memory": "2Gi"}}}}, 2 * GIB),
    ],
)
def test_memory_comes_from_the_limits_else_the_pod_type(
    fields: dict[str, Any], memory: int
) -> None:
    assert plan_for(_service(**fields), "r1", SandboxSettings(), ROOT).limits.memory_bytes == memory


def test_as_root_user_code_gets_a_uid_of_its_replica_and_a_process_limit() -> None:
    plan = plan_for(_service(), "r1", SandboxSettings(), ROOT)
    assert plan.uid == sandbox_uid("r1", 1_000_000_000, 1_000_000)
    assert plan.uid != plan_for(_service(), "r2", SandboxSettings(), ROOT).uid
    assert plan.limits.processes == 256
    assert plan.limits.open_files == 1024
    assert plan.limits.file_size_bytes == 2 * GIB
    assert plan.network is True


def test_a_high_concurrency_raises_the_process_limit_with_it() -> None:
    service = _service(runtime={"concurrency": 500})
    assert plan_for(service, "r1", SandboxSettings(), ROOT).limits.processes == 564


@pytest.mark.parametrize(
    ("host", "settings"),
    [(USER, SandboxSettings()), (ROOT, SandboxSettings(user=False))],
)
def test_without_a_uid_change_there_is_no_process_limit(
    host: Host, settings: SandboxSettings
) -> None:
    plan = plan_for(_service(), "r1", settings, host)
    assert plan.uid is None
    assert plan.limits.processes is None  # it would count the agent's own user


def test_not_root_limits_are_clamped_to_the_agents_hard_limits() -> None:
    limits = plan_for(_service(), "r1", SandboxSettings(), USER).limits
    assert limits.memory_bytes == GIB
    assert limits.open_files == 512
    assert limits.file_size_bytes == 2 * GIB  # no hard limit given: as configured


@pytest.mark.parametrize(
    ("fields", "cpu"),
    [
        ({}, None),  # thread mode: the long-lived runner is not limited
        ({"runExecutionAsProcess": True, "executionTimeout": 30}, 30 * 4 + CPU_MARGIN),
    ],
)
def test_cpu_time_is_limited_per_call_process(fields: dict[str, Any], cpu: int | None) -> None:
    assert (
        plan_for(_service(**fields), "r1", SandboxSettings(), ROOT).limits.call_cpu_seconds == cpu
    )


def test_no_network_is_a_setting() -> None:
    assert plan_for(_service(), "r1", SandboxSettings(network=False), ROOT).network is False


def test_a_plan_survives_its_json() -> None:
    plan = plan_for(_service(runExecutionAsProcess=True), "r1", SandboxSettings(), ROOT)
    assert SandboxPlan.from_json(plan.to_json()) == plan


@pytest.mark.parametrize(
    ("needed", "modes", "covers"),
    [
        (["/usr/lib/python3.11", "/srv/state/r1/codebase"], {}, {}),
        (
            ["/root/.pyenv/versions/3.11.7", "/root/.pyenv/versions/3.11.7/lib/python3.11"],
            {"/root": 0o40700},
            {"/root": ["/root/.pyenv/versions/3.11.7"]},
        ),
        (
            ["/srv/p/x/state/codebase", "/srv/p/x/state/deps", "/work/venv"],
            {"/srv": 0o40755, "/srv/p": 0o40700, "/srv/p/x": 0o40700},
            {"/srv/p": ["/srv/p/x/state/codebase", "/srv/p/x/state/deps"]},
        ),
    ],
)
def test_only_the_topmost_blocking_directory_is_covered(
    needed: list[str], modes: dict[str, int], covers: dict[str, list[str]]
) -> None:
    assert exposures(needed, modes) == covers


def test_ancestors_are_listed_topmost_first() -> None:
    assert ancestors_of(["/a/b/c", "/a/d"]) == ["/a", "/a/b"]
