"""Static package checks: each case is the code a user pushes and the error they would read."""

from __future__ import annotations

from textwrap import dedent
from typing import Any

import pytest

from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import PackageInputType, PackageModule
from spool_gateway.inspect import (
    inspect_modules,
    mark_required,
    modules_from_sources,
    parse_package_json,
    parse_requirements,
)


def code(source: str) -> dict[str, bytes]:
    return {"main.py": dedent(source).encode()}


def modules(*wire: dict[str, Any]) -> list[PackageModule]:
    return [PackageModule.model_validate(m) for m in wire]


def run_with(*inputs: str, **module: Any) -> dict[str, Any]:
    """The wire form of a module whose `run` declares `inputs` (all Json)."""
    function = {"name": "run", "input": [{"name": n, "type": "Json"} for n in inputs]}
    return {"functions": [function], **module}


def errors_of(mods: list[PackageModule], files: dict[str, bytes]) -> list[FieldError]:
    try:
        inspect_modules(mods, files)
    except ValidationFailure as failure:
        return list(failure.errors)
    return []


RUNNER = """
    class ServiceRunner:
        def __init__(self, threshold=0.5):
            self.threshold = threshold

        def run(self, item, progress, context, limit=10):
            return item
"""
F0 = "modules[0].functions[0]"


def undeclared(argument: str, method: str = "run") -> str:
    reason = "is neither a declared input nor has a default"
    return f"argument {argument!r} of ServiceRunner.{method} {reason}"


