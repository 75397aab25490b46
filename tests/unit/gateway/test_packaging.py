"""Building a package from a push: request fields first, then package.json, then defaults."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from textwrap import dedent
from typing import Any

import orjson
import pytest

from spool_common.archive import Archive, build_archive, read_archive
from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import Codebase, Package, PackageInputType, Requirement
from spool_gateway.packaging import build_package

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)

MAIN = dedent(
    """
    class ServiceRunner:
        def __init__(self, threshold):
            self.threshold = threshold

        def run(self, item, progress, limit=10):
            return item
    """
).encode()
HANDLER = dedent(
    """
    class Handler:
        def handle(self, x):
            return x
    """
).encode()
HANDLER_MODULE = {
    "name": "images",
    "entryPoint": "src/app.py",
    "className": "Handler",
    "functions": [{"name": "handle", "input": [{"name": "x", "type": "Json"}]}],
}


def archive(
    manifest: dict[str, Any] | None = None, *, extra: dict[str, bytes] | None = None
) -> Archive:
    """main.py and src/app.py, `manifest` as package.json, and `extra` files."""
    contents = {"main.py": MAIN, "src/app.py": HANDLER, **(extra or {})}
    if manifest is not None:
        contents["package.json"] = orjson.dumps(manifest)
    return read_archive(build_archive(contents))


def build(fields: dict[str, Any], code: Archive) -> Package:
    return build_package(
        fields, code, package_id="pkg-1", project_id="p-1", creator="alice", now=NOW
    )


def refused(fields: dict[str, Any], code: Archive) -> list[FieldError]:
    with pytest.raises(ValidationFailure) as caught:
        build(fields, code)
    return list(caught.value.errors)


# --- where each field comes from ---------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "manifest", "name"),
    [
        pytest.param({"name": "from-request"}, {"name": "from-json"}, "from-request", id="request"),
        pytest.param({}, {"name": "from-json"}, "from-json", id="package-json"),
        pytest.param({}, None, "default-package", id="default"),
        pytest.param({}, {"modules": [HANDLER_MODULE]}, "default-package", id="json-no-name"),
        pytest.param({"name": ""}, {"name": "from-json"}, "from-json", id="empty-request-name"),
    ],
)
def test_name(fields: dict[str, Any], manifest: dict[str, Any] | None, name: str) -> None:
    assert build(fields, archive(manifest)).name == name


def test_request_modules_win_over_package_json() -> None:
    # package.json names a class that does not exist: using it would fail the push.
    manifest = {"modules": [{"name": "broken", "className": "Missing"}]}
    package = build({"modules": [HANDLER_MODULE]}, archive(manifest))
    assert [m.name for m in package.modules] == ["images"]


def test_package_json_modules_are_used_when_the_request_has_none() -> None:
    package = build({"name": "pkg"}, archive({"modules": [HANDLER_MODULE]}))
    [module] = package.modules
    assert (module.name, module.entry_point, module.class_name) == (
        "images",
        "src/app.py",
        "Handler",
    )
    assert [f.name for f in module.functions] == ["handle"]


def test_the_default_module_is_read_from_main_py() -> None:
    [module] = build({}, archive()).modules
    assert (module.name, module.entry_point, module.class_name) == (
        "default_module",
        "main.py",
        "ServiceRunner",
    )
    [run] = module.functions
    assert run.name == "run"
    # Arguments without a default become Json inputs; `progress` is the agent's.
    assert [(i.name, i.type) for i in run.input] == [("item", PackageInputType.JSON)]
    assert [(i.name, i.type) for i in module.init_inputs] == [("threshold", PackageInputType.JSON)]


def test_package_fields() -> None:
    code = archive({"services": [{"name": "svc", "runtime": {"concurrency": 4}}]})
    package = build({"name": "pkg"}, code)
    assert (package.id, package.project_id, package.creator) == ("pkg-1", "p-1", "alice")
    assert package.version == "1.0.0"
    assert package.created_at == package.updated_at == NOW
    assert package.service_config == {"name": "svc", "runtime": {"concurrency": 4}}


def test_codebase_points_at_the_archive_by_its_sha256() -> None:
    data = build_archive({"main.py": MAIN})
    package = build({}, read_archive(data))
    assert package.codebase == Codebase(
        type="item", item_id=hashlib.sha256(data).hexdigest(), size=len(data)
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(None, [], id="no-file"),
        pytest.param(b"", [], id="empty-file"),
        pytest.param(
            b"numpy==1.26.4\n# pinned for the model\nrequests >= 2.31\n\npillow\n",
            [
                Requirement(name="numpy", operator="==", version="1.26.4"),
                Requirement(name="requests", operator=">=", version="2.31"),
                Requirement(name="pillow"),
            ],
            id="pins-comments-blanks",
        ),
        pytest.param(
            b"uvicorn[standard]<1\r\n-r base.txt\r\n",
            [Requirement(name="uvicorn[standard]", operator="<", version="1")],
            id="extras-options-crlf",
        ),
    ],
)
def test_requirements_txt(text: bytes | None, expected: list[Requirement]) -> None:
    files = {} if text is None else {"requirements.txt": text}
    assert build({}, archive(extra=files)).requirements == expected


def test_a_bad_requirements_line_is_refused_with_its_number() -> None:
    [error] = refused({}, archive(extra={"requirements.txt": b"numpy\nfoo ~= 1.0\n"}))
    assert error.field == "requirements.txt"
    assert error.reason.startswith("line 2: ")


# --- what a user reads when the push is wrong ---------------------------------------------

NAME_REASON = "must be 1-63 lowercase letters, digits, '-' or '_'"


@pytest.mark.parametrize(
    "name",
    ["a", "0", "my_pkg-2", "a" * 63],
)
def test_valid_names(name: str) -> None:
    assert build({"name": name}, archive()).name == name


@pytest.mark.parametrize(
    ("fields", "manifest"),
    [
        pytest.param({"name": "My Package"}, None, id="spaces-and-capitals"),
        pytest.param({"name": "Pkg"}, None, id="capital"),
        pytest.param({"name": "-pkg"}, None, id="leading-dash"),
        pytest.param({"name": "_pkg"}, None, id="leading-underscore"),
        pytest.param({"name": "a" * 64}, None, id="64-characters"),
        pytest.param({"name": "pkg.v2"}, None, id="dot"),
        pytest.param(
            {"name": "pkg\n"},
            None,
            id="trailing-newline",
        ),
        pytest.param({"name": 5}, None, id="not-a-string"),
        pytest.param({}, {"name": "Bad Name"}, id="from-package-json"),
    ],
)
def test_invalid_names_are_refused(fields: dict[str, Any], manifest: dict[str, Any] | None) -> None:
    assert refused(fields, archive(manifest)) == [FieldError("name", NAME_REASON)]


MODULE_ERRORS: list[tuple[str, dict[str, Any], dict[str, Any] | None, str]] = [
    ("request-bad-class-name", {"modules": [{"className": "1Bad"}]}, None, "modules[0].className"),
    (
        "request-second-module",
        {"modules": [HANDLER_MODULE, {"functions": [{"name": "not valid"}]}]},
        None,
        "modules[1].functions[0].name",
    ),
    (
        "request-input-type",
        {"modules": [{"functions": [{"input": [{"name": "x", "type": "Blob"}]}]}]},
        None,
        "modules[0].functions[0].input[0].type",
    ),
    ("request-empty-list", {"modules": []}, None, "modules"),
    ("request-not-a-list", {"modules": "main.py"}, None, "modules"),
    ("request-module-not-object", {"modules": ["main"]}, None, "modules[0]"),
    (
        "json-bad-class-name",
        {},
        {"modules": [{"className": "1Bad"}]},
        "package.json.modules[0].className",
    ),
    (
        "json-bad-function",
        {},
        {"modules": [{"functions": [{"name": ""}]}]},
        "package.json.modules[0].functions[0].name",
    ),
    ("json-empty-list", {}, {"modules": []}, "package.json.modules"),
    ("json-not-a-list", {}, {"modules": {"name": "m"}}, "package.json.modules"),
    (
        "request-class-missing-in-code",
        {"modules": [{"className": "Missing"}]},
        None,
        "modules[0].className",
    ),
]


@pytest.mark.parametrize(
    ("fields", "manifest", "field"),
    [pytest.param(*c[1:], id=c[0]) for c in MODULE_ERRORS],
)
def test_module_errors_name_the_field(
    fields: dict[str, Any], manifest: dict[str, Any] | None, field: str
) -> None:
    assert [e.field for e in refused(fields, archive(manifest))] == [field]


def test_an_undeclared_argument_is_reported_on_the_functions_inputs() -> None:
    module = {**HANDLER_MODULE, "functions": [{"name": "handle"}]}
    [error] = refused({"modules": [module]}, archive())
    assert error.field == "modules[0].functions[0].input"
    assert "'x'" in error.reason


def test_code_errors_in_package_json_modules_name_package_json() -> None:
    manifest = {"modules": [{"className": "Missing"}]}
    assert [e.field for e in refused({}, archive(manifest))] == [
        "package.json.modules[0].className"
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"{", "is not valid JSON", id="broken-json"),
        pytest.param(b"[]", "must be a JSON object, not an array", id="array"),
    ],
)
def test_a_bad_package_json_is_refused(raw: bytes, reason: str) -> None:
    [error] = refused({}, archive(extra={"package.json": raw}))
    assert error.field == "package.json"
    assert reason in error.reason


@pytest.mark.parametrize(
    "services",
    [
        pytest.param({"name": "svc"}, id="object"),
        pytest.param("svc", id="string"),
        pytest.param([1], id="list-of-numbers"),
    ],
)
def test_a_malformed_services_list_is_a_validation_failure(services: object) -> None:
    errors = refused({}, archive({"services": services}))
    assert [e.field for e in errors] == ["package.json.services"]
