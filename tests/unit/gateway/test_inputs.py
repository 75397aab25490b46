"""Execution inputs: what a caller may send for each declared type, and what they read if not."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spool_common.errors import FieldError, ValidationFailure
from spool_common.models import FunctionIO, PackageFunction, PackageInputType, ResourceRef
from spool_gateway.inputs import MAX_INPUT_BYTES, validate_input

T = PackageInputType


def io(name: str, kind: str, **extra: Any) -> FunctionIO:
    return FunctionIO.model_validate({"name": name, "type": kind, **extra})


def run(*inputs: FunctionIO, name: str = "run") -> PackageFunction:
    return PackageFunction(name=name, input=list(inputs))


def refused(raw: object, function: PackageFunction, **options: Any) -> list[FieldError]:
    with pytest.raises(ValidationFailure) as caught:
        validate_input(function, raw, **options)
    return list(caught.value.errors)


ACCEPTED: list[tuple[str, str, object, object]] = [
    ("string", "String", "hello", "hello"),
    ("empty-string", "String", "", ""),
    ("integer", "Integer", -3, -3),
    ("float-takes-int", "Float", 2, 2),
    ("float", "Float", 2.5, 2.5),
    ("number", "Number", 1e300, 1e300),
    ("boolean", "Boolean", False, False),
    ("json-object", "Json", {"a": [1, None]}, {"a": [1, None]}),
    ("json-null-like-string", "Json", "null", "null"),
    ("strings", "String[]", ["a", "b"], ["a", "b"]),
    ("empty-list", "Integer[]", [], []),
    ("item-id", "Item", "I1", {"item_id": "I1", "id": "I1"}),
    (
        "item-object",
        "Item",
        {"item_id": "I1", "dataset_id": "D"},
        {"item_id": "I1", "dataset_id": "D", "id": "I1"},
    ),
    ("item-by-id-key", "Item", {"id": "I1"}, {"item_id": "I1", "id": "I1"}),
    ("both-keys-agree", "Item", {"id": "I1", "item_id": "I1"}, {"item_id": "I1", "id": "I1"}),
    (
        "annotation",
        "Annotation",
        {"dataset_id": "D", "item_id": "I", "annotation_id": "A"},
        {"dataset_id": "D", "item_id": "I", "annotation_id": "A", "id": "A"},
    ),
    (
        "items",
        "Item[]",
        ["I1", {"item_id": "I2"}],
        [{"item_id": "I1", "id": "I1"}, {"item_id": "I2", "id": "I2"}],
    ),
]


@pytest.mark.parametrize(
    ("kind", "value", "expected"), [pytest.param(*case[1:], id=case[0]) for case in ACCEPTED]
)
def test_accepted_values_are_normalised(kind: str, value: object, expected: object) -> None:
    assert validate_input(run(io("x", kind)), {"x": value}).input == {"x": expected}


NOT_AN_ID = "must be an id or an object with"
NO_ID = "must be a non-empty"
REFUSED: list[tuple[str, str, object, str, str]] = [
    ("string-gets-number", "String", 1, "input.x", "must be a string, not an integer"),
    ("integer-gets-bool", "Integer", True, "input.x", "must be an integer, not a boolean"),
    ("integer-gets-float", "Integer", 1.0, "input.x", "must be an integer, not a number"),
    ("float-gets-bool", "Float", False, "input.x", "must be a finite number, not a boolean"),
    ("number-gets-string", "Number", "1", "input.x", "must be a finite number, not a string"),
    (
        "float-gets-nan",
        "Float",
        float("nan"),
        "input.x",
        "must be a finite number, not NaN or infinity",
    ),
    ("boolean-gets-int", "Boolean", 1, "input.x", "must be true or false, not an integer"),
    ("list-gets-scalar", "String[]", "a", "input.x", "must be a list of String, not a string"),
    ("list-element", "Integer[]", [1, "2", 3], "input.x[1]", "must be an integer, not a string"),
    ("entity-gets-number", "Item", 7, "input.x", f"{NOT_AN_ID} 'item_id' or 'id', not an integer"),
    (
        "entity-empty-id",
        "Dataset",
        "  ",
        "input.x",
        f"{NO_ID} Dataset id, or an object with one in 'dataset_id'",
    ),
    (
        "entity-object-without-id",
        "Item",
        {"dataset_id": "D"},
        "input.x",
        f"{NO_ID} Item id, or an object with one in 'item_id'",
    ),
    (
        "entity-id-not-string",
        "Item",
        {"item_id": 5},
        "input.x",
        f"{NO_ID} Item id, or an object with one in 'item_id'",
    ),
    (
        "entity-ids-disagree",
        "Item",
        {"item_id": "A", "id": "B"},
        "input.x",
        "has item_id 'A' and id 'B'; they must match",
    ),
    (
        "entity-list-element",
        "Model[]",
        ["M1", None],
        "input.x[1]",
        f"{NOT_AN_ID} 'model_id' or 'id', not null",
    ),
]


@pytest.mark.parametrize(
    ("kind", "value", "at", "reason"), [pytest.param(*case[1:], id=case[0]) for case in REFUSED]
)
def test_refused_values_name_the_field(kind: str, value: object, at: str, reason: str) -> None:
    assert refused({"x": value}, run(io("x", kind))) == [FieldError(at, reason)]


def test_unknown_key_lists_the_inputs() -> None:
    errors = refused({"a": 1, "c": 2}, run(io("a", "Json"), io("b", "Json"), name="train"))
    assert errors == [FieldError("input.c", "not an input of function 'train' (inputs: a, b)")]


def test_unknown_key_for_a_function_without_inputs() -> None:
    assert refused({"x": 1}, run()) == [
        FieldError("input.x", "not an input of function 'run' (inputs: it takes none)")
    ]


@pytest.mark.parametrize(
    ("declared", "raw", "expected"),
    [
        pytest.param(io("x", "Integer", value=5), {}, {"x": 5}, id="filled-from-value"),
        pytest.param(io("x", "Integer", value=5), {"x": 7}, {"x": 7}, id="given-beats-value"),
        pytest.param(io("x", "Integer"), {}, {}, id="left-to-python-default"),
        pytest.param(io("x", "Integer", mandatory=False), {}, {}, id="not-mandatory"),
        pytest.param(
            io("x", "Integer", value=5, mandatory=True), {}, {"x": 5}, id="mandatory-value"
        ),
        pytest.param(io("x", "String"), {"x": None}, {"x": None}, id="null-is-none"),
        pytest.param(
            io("x", "Item", value="I9"),
            {},
            {"x": {"item_id": "I9", "id": "I9"}},
            id="default-entity-normalised",
        ),
    ],
)
def test_missing_and_null_inputs(declared: FunctionIO, raw: object, expected: object) -> None:
    assert validate_input(run(declared), raw).input == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param({}, "is required by function 'run'", id="missing"),
        pytest.param({"x": None}, "is required by function 'run' and cannot be null", id="null"),
    ],
)
def test_mandatory_inputs(raw: object, expected: str) -> None:
    assert refused(raw, run(io("x", "String", mandatory=True))) == [FieldError("input.x", expected)]


def test_a_filled_value_is_not_shared_between_executions() -> None:
    declared = io("x", "Json", value={"list": []})
    first = validate_input(run(declared), {}).input["x"]
    first["list"].append(1)
    assert validate_input(run(declared), {}).input["x"] == {"list": []}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(None, {}, id="null-is-empty"),
        pytest.param([], "must be a JSON object, not a list", id="list"),
        pytest.param("x", "must be a JSON object, not a string", id="string"),
        pytest.param({1: "a"}, "is not JSON", id="non-string-key"),
    ],
)
def test_the_input_itself(raw: object, expected: object) -> None:
    if isinstance(expected, dict):
        assert validate_input(run(), raw).input == expected
        return
    [error] = refused(raw, run())
    assert error.field == "input"
    assert error.reason.startswith(str(expected))


def test_too_large_input() -> None:
    [error] = refused({"x": "a" * MAX_INPUT_BYTES}, run(io("x", "String")))
    assert error.field == "input"
    assert error.reason.startswith("is too large")


def test_field_prefix_for_init_params() -> None:
    errors = refused({"m": 1}, run(io("m", "String"), name="__init__"), field="initParams")
    assert errors == [FieldError("initParams.m", "must be a string, not an integer")]


def test_every_problem_is_reported_and_long_lists_are_summarised() -> None:
    errors = refused(
        {"n": list(range(5)) + ["bad"] * 25, "s": 1, "zzz": 0},
        run(io("n", "Integer[]"), io("s", "String")),
    )
    assert [e.field for e in errors] == [
        "input.zzz",
        *[f"input.n[{i}]" for i in range(5, 15)],
        "input.n",
        "input.s",
    ]
    assert errors[11].reason == "15 more elements are invalid"


def test_resources_are_listed_once_in_order() -> None:
    result = validate_input(
        run(io("item", "Item"), io("items", "Item[]"), io("dataset", "Dataset")),
        {"item": "I1", "items": ["I2", {"item_id": "I1"}], "dataset": {"dataset_id": "D"}},
    )
    assert result.resources == [
        ResourceRef(type="Item", id="I1"),
        ResourceRef(type="Item", id="I2"),
        ResourceRef(type="Dataset", id="D"),
    ]


# --- property: every valid value of every type is accepted, and its resources match -------

ENTITIES = [t for t in T if t.is_entity and not t.is_list]
ids = st.text(min_size=1, max_size=12).filter(str.strip)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
numbers = st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
SCALARS: dict[PackageInputType, st.SearchStrategy[Any]] = {
    T.STRING: st.text(max_size=20),
    T.INTEGER: st.integers(-(2**63), 2**63 - 1),
    T.FLOAT: numbers,
    T.NUMBER: numbers,
    T.BOOLEAN: st.booleans(),
    T.JSON: json_values.filter(lambda v: v is not None),
}


def entity_values(kind: PackageInputType) -> st.SearchStrategy[Any]:
    key = f"{kind.value.lower()}_id"
    extra = st.dictionaries(st.sampled_from(["dataset_id", "name"]), ids, max_size=2)
    return ids | st.builds(lambda i, e: {**e, key: i}, ids, extra) | ids.map(lambda i: {"id": i})


def values_of(kind: PackageInputType) -> st.SearchStrategy[Any]:
    element = kind.element
    single = entity_values(element) if element.is_entity else SCALARS[element]
    return st.lists(single, max_size=4) if kind.is_list else single


def expected_refs(kind: PackageInputType, value: Any) -> list[tuple[str, str]]:
    if not kind.is_entity:
        return []
    key = f"{kind.element.value.lower()}_id"
    elements = value if kind.is_list else [value]
    return [
        (kind.element.value, v if isinstance(v, str) else v.get(key, v.get("id"))) for v in elements
    ]


@st.composite
def calls(draw: st.DrawFn) -> tuple[list[FunctionIO], dict[str, Any]]:
    kinds = draw(st.lists(st.sampled_from(list(T)), min_size=1, max_size=6))
    declared = [io(f"i{n}", kind.value) for n, kind in enumerate(kinds)]
    return declared, {d.name: draw(values_of(d.type)) for d in declared}


@settings(max_examples=200, deadline=None)
@given(call=calls())
def test_every_valid_value_is_accepted_with_matching_resources(
    call: tuple[list[FunctionIO], dict[str, Any]],
) -> None:
    declared, raw = call
    result = validate_input(run(*declared), raw)
    wanted = [ref for d in declared for ref in expected_refs(d.type, raw[d.name])]
    assert [(r.type, r.id) for r in result.resources] == list(dict.fromkeys(wanted))
    for d in declared:
        if d.type.is_entity:
            values = result.input[d.name] if d.type.is_list else [result.input[d.name]]
            key = f"{d.type.element.value.lower()}_id"
            assert all(v[key] == v["id"] for v in values)
        else:
            assert result.input[d.name] == raw[d.name]


@settings(max_examples=100, deadline=None)
@given(value=st.booleans(), kind=st.sampled_from([T.INTEGER, T.FLOAT, T.NUMBER, T.STRING]))
def test_a_boolean_is_never_a_number_or_string(value: bool, kind: PackageInputType) -> None:
    [error] = refused({"x": value}, run(io("x", kind.value)))
    assert error.reason.endswith("not a boolean")
