"""Property tests: the compiled DQL matcher agrees with a deliberately simple interpreter."""

from __future__ import annotations

import functools
from typing import Any

from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from spool_common.dql import DqlError, Matcher, compile_filter, with_item_defaults
from spool_common.models import TriggerResource

MISSING = object()


# The reference: a direct reading of the module docstring, slow and obviously right.


def ref_glob(pattern: str, text: str) -> bool:
    tokens: list[str] = []
    for char in pattern:
        if char == "*" and tokens and tokens[-1] in ("*", "**"):
            tokens[-1] = "**"
        else:
            tokens.append(char)

    @functools.cache
    def match(i: int, j: int) -> bool:
        if i == len(tokens):
            return j == len(text)
        if tokens[i] == "**":
            return any(match(i + 1, k) for k in range(j, len(text) + 1))
        if tokens[i] == "*":
            k = j
            while True:
                if match(i + 1, k):
                    return True
                if k == len(text) or text[k] == "/":
                    return False
                k += 1
        return j < len(text) and text[j] == tokens[i] and match(i + 1, j + 1)

    return match(0, 0)


def ref_get(entity: dict[str, Any], field: str) -> Any:
    value: Any = entity
    for key in field.split("."):
        if not isinstance(value, dict) or key not in value:
            return MISSING
        value = value[key]
    return value


def is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def ref_equal(x: Any, wanted: Any) -> bool:
    if wanted is None:
        return x is None or x is MISSING
    if isinstance(wanted, bool):
        return isinstance(x, bool) and x == wanted
    if is_number(wanted):
        return is_number(x) and x == wanted
    if "*" in wanted:
        return isinstance(x, str) and ref_glob(wanted, x)
    return isinstance(x, str) and x == wanted


def ref_compare(op: str, x: Any, wanted: Any) -> bool:
    both_strings = isinstance(x, str) and isinstance(wanted, str)
    if not (both_strings or (is_number(x) and is_number(wanted))):
        return False
    if op == "$gt":
        return bool(x > wanted)
    if op == "$gte":
        return bool(x >= wanted)
    if op == "$lt":
        return bool(x < wanted)
    return bool(x <= wanted)


def itself_or_an_element(x: Any, test: Any) -> bool:
    return bool(test(x) or (isinstance(x, list) and any(test(y) for y in x)))


def ref_leaf(op: str, wanted: Any, x: Any) -> bool:
    if op == "$eq":
        return itself_or_an_element(x, lambda y: ref_equal(y, wanted))
    if op == "$ne":
        return not ref_leaf("$eq", wanted, x)
    if op == "$in":
        return any(ref_leaf("$eq", w, x) for w in wanted)
    if op == "$nin":
        return not ref_leaf("$in", wanted, x)
    if op == "$exists":
        return (x is not MISSING) is wanted
    return itself_or_an_element(x, lambda y: ref_compare(op, y, wanted))


def ref_matches(clause: dict[str, Any], entity: dict[str, Any]) -> bool:
    for key, value in clause.items():
        if key == "$and":
            ok = all(ref_matches(c, entity) for c in value)
        elif key == "$or":
            ok = any(ref_matches(c, entity) for c in value)
        elif isinstance(value, dict):
            ok = all(ref_leaf(op, w, ref_get(entity, key)) for op, w in value.items())
        else:
            ok = ref_leaf("$eq", value, ref_get(entity, key))
        if not ok:
            return False
    return True


# Strategies: few names and small alphabets, so filters and entities meet often.

KEYS = ["a", "b", "c-d", "e_f", "hidden", "type"]
PATHS = ["a", "a", "b", "a.b", "a.b.a", "c-d.e_f", "hidden", "type"]
texts = st.text(alphabet="ab/*.", max_size=6)
patterns = st.text(alphabet="ab/*", max_size=6)
numbers = st.integers(-2, 2) | st.sampled_from([0.0, 1.5, -2.5, 1.0, 2.0])
scalars = st.none() | st.booleans() | numbers | texts | st.sampled_from(["file", "dir", "/a"])
filter_scalars = st.none() | st.booleans() | numbers | patterns | st.sampled_from(["file", "/a"])
entity_values = st.recursive(
    scalars | st.lists(scalars, max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner),
    max_leaves=10,
)
entities = st.dictionaries(st.sampled_from(KEYS), entity_values, min_size=1, max_size=6)

operator_pairs = st.one_of(
    st.tuples(st.sampled_from(["$eq", "$ne"]), filter_scalars),
    st.tuples(st.sampled_from(["$gt", "$gte", "$lt", "$lte"]), numbers | texts),
    st.tuples(st.sampled_from(["$in", "$nin"]), st.lists(filter_scalars, max_size=3)),
    st.tuples(st.just("$exists"), st.booleans()),
)
field_values = filter_scalars | st.lists(operator_pairs, min_size=1, max_size=2).map(dict)
leaf_clauses = st.dictionaries(st.sampled_from(PATHS), field_values, max_size=2)


def _combine(fields: dict[str, Any], ands: list[Any] | None, ors: list[Any] | None) -> Any:
    clause = dict(fields)
    if ands is not None:
        clause["$and"] = ands
    if ors is not None:
        clause["$or"] = ors
    return clause