CASES: list[tuple[str, list[PackageModule], dict[str, bytes], list[FieldError]]] = [
    ("valid", modules(run_with("item")), code(RUNNER), []),
    ("optional-input-declared", modules(run_with("item", "limit")), code(RUNNER), []),
    (
        "entry-point-missing",
        modules(run_with("item")),
        {"other.py": b""},
        [FieldError("modules[0].entryPoint", "main.py is not in the codebase")],
    ),
    (
        "entry-point-in-a-folder",
        modules(run_with("item", entryPoint="./src//main.py")),
        {"src/main.py": dedent(RUNNER).encode()},
        [],
    ),
    (
        "entry-point-escapes",
        modules(run_with("item", entryPoint="../main.py")),
        code(RUNNER),
        [FieldError("modules[0].entryPoint", "'../main.py' contains '..'")],
    ),
    (
        "entry-point-not-python",
        modules(run_with("item", entryPoint="main.txt")),
        {"main.txt": b""},
        [FieldError("modules[0].entryPoint", "'main.txt' is not a Python file (.py)")],
    ),
    (
        "syntax-error",
        modules(run_with("item")),
        code("class ServiceRunner:\n    def run(self:\n        pass\n"),
        [
            FieldError(
                "modules[0].entryPoint",
                "main.py does not parse as Python: '(' was never closed (line 2)",
            )
        ],
    ),
    (
        "null-byte",
        modules(run_with()),
        {"main.py": b"x = 1\x00"},
        [
            FieldError(
                "modules[0].entryPoint",
                "main.py does not parse as Python: source code string cannot contain null bytes",
            )
        ],
    ),
    (
        "nested-too-deeply",
        modules(run_with()),
        {"main.py": b"x = " + b"1+" * 100_000 + b"1"},
        [
            FieldError(
                "modules[0].entryPoint", "main.py does not parse as Python: it is nested too deeply"
            )
        ],
    ),
    (
        "class-missing",
        modules(run_with("item", className="Runner")),
        code(RUNNER),
        [
            FieldError(
                "modules[0].className",
                "class 'Runner' is not defined at the top level of the entry point",
            )
        ],
    ),
    (
        "class-only-inside-an-if",
        modules(run_with()),
        code("if True:\n    class ServiceRunner:\n        def run(self): ...\n"),
        [
            FieldError(
                "modules[0].className",
                "class 'ServiceRunner' is not defined at the top level of the entry point",
            )
        ],
    ),
    (
        "method-missing",
        modules({"functions": [{"name": "predict"}]}),
        code(RUNNER),
        [FieldError(f"{F0}.name", "class ServiceRunner has no method 'predict'")],
    ),
    (
        "async-method",
        modules(run_with("item")),
        code("class ServiceRunner:\n    async def run(self, item): ...\n"),
        [
            FieldError(
                f"{F0}.name",
                "ServiceRunner.run is an async function; async functions are not supported yet",
            )
        ],
    ),
    (
        "argument-not-declared",
        modules(run_with()),
        code(RUNNER),
        [
            FieldError(
                f"{F0}.input",
                undeclared("item"),
            )
        ],
    ),
    (
        "keyword-only-argument-not-declared",
        modules(run_with()),
        code("class ServiceRunner:\n    def run(self, *, item): ...\n"),
        [
            FieldError(
                f"{F0}.input",
                undeclared("item"),
            )
        ],
    ),
    (
        "input-not-an-argument",
        modules(run_with("item", "extra")),
        code(RUNNER),
        [
            FieldError(
                f"{F0}.input[1].name", "input 'extra' is not an argument of ServiceRunner.run"
            )
        ],
    ),
    (
        "kwargs-takes-any-input",
        modules(run_with("item", "extra")),
        code("class ServiceRunner:\n    def run(self, item, **rest): ...\n"),
        [],
    ),
    (
        "positional-only",
        modules(run_with("item")),
        code("class ServiceRunner:\n    def run(self, item, /): ...\n"),
        [
            FieldError(
                f"{F0}.input",
                "argument 'item' of ServiceRunner.run is positional-only, "
                "but inputs are passed by name",
            )
        ],
    ),
    (
        "reserved-input-name",
        modules(run_with("item", "context")),
        code(RUNNER),
        [FieldError(f"{F0}.input[1].name", "input name 'context' is reserved for the agent")],
    ),
    (
        "staticmethod",
        modules(run_with("item")),
        code("class ServiceRunner:\n    @staticmethod\n    def run(item): ...\n"),
        [],
    ),
    (
        "method-from-a-base-in-the-file",
        modules(run_with("item")),
        code("class Base:\n    def run(self, item): ...\nclass ServiceRunner(Base): ...\n"),
        [],
    ),
    (
        "base-method-checked-too",
        modules(run_with()),
        code("class Base:\n    def run(self, item): ...\nclass ServiceRunner(Base): ...\n"),
        [
            FieldError(
                f"{F0}.input",
                undeclared("item"),
            )
        ],
    ),
    (
        "imported-base-cannot-be-checked",
        modules({"functions": [{"name": "predict", "input": [{"name": "x", "type": "Json"}]}]}),
        code("import dtlpy as dl\nclass ServiceRunner(dl.BaseServiceRunner): ...\n"),
        [],
    ),
    (
        "base-by-imported-name",
        modules({"functions": [{"name": "ping"}]}),
        code("from dtlpy import BaseServiceRunner\nclass ServiceRunner(BaseServiceRunner): ...\n"),
        [],
    ),
    (
        "object-base-has-no-methods",
        modules(run_with()),
        code("class ServiceRunner(object): ...\n"),
        [FieldError(f"{F0}.name", "class ServiceRunner has no method 'run'")],
    ),
    (
        "cyclic-bases-are-not-followed",
        modules(run_with()),
        code("class A(B): ...\nclass B(A): ...\nclass ServiceRunner(A): ...\n"),
        [],
    ),
    (
        "method-assigned-not-defined",
        modules(run_with("item")),
        code("def _run(self, x): ...\nclass ServiceRunner:\n    run = _run\n"),
        [],
    ),
    (
        "dataclass-init-cannot-be-checked",
        modules(run_with("item", initInputs=[{"name": "model", "type": "String"}])),
        code(
            "from dataclasses import dataclass\n@dataclass\nclass ServiceRunner:\n"
            "    model: str\n    def run(self, item): ...\n"
        ),
        [],
    ),
    (
        "last-definition-wins",
        modules(run_with("item")),
        code("class ServiceRunner:\n    def run(self, a): ...\n    def run(self, item): ...\n"),
        [],
    ),
    (
        "init-argument-not-declared",
        modules(run_with("item")),
        code(
            "class ServiceRunner:\n    def __init__(self, model): ...\n    def run(self, item): ..."
        ),
        [
            FieldError(
                "modules[0].initInputs",
                undeclared("model", "__init__"),
            )
        ],
    ),
    (
        "init-inputs-declared",
        modules(run_with("item", initInputs=[{"name": "threshold", "type": "Float"}])),
        code(RUNNER),
        [],
    ),
    (
        "init-input-without-init",
        modules(run_with("item", initInputs=[{"name": "model", "type": "String"}])),
        code("class ServiceRunner:\n    def run(self, item): ...\n"),
        [
            FieldError(
                "modules[0].initInputs[0].name",
                "input 'model' is not an argument of ServiceRunner.__init__",
            )
        ],
    ),
    (
        "duplicate-function",
        modules({"functions": [run_with("item")["functions"][0], {"name": "run"}]}),
        code(RUNNER),
        [
            FieldError("modules[0].functions[1].name", "function name 'run' is used twice"),
            FieldError(
                "modules[0].functions[1].input",
                undeclared("item"),
            ),
        ],
    ),
    (
        "duplicate-input",
        modules(run_with("item", "item")),
        code(RUNNER),
        [FieldError(f"{F0}.input[1].name", "input name 'item' is used twice")],
    ),
    (
        "duplicate-module",
        modules(run_with("item", name="m"), run_with("item", name="m")),
        code(RUNNER),
        [FieldError("modules[1].name", "module name 'm' is used twice")],
    ),
    (
        "every-fault-reported-at-once",
        modules(run_with("item", name="a"), run_with("item", name="b", entryPoint="b.py")),
        {"main.py": b"class ServiceRunner:\n    def run(self): ...\n"},
        [
            FieldError(
                f"{F0}.input[0].name", "input 'item' is not an argument of ServiceRunner.run"
            ),
            FieldError("modules[1].entryPoint", "b.py is not in the codebase"),
        ],
    ),
]


