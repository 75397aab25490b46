"""Table tests for package revisions: the server's patch bump, a push as the next revision of a
package, content comparison for identical pushes, and package.json's `services`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from spool_common.archive import Archive, build_archive, read_archive
from spool_common.errors import ValidationFailure
from spool_common.models import (
    Codebase,
    FunctionIO,
    Package,
    PackageFunction,
    PackageInputType,
    PackageModule,
    Requirement,
)
from spool_gateway.packaging import as_update, manifest_services, next_version, same_content

CREATED = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

CURRENT = Package(
    id="pkg-1",
    name="detector",
    version="1.0.4",
    project_id="P",
    creator="alice",
    modules=[PackageModule()],
    codebase=Codebase(type="item", item_id="sha-old", size=100),
    requirements=[Requirement(name="numpy", version="1.26.4", operator="==")],
    created_at=CREATED,
    updated_at=CREATED,
)
# What build_package makes of a new push by bob: a fresh id, version 1.0.0, created now.
BUILT = CURRENT.model_copy(
    update={
        "id": "pkg-2",
        "version": "1.0.0",
        "creator": "bob",
        "codebase": Codebase(type="item", item_id="sha-new", size=120),
        "created_at": NOW,
        "updated_at": NOW,
    }
)


# --- next_version --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version", "following"),
    [
        ("1.0.0", "1.0.1"),
        ("1.0.1", "1.0.2"),
        ("1.2.9", "1.2.10"),
        ("1.0.99", "1.0.100"),
        ("0.0.0", "0.0.1"),
        ("3.7.41", "3.7.42"),
    ],
)
def test_next_version_bumps_the_patch_number(version: str, following: str) -> None:
    assert next_version(version) == following


@pytest.mark.parametrize(
    "version",
    ["", "1", "1.0", "1.0.0.0", "v1.0.0", "1.a.0", "1.0.x", "1..0", "1.0.-1", "1.0.0-rc1",
     " 1.0.0", "latest"],
)  # fmt: skip
def test_next_version_refuses_what_is_not_a_semantic_version(version: str) -> None:
    with pytest.raises(ValueError, match="not a semantic version"):
        next_version(version)


# --- as_update -----------------------------------------------------------------------------


def test_an_update_is_the_next_revision_of_the_same_package() -> None:
    updated = as_update(BUILT, CURRENT, NOW)
    assert (updated.id, updated.name, updated.project_id) == ("pkg-1", "detector", "P")
    assert updated.version == "1.0.5"
    assert (updated.creator, updated.created_at) == ("alice", CREATED)
    assert updated.updated_at == NOW


def test_an_update_carries_the_new_content() -> None:
    updated = as_update(BUILT, CURRENT, NOW)
    assert updated.codebase == BUILT.codebase
    assert updated.modules == BUILT.modules
    assert updated.requirements == BUILT.requirements


def test_updates_in_a_row_bump_one_patch_each() -> None:
    versions = []
    current = CURRENT.model_copy(update={"version": "1.0.0"})
    for _ in range(3):
        current = as_update(BUILT, current, NOW)
        versions.append(current.version)
    assert versions == ["1.0.1", "1.0.2", "1.0.3"]


def test_an_update_cannot_rename_the_package() -> None:
    with pytest.raises(ValidationFailure) as caught:
        as_update(BUILT.model_copy(update={"name": "segmenter"}), CURRENT, NOW)
    [error] = caught.value.errors
    assert error.field == "name"
    assert "'detector'" in error.reason


# --- same_content --------------------------------------------------------------------------

OTHER_MODULE = PackageModule(
    functions=[
        PackageFunction(input=[FunctionIO(type=PackageInputType.ITEM, name="item")]),
    ]
)


@pytest.mark.parametrize(
    ("change", "same"),
    [
        pytest.param({}, True, id="identical"),
        pytest.param(
            {"id": "pkg-2", "version": "1.0.0", "creator": "bob", "created_at": NOW},
            True,
            id="only-bookkeeping-differs",
        ),
        pytest.param({"metadata": {"note": "x"}}, True, id="metadata-differs"),
        pytest.param(
            {"codebase": Codebase(type="item", item_id="sha-new", size=100)},
            False,
            id="other-code",
        ),
        pytest.param({"codebase": None}, False, id="no-code"),
        pytest.param({"modules": [OTHER_MODULE]}, False, id="other-modules"),
        pytest.param(
            {"modules": [PackageModule(), PackageModule(name="trainer")]},
            False,
            id="extra-module",
        ),
        pytest.param({"requirements": []}, False, id="no-requirements"),
        pytest.param(
            {"requirements": [Requirement(name="numpy", version="2.0.0", operator="==")]},
            False,
            id="other-pin",
        ),
    ],
)
def test_same_content(change: dict[str, Any], same: bool) -> None:
    other = CURRENT.model_copy(update=change)
    assert same_content(CURRENT, other) is same
    assert same_content(other, CURRENT) is same


# --- manifest_services ---------------------------------------------------------------------

TRIGGER = {
    "name": "on-item",
    "active": True,
    "type": "Event",
    "spec": {
        "filter": {},
        "resource": "Item",
        "actions": ["Created"],
        "operation": {"type": "function", "functionName": "run"},
        "executionMode": "Once",
    },
}
SERVICE = {
    "name": "default-service",
    "packageRevision": "latest",
    "runtime": {"gpu": False, "replicas": 1, "concurrency": 10},
    "triggers": [TRIGGER],
    "initParams": {},
    "moduleName": "default_module",
}


def archive_with(package_json: bytes | None) -> Archive:
    files = {"main.py": b"class ServiceRunner:\n    def run(self):\n        pass\n"}
    if package_json is not None:
        files["package.json"] = package_json
    return read_archive(build_archive(files))


@pytest.mark.parametrize(
    ("manifest", "services"),
    [
        pytest.param(None, [], id="no-package-json"),
        pytest.param({"name": "pkg"}, [], id="no-services"),
        pytest.param({"services": []}, [], id="empty-list"),
        pytest.param({"services": [SERVICE]}, [SERVICE], id="dtlpy-asset"),
        pytest.param(
            {"services": [{"name": "a"}, {"name": "b", "triggers": []}]},
            [{"name": "a"}, {"name": "b", "triggers": []}],
            id="two-in-order",
        ),
    ],
)
def test_manifest_services(manifest: dict[str, Any] | None, services: list[dict[str, Any]]) -> None:
    raw = None if manifest is None else orjson.dumps(manifest)
    assert manifest_services(archive_with(raw)) == services


@pytest.mark.parametrize(
    ("package_json", "field"),
    [
        pytest.param({"services": {"name": "a"}}, "package.json.services", id="object"),
        pytest.param({"services": "default-service"}, "package.json.services", id="string"),
        pytest.param({"services": ["default-service"]}, "package.json.services", id="names"),
        pytest.param({"services": [{"name": "a"}, 3]}, "package.json.services", id="one-bad"),
        pytest.param(b"{not json", "package.json", id="bad-json"),
        pytest.param(b"[1, 2]", "package.json", id="not-an-object"),
    ],
)
def test_malformed_services_are_refused(package_json: dict[str, Any] | bytes, field: str) -> None:
    raw = package_json if isinstance(package_json, bytes) else orjson.dumps(package_json)
    with pytest.raises(ValidationFailure) as caught:
        manifest_services(archive_with(raw))
    assert [e.field for e in caught.value.errors] == [field]