filters = st.recursive(
    leaf_clauses,
    lambda inner: st.builds(
        _combine,
        leaf_clauses,
        st.none() | st.lists(inner, min_size=1, max_size=3),
        st.none() | st.lists(inner, min_size=1, max_size=3),
    ),
    max_leaves=8,
)


@settings(max_examples=500, deadline=None)
@given(filters, entities)
@example({"a": "**"}, {"a": ["x/y", 1]})
@example({"a": {"$ne": None}}, {})
@example({"a": True}, {"a": [1, True]})
def test_matches_agrees_with_the_reference(filter: dict[str, Any], entity: dict[str, Any]) -> None:
    matcher = compile_filter(filter)
    expected = ref_matches(filter, entity)
    event(f"matches={expected}")
    assert matcher.matches(entity) is expected
    assert (matcher.explain(entity) is None) is expected


@settings(max_examples=2000, deadline=None)
@given(
    st.sampled_from(["a", "a.b"]),
    st.tuples(st.just("implicit"), filter_scalars) | operator_pairs,
    st.just(MISSING) | scalars | st.lists(scalars, max_size=3),
)
def test_single_conditions_agree_with_the_reference(
    field: str, condition: tuple[str, Any], value: Any
) -> None:
    # One condition against one value: dense coverage of each operator and type pairing.
    op, wanted = condition
    filter = {field: wanted} if op == "implicit" else {field: {op: wanted}}
    entity: dict[str, Any] = {}
    if value is not MISSING:
        entity = {"a": value} if field == "a" else {"a": {"b": value}}
    expected = ref_matches(filter, entity)
    assert compile_filter(filter).matches(entity) is expected


@settings(max_examples=300, deadline=None)
@given(filters, entities)
def test_items_match_the_defaulted_filter_on_the_defaulted_entity(
    filter: dict[str, Any], entity: dict[str, Any]
) -> None:
    matcher = compile_filter(filter, TriggerResource.ITEM)
    defaulted = with_item_defaults(filter)
    assert with_item_defaults(defaulted) == defaulted  # the SDK's own output is left alone
    expected = ref_matches(defaulted, {"hidden": False, "type": "file"} | entity)
    assert matcher.matches(entity) is expected
    assert (matcher.explain(entity) is None) is expected


@settings(max_examples=300, deadline=None)
@given(filters, entities, st.sampled_from([None, TriggerResource.ITEM]))
def test_equalities_hold_whenever_the_filter_matches(
    filter: dict[str, Any], entity: dict[str, Any], resource: TriggerResource | None
) -> None:
    matcher = compile_filter(filter, resource)
    if not matcher.matches(entity):
        return
    if resource is TriggerResource.ITEM:
        entity = {"hidden": False, "type": "file"} | entity
    for field, value in matcher.equalities.items():
        assert ref_leaf("$eq", value, ref_get(entity, field))


def _filled(pattern: str, fills: list[str]) -> str:
    pieces = pattern.split("*")
    return "".join(
        p + (fills[i % len(fills)] if i < len(pieces) - 1 else "") for i, p in enumerate(pieces)
    )


@settings(max_examples=1500, deadline=None)
@given(
    st.text(alphabet="ab/*", max_size=9),
    st.text(alphabet="ab/", max_size=10),
    st.lists(st.sampled_from(["", "a", "b/", "/a", "ab", "//"]), min_size=1, max_size=4),
    st.booleans(),
)
def test_globs_agree_with_the_reference(
    pattern: str, text: str, fills: list[str], derive: bool
) -> None:
    # Half the texts are the pattern with its stars filled in, so both outcomes are common.
    if derive:
        text = _filled(pattern, fills)
    expected = ref_glob(pattern, text) if "*" in pattern else text == pattern
    event(f"matches={expected}")
    assert compile_filter({"f": pattern}).matches({"f": text}) is expected


# Garbage in: only DqlError comes out, and whatever compiles behaves.

WORDS = ["$and", "$or", "$eq", "$ne", "$gt", "$lte", "$in", "$nin", "$exists", "$match", "$regex"]
junk_keys = st.sampled_from([*WORDS, "a", "a.b", "", ".", "a..b", "filename", "hidden"])
junk = st.recursive(
    st.none()
    | st.booleans()
    | st.floats()
    | st.integers()
    | st.text(max_size=6)
    | st.sampled_from(WORDS),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(junk_keys | st.text(max_size=3), inner)
    ),
    max_leaves=15,
)


def _compile_or_error(filter: Any, resource: TriggerResource | None) -> Matcher | DqlError:
    try:
        return compile_filter(filter, resource)
    except DqlError as error:
        return error


@settings(max_examples=400, deadline=None)
@given(junk, st.sampled_from([None, *TriggerResource]), entities)
def test_garbage_raises_only_dql_error(
    filter: Any, resource: TriggerResource | None, entity: dict[str, Any]
) -> None:
    compiled = _compile_or_error(filter, resource)
    event(f"compiled={not isinstance(compiled, DqlError)}")
    if isinstance(compiled, DqlError):
        assert str(compiled) == f"{compiled.path}: {compiled.reason}"
        assert compiled.path.startswith("filter")
        return
    verdict = compiled.matches(entity)
    assert (compiled.explain(entity) is None) is verdict