@pytest.mark.parametrize(
    ("mods", "files", "expected"), [pytest.param(*case[1:], id=case[0]) for case in CASES]
)
def test_inspect_modules(
    mods: list[PackageModule], files: dict[str, bytes], expected: list[FieldError]
) -> None:
    assert errors_of(mods, files) == expected


# --- the default module ------------------------------------------------------------------

DEFAULTS = [
    (
        "inputs-from-run-and-init",
        "class ServiceRunner:\n    def __init__(self, model, t=1): ...\n"
        "    def run(self, item, progress, context, limit=3, *, tag): ...\n",
        ["item", "tag"],
        ["model"],
    ),
    ("no-init", "class ServiceRunner:\n    def run(self, item): ...\n", ["item"], []),
    (
        "run-from-base",
        "class B:\n    def run(self, x): ...\nclass ServiceRunner(B): ...\n",
        ["x"],
        [],
    ),
    (
        "non-ascii-names-left-out",
        "class ServiceRunner:\n    def run(self, café, item): ...\n",
        ["item"],
        [],
    ),
    ("async-run-has-no-inputs", "class ServiceRunner:\n    async def run(self, x): ...\n", [], []),
    ("class-missing", "x = 1\n", [], []),
    ("does-not-parse", "class ServiceRunner(:\n", [], []),
]


@pytest.mark.parametrize(
    ("source", "run_inputs", "init_inputs"), [pytest.param(*c[1:], id=c[0]) for c in DEFAULTS]
)
def test_modules_from_sources(source: str, run_inputs: list[str], init_inputs: list[str]) -> None:
    [module] = modules_from_sources({"main.py": source.encode()})
    assert (module.name, module.entry_point, module.class_name) == (
        "default_module",
        "main.py",
        "ServiceRunner",
    )
    [function] = module.functions
    assert function.name == "run"
    assert [(io.name, io.type) for io in function.input] == [
        (name, PackageInputType.JSON) for name in run_inputs
    ]
    assert [io.name for io in module.init_inputs] == init_inputs


def test_default_module_of_valid_code_passes_inspection() -> None:
    files = code(RUNNER)
    inspect_modules(modules_from_sources(files), files)


def test_default_module_without_main_py_fails_inspection_clearly() -> None:
    mods = modules_from_sources({"app.py": b""})
    assert errors_of(mods, {"app.py": b""}) == [
        FieldError("modules[0].entryPoint", "main.py is not in the codebase")
    ]


# --- package.json ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b'{"name": "p", "modules": []}', {"name": "p", "modules": []}, id="object"),
        pytest.param(b'\xef\xbb\xbf{"name": "p"}', {"name": "p"}, id="utf8-bom"),
    ],
)
def test_parse_package_json(raw: bytes, expected: dict[str, Any]) -> None:
    assert parse_package_json(raw) == expected


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b'{"name": "p",\n "modules": }', "at line 2 column 13", id="bad-json"),
        pytest.param(b"", "is not valid JSON", id="empty"),
        pytest.param(b'{"name": "\xff"}', "is not valid JSON", id="not-utf8"),
        pytest.param(b"[]", "must be a JSON object, not an array", id="array"),
        pytest.param(b'"p"', "must be a JSON object, not a string", id="string"),
        pytest.param(b"3", "must be a JSON object, not a number", id="number"),
        pytest.param(b"true", "must be a JSON object, not a boolean", id="boolean"),
        pytest.param(b"null", "must be a JSON object, not null", id="null"),
    ],
)
def test_parse_package_json_refuses(raw: bytes, reason: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_package_json(raw)
    [error] = caught.value.errors
    assert error.field == "package.json"
    assert reason in error.reason


# --- requirements.txt --------------------------------------------------------------------

Req = tuple[str, str | None, str | None]
REQUIREMENTS: list[tuple[str, str, list[Req]]] = [
    ("name-only", "requests", [("requests", None, None)]),
    ("pinned", "numpy==1.26.4", [("numpy", "==", "1.26.4")]),
    ("spaces", "pandas >= 2.0", [("pandas", ">=", "2.0")]),
    (
        "every-operator",
        "a>1\nb<2\nc<=3\nd>=4\ne==5",
        [("a", ">", "1"), ("b", "<", "2"), ("c", "<=", "3"), ("d", ">=", "4"), ("e", "==", "5")],
    ),
    ("extras-kept-in-name", "uvicorn[standard]>=0.30", [("uvicorn[standard]", ">=", "0.30")]),
    ("wildcard", "torch==2.*", [("torch", "==", "2.*")]),
    (
        "comments-blanks-options",
        "# top\n\n-r base.txt\n--index-url https://x\n-e .\nflask<3  # pinned\n",
        [("flask", "<", "3")],
    ),
    (
        "hashes-from-pip-compile",
        "numpy==1.26.4 \\\n    --hash=sha256:abc\n",
        [("numpy", "==", "1.26.4")],
    ),
    ("empty", "", []),
]


@pytest.mark.parametrize(
    ("text", "expected"), [pytest.param(*c[1:], id=c[0]) for c in REQUIREMENTS]
)
def test_parse_requirements(text: str, expected: list[Req]) -> None:
    assert [(r.name, r.operator, r.version) for r in parse_requirements(text)] == expected


EXPECTED = "expected a name, then optionally ==, >, <, <= or >= and one version"
CANNOT = "which Spool cannot express yet: " + EXPECTED
NOT_ONE = "is not a requirement: " + EXPECTED
BAD_REQUIREMENTS = [
    ("range", "numpy>=1,<2", ["line 1: 'numpy>=1,<2' uses ',', " + CANNOT]),
    ("compatible-release", "ok\na ~= 1.0", ["line 2: 'a ~= 1.0' uses '~=', " + CANNOT]),
    ("exclusion", "a!=1", ["line 1: 'a!=1' uses '!=', " + CANNOT]),
    (
        "marker",
        "a; python_version < '3.8'",
        ["line 1: \"a; python_version < '3.8'\" uses ';', " + CANNOT],
    ),
    ("url", "pkg @ https://x/pkg.whl", ["line 1: 'pkg @ https://x/pkg.whl' uses '@', " + CANNOT]),
    ("nonsense", "this is not one", ["line 1: 'this is not one' " + NOT_ONE]),
    ("single-equals", "a=1", ["line 1: 'a=1' " + NOT_ONE]),
    ("listed-twice", "numpy\nflask\nNumPy==1", ["line 3: 'NumPy' is already listed on line 1"]),
    (
        "every-bad-line",
        "a=1\nb\nb",
        ["line 1: 'a=1' " + NOT_ONE, "line 3: 'b' is already listed on line 2"],
    ),
]


@pytest.mark.parametrize(
    ("text", "reasons"), [pytest.param(*c[1:], id=c[0]) for c in BAD_REQUIREMENTS]
)
def test_parse_requirements_refuses(text: str, reasons: list[str]) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_requirements(text)
    assert caught.value.errors == tuple(FieldError("requirements.txt", r) for r in reasons)


DECORATED = '''
import spool
from spool import function
from typing import Optional


class ServiceRunner(spool.BaseServiceRunner):
    def __init__(self, model):
        self.model = model

    @spool.function(display_name="Detect objects", description="boxes on an image")
    def detect(self, item: spool.Item, threshold: float = 0.5, progress=None, context=None):
        ...

    @function
    def count(self, items: list[spool.Item], names: "list[str]", limit: int | None, flag: bool):
        """Count the items."""

    @spool.function()
    def anything(self, config, data: dict, maybe: Optional[spool.Dataset], odd: set[int]):
        ...

    def helper(self, x: int):  # not a function: no decorator
        ...
'''


def test_decorated_methods_are_the_functions_typed_from_their_annotations() -> None:
    [module] = modules_from_sources({"main.py": DECORATED.encode()})
    assert [io.name for io in module.init_inputs] == ["model"]
    detect, count, anything = module.functions
    assert (detect.name, detect.display_name, detect.description) == (
        "detect",
        "Detect objects",
        "boxes on an image",
    )
    assert [(io.name, io.type.value) for io in detect.input] == [
        ("item", "Item"),
        ("threshold", "Float"),
    ]
    assert (count.name, count.description) == ("count", "Count the items.")
    assert [(io.name, io.type.value) for io in count.input] == [
        ("items", "Item[]"),
        ("names", "String[]"),
        ("limit", "Integer"),
        ("flag", "Boolean"),
    ]
    assert [(io.name, io.type.value) for io in anything.input] == [
        ("config", "Json"),
        ("data", "Json"),
        ("maybe", "Dataset"),
        ("odd", "Json"),
    ]


def test_decorated_functions_are_checked_and_marked_like_declared_ones() -> None:
    files = {"main.py": DECORATED.encode()}
    modules = mark_required(modules_from_sources(files), files)
    inspect_modules(modules, files)
    detect = modules[0].functions[0]
    assert [(io.name, io.mandatory) for io in detect.input] == [
        ("item", True),
        ("threshold", None),
    ]
