"""Table tests for the DQL filter engine (reference §4 and §5)."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

from spool_common.dql import (
    ITEM_ENTITY_DEFAULTS,
    DqlError,
    compile_filter,
    with_item_defaults,
)
from spool_common.models import TriggerResource

ITEM = TriggerResource.ITEM
IMAGE = {
    "id": "i-1",
    "datasetId": "d-1",
    "hidden": False,
    "type": "file",
    "name": "hotdog.jpg",
    "filename": "/dir1/dir2/hotdog.jpg",
    "dir": "/dir1/dir2",
    "score": 0.7,
    "count": 3,
    "labels": ["dog", "cat"],
    "createdAt": "2024-05-01T10:00:00.000Z",
    "metadata": {
        "system": {"mimetype": "image/jpeg", "size": 2048},
        "user": {"good": True, "zero": 0, "nothing": None},
        "spe-cial": {"ke_ys": "x"},
    },
}


def matches(filter: dict[str, Any] | None, entity: dict[str, Any] = IMAGE) -> bool:
    return compile_filter(filter).matches(entity)


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        pytest.param(None, True, id="none-matches-all"),
        pytest.param({}, True, id="empty-matches-all"),
        pytest.param({"datasetId": "d-1"}, True, id="eq"),
        pytest.param({"datasetId": "d-2"}, False, id="eq-other"),
        pytest.param({"datasetId": {"$eq": "d-1"}}, True, id="$eq"),
        pytest.param({"datasetId": {"$ne": "d-1"}}, False, id="$ne-same"),
        pytest.param({"datasetId": {"$ne": "d-2"}}, True, id="$ne-other"),
        pytest.param({"score": {"$gt": 0.5}}, True, id="$gt"),
        pytest.param({"score": {"$gt": 0.7}}, False, id="$gt-equal"),
        pytest.param({"score": {"$gte": 0.7}}, True, id="$gte-equal"),
        pytest.param({"score": {"$lt": 0.7}}, False, id="$lt-equal"),
        pytest.param({"score": {"$lte": 0.7}}, True, id="$lte-equal"),
        pytest.param({"count": {"$lt": 3.5}}, True, id="int-vs-float"),
        pytest.param({"score": {"$gt": 0.5, "$lt": 0.6}}, False, id="two-ops-all-must-hold"),
        pytest.param({"score": {"$gt": 0.5, "$lt": 0.8}}, True, id="two-ops-range"),
        pytest.param({"createdAt": {"$gt": "2024-01-01T00:00:00.000Z"}}, True, id="iso-as-string"),
        pytest.param({"createdAt": {"$lt": "2024-01-01T00:00:00.000Z"}}, False, id="iso-lt"),
        pytest.param({"name": {"$gt": 1}}, False, id="string-vs-number-is-false"),
        pytest.param({"count": {"$gt": "1"}}, False, id="number-vs-string-is-false"),
        pytest.param({"hidden": {"$lt": 1}}, False, id="bool-is-not-a-number"),
        pytest.param({"datasetId": {"$in": ["d-0", "d-1"]}}, True, id="$in"),
        pytest.param({"datasetId": {"$in": ["d-0"]}}, False, id="$in-miss"),
        pytest.param({"datasetId": {"$in": []}}, False, id="$in-empty"),
        pytest.param({"datasetId": {"$nin": ["d-0", "d-1"]}}, False, id="$nin"),
        pytest.param({"datasetId": {"$nin": []}}, True, id="$nin-empty"),
        pytest.param({"metadata.spe-cial.ke_ys": {"$exists": True}}, True, id="$exists-true"),
        pytest.param({"metadata.spe-cial.ke_ys": {"$exists": False}}, False, id="$exists-false"),
        pytest.param({"metadata.user.nothing": {"$exists": True}}, True, id="$exists-null"),
        pytest.param({"metadata.user.good": True}, True, id="nested-bool"),
        pytest.param({"metadata.system.size": 2048}, True, id="nested-number"),
        pytest.param({"metadata.system": "x"}, False, id="object-is-not-a-string"),
    ],
)
def test_operators(filter: dict[str, Any] | None, expected: bool) -> None:
    assert matches(filter) is expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        pytest.param({"nope": "x"}, False, id="eq"),
        pytest.param({"nope": None}, True, id="eq-null-matches-missing"),
        pytest.param({"nope": {"$ne": "x"}}, True, id="$ne"),
        pytest.param({"nope": {"$ne": None}}, False, id="$ne-null"),
        pytest.param({"nope": {"$in": ["x"]}}, False, id="$in"),
        pytest.param({"nope": {"$in": ["x", None]}}, True, id="$in-null"),
        pytest.param({"nope": {"$nin": ["x"]}}, True, id="$nin"),
        pytest.param({"nope": {"$gt": 0}}, False, id="$gt"),
        pytest.param({"nope": {"$lte": "z"}}, False, id="$lte"),
        pytest.param({"nope": {"$exists": False}}, True, id="$exists-false"),
        pytest.param({"nope": {"$exists": True}}, False, id="$exists-true"),
        pytest.param({"name.first": "x"}, False, id="through-a-string"),
        pytest.param({"name.first": {"$exists": False}}, True, id="through-a-string-missing"),
        pytest.param({"labels.0": "dog"}, False, id="no-array-index"),
        pytest.param({"metadata.user.zero.x": {"$ne": 1}}, True, id="through-a-number"),
    ],
)
def test_missing_fields(filter: dict[str, Any], expected: bool) -> None:
    assert matches(filter) is expected


@pytest.mark.parametrize(
    ("filter", "entity", "expected"),
    [
        pytest.param({"flag": True}, {"flag": 1}, False, id="true-is-not-1"),
        pytest.param({"flag": 1}, {"flag": True}, False, id="1-is-not-true"),
        pytest.param({"flag": False}, {"flag": 0}, False, id="false-is-not-0"),
        pytest.param({"flag": 0}, {"flag": False}, False, id="0-is-not-false"),
        pytest.param({"flag": 0}, {"flag": 0.0}, True, id="0-is-0.0"),
        pytest.param({"flag": {"$in": [1]}}, {"flag": True}, False, id="$in-1-vs-true"),
        pytest.param({"flag": {"$in": [True]}}, {"flag": 1}, False, id="$in-true-vs-1"),
        pytest.param({"flag": {"$ne": 1}}, {"flag": True}, True, id="$ne-1-vs-true"),
        pytest.param({"flag": {"$gte": 1}}, {"flag": True}, False, id="$gte-vs-true"),
        pytest.param({"flag": None}, {"flag": False}, False, id="null-is-not-false"),
        pytest.param({"flag": ""}, {"flag": None}, False, id="empty-string-is-not-null"),
        pytest.param({"flag": "1"}, {"flag": 1}, False, id="string-is-not-number"),
    ],
)
def test_bool_int_and_type_strictness(
    filter: dict[str, Any], entity: dict[str, Any], expected: bool
) -> None:
    assert matches(filter, entity) is expected


@pytest.mark.parametrize(
    ("filter", "entity", "expected"),
    [
        pytest.param({"tags": "dog"}, {"tags": ["cat", "dog"]}, True, id="eq-any-element"),
        pytest.param({"tags": "cow"}, {"tags": ["cat", "dog"]}, False, id="eq-no-element"),
        pytest.param({"tags": "d*"}, {"tags": ["cat", "dog"]}, True, id="glob-any-element"),
        pytest.param({"tags": {"$ne": "dog"}}, {"tags": ["cat", "dog"]}, False, id="$ne-any"),
        pytest.param({"tags": {"$ne": "cow"}}, {"tags": ["cat", "dog"]}, True, id="$ne-none"),
        pytest.param({"tags": {"$in": ["cow", "cat"]}}, {"tags": ["cat"]}, True, id="$in"),
        pytest.param({"tags": {"$nin": ["cow", "cat"]}}, {"tags": ["cat"]}, False, id="$nin"),
        pytest.param({"n": {"$gt": 5}}, {"n": [1, 9]}, True, id="$gt-any-element"),
        pytest.param({"n": {"$gt": 5}}, {"n": [1, 2]}, False, id="$gt-no-element"),
        pytest.param({"n": 1}, {"n": [[1]]}, False, id="one-level-only"),
        pytest.param({"n": None}, {"n": [None]}, True, id="null-element"),
        pytest.param({"n": None}, {"n": []}, False, id="empty-list-is-not-null"),
        pytest.param({"n": True}, {"n": [1, True]}, True, id="bool-element"),
        pytest.param({"n": True}, {"n": [1]}, False, id="bool-element-not-1"),
        pytest.param({"a.b": 1}, {"a": [{"b": 1}]}, False, id="no-walk-into-arrays"),
        pytest.param({"n": {"$exists": True}}, {"n": []}, True, id="empty-list-exists"),
    ],
)
def test_lists_follow_mongo_any_element_rule(
    filter: dict[str, Any], entity: dict[str, Any], expected: bool
) -> None:
    assert matches(filter, entity) is expected


@pytest.mark.parametrize(
    ("pattern", "text", "expected"),
    [
        pytest.param("image/*", "image/jpeg", True, id="prefix-star"),
        pytest.param("image/*", "image/", True, id="star-matches-empty"),
        pytest.param("image/*", "video/mp4", False, id="prefix-other"),
        pytest.param("image/*", "x/image/jpeg", False, id="anchored-start"),
        pytest.param("video*", "video/mp4", False, id="star-does-not-cross-slash"),
        pytest.param("video*", "videos", True, id="doc-prefix"),
        pytest.param("*dog*", "hotdog.jpg", True, id="substring"),
        pytest.param("*dog*", "dog", True, id="substring-whole"),
        pytest.param("*dog*", "/a/dog", False, id="substring-no-slash"),
        pytest.param("*.jpg", "a.jpg", True, id="suffix"),
        pytest.param("*.jpg", "a.jpg.png", False, id="anchored-end"),
        pytest.param("*.jpg", "a/b.jpg", False, id="suffix-no-slash"),
        pytest.param("**.jpg", "a/b.jpg", True, id="double-star-suffix"),
        pytest.param("/dir1/**", "/dir1/a.jpg", True, id="recursive-child"),
        pytest.param("/dir1/**", "/dir1/dir2/dir3/a.jpg", True, id="recursive-deep"),
        pytest.param("/dir1/**", "/dir10/a.jpg", False, id="recursive-sibling"),
        pytest.param("/dir1/**", "/dir1", False, id="recursive-not-the-dir"),
        pytest.param("/dir1/dir2/*", "/dir1/dir2/a.jpg", True, id="one-level"),
        pytest.param("/dir1/dir2/*", "/dir1/dir2/dir3/a.jpg", False, id="one-level-only"),
        pytest.param("/**", "/a/b/c", True, id="root-recursive"),
        pytest.param("/**", "/", True, id="root-itself"),
        pytest.param("/**", "a", False, id="root-needs-slash"),
        pytest.param("**", "", True, id="double-star-empty"),
        pytest.param("***", "a/b", True, id="star-runs-are-double"),
        pytest.param("a*b*c", "aXbYc", True, id="inner-stars"),
        pytest.param("a*b*c", "aXb/Yc", False, id="inner-stars-no-slash"),
        pytest.param("a**b*c", "a/X/bYc", True, id="mixed"),
        pytest.param("a**b*c", "a/bX/bYc", True, id="mixed-needs-later-b"),
        pytest.param("**a*b", "a/ab", True, id="mixed-after-double"),
        pytest.param("**/x*y/**", "p/q/xzy/r", True, id="mixed-middle"),
        pytest.param("**/x*y/**", "p/x/y/r", False, id="mixed-middle-no-slash"),
        pytest.param("a.b+(c)*", "a.b+(c)d", True, id="regex-chars-are-literal"),
        pytest.param("a.b*", "aXb", False, id="dot-is-literal"),
        pytest.param("*", "line\nbreak", True, id="newline"),
    ],
)
def test_wildcards(pattern: str, text: str, expected: bool) -> None:
    assert matches({"f": pattern}, {"f": text}) is expected


@pytest.mark.parametrize("op", ["$eq", "$ne", "$in", "$nin"])
def test_wildcards_apply_to_equality_operators_but_not_comparisons(op: str) -> None:
    wanted: Any = ["image/*"] if op in ("$in", "$nin") else "image/*"
    positive = op in ("$eq", "$in")
    assert matches({"m": {op: wanted}}, {"m": "image/png"}) is positive
    assert matches({"m": {op: wanted}}, {"m": "video/mp4"}) is not positive
    assert matches({"m": {"$gte": "image/*"}}, {"m": "image/*"}) is True
    assert matches({"m": {"$gt": "image/*"}}, {"m": "image/*"}) is False


def test_wildcards_only_match_strings() -> None:
    assert matches({"n": "*"}, {"n": 5}) is False
    assert matches({"n": "**"}, {"n": None}) is False
    assert matches({"n": "**"}, {}) is False


@pytest.mark.parametrize("text_length", [5_000, 20_000])
@pytest.mark.timeout(10)
def test_adversarial_globs_do_not_backtrack_exponentially(text_length: int) -> None:
    # A plain regex translation needs minutes to hours for these.
    text = "a" * text_length
    assert matches({"f": "*a*a*a*a*a*a*a*b"}, {"f": text}) is False
    assert matches({"f": "**a*a**a*a**a*a**b"}, {"f": text}) is False
    assert matches({"f": "**a*a**a*a**a*a**"}, {"f": text}) is True


@pytest.mark.parametrize(
    ("filter", "entity", "expected"),
    [
        pytest.param({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True, id="and"),
        pytest.param({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 3}, False, id="and-one-fails"),
        pytest.param({"$or": [{"a": 1}, {"b": 2}]}, {"a": 0, "b": 2}, True, id="or"),
        pytest.param({"$or": [{"a": 1}, {"b": 2}]}, {"a": 0, "b": 0}, False, id="or-none"),
        pytest.param(
            {"$or": [{"a": 1}], "$and": [{"b": 2}]}, {"a": 1, "b": 0}, False, id="both-and"
        ),
        pytest.param(
            {"$or": [{"a": 1}], "$and": [{"b": 2}]}, {"a": 0, "b": 2}, False, id="both-or"
        ),
        pytest.param({"$or": [{"a": 1}], "$and": [{"b": 2}]}, {"a": 1, "b": 2}, True, id="both"),
        pytest.param({"a": 1, "$or": [{"b": 2}, {"c": 3}]}, {"a": 1, "c": 3}, True, id="field+or"),
        pytest.param(
            {"a": 1, "$or": [{"b": 2}, {"c": 3}]}, {"a": 2, "c": 3}, False, id="field-fails"
        ),
        pytest.param(
            {"$and": [{"a": 1}, {"$or": [{"b": 2}, {"$and": [{"c": 3}, {"d": 4}]}]}]},
            {"a": 1, "c": 3, "d": 4},
            True,
            id="nested",
        ),
        pytest.param(
            {"$and": [{"a": 1}, {"$or": [{"b": 2}, {"$and": [{"c": 3}, {"d": 4}]}]}]},
            {"a": 1, "c": 3, "d": 5},
            False,
            id="nested-fails",
        ),
        pytest.param({"$and": [{}]}, {}, True, id="empty-clause"),
        pytest.param({"$or": [{"a": 1, "b": 2}, {"c": 3}]}, {"a": 1}, False, id="clause-is-and"),
    ],
)
def test_and_or(filter: dict[str, Any], entity: dict[str, Any], expected: bool) -> None:
    assert matches(filter, entity) is expected


def test_dotted_paths_with_dashes_and_underscores() -> None:
    entity = {"metadata": {"spe-cial": {"ke_ys": 1}}, "a-b_c": "v"}
    assert matches({"metadata.spe-cial.ke_ys": 1}, entity) is True
    assert matches({"metadata.spe-cial.ke_ys": 2}, entity) is False
    assert matches({"a-b_c": "v"}, entity) is True
    assert matches({"metadata.spe_cial.ke_ys": {"$exists": True}}, entity) is False


def test_dotted_keys_are_not_flat_keys() -> None:
    assert matches({"a.b": 1}, {"a.b": 1}) is False


@pytest.mark.parametrize(
    ("filter", "value", "expected"),
    [
        ({"$gt": datetime(2024, 1, 1)}, datetime(2024, 5, 1), True),
        ({"$lt": datetime(2024, 1, 1)}, datetime(2024, 5, 1), False),
        ({"$gt": datetime(2024, 1, 1, tzinfo=UTC)}, datetime(2024, 5, 1, tzinfo=UTC), True),
        ({"$gt": datetime(2024, 1, 1, tzinfo=UTC)}, datetime(2024, 5, 1), False),
        ({"$gt": datetime(2024, 1, 1)}, "2024-05-01", False),
        ({"$eq": datetime(2024, 1, 1)}, datetime(2024, 1, 1), True),
        ({"$in": [datetime(2024, 1, 1)]}, datetime(2024, 1, 1), True),
    ],
)
def test_dates(filter: dict[str, Any], value: Any, expected: bool) -> None:
    assert compile_filter({"at": filter}).matches({"at": value}) is expected


def test_odd_entity_values_never_raise() -> None:
    matcher = compile_filter(
        {"$or": [{"v": {"$gt": 1}}, {"v": {"$lt": "a"}}, {"v": {"$in": [1, "a", None]}}]}
    )
    for value in [float("nan"), float("inf"), 10**400, {"x": [1]}, [[1], {"a": 2}], object()]:
        assert matcher.matches({"v": value}) is (value == float("inf") or value == 10**400)


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        pytest.param(None, {"$and": [{"hidden": False}, {"type": "file"}]}, id="none"),
        pytest.param({}, {"$and": [{"hidden": False}, {"type": "file"}]}, id="empty"),
        pytest.param(
            {"datasetId": "d"},
            {"datasetId": "d", "$and": [{"hidden": False}, {"type": "file"}]},
            id="fields-kept",
        ),
        pytest.param(
            {"$and": [{"a": 1}]},
            {"$and": [{"a": 1}, {"hidden": False}, {"type": "file"}]},
            id="appended-after-user-clauses",
        ),
        pytest.param(
            {"$and": [{"hidden": True}]},
            {"$and": [{"hidden": True}, {"type": "file"}]},
            id="hidden-true-overrides",
        ),
        pytest.param(
            {"$or": [{"type": "dir"}, {"a": 1}]},
            {"$or": [{"type": "dir"}, {"a": 1}], "$and": [{"hidden": False}]},
            id="mentioned-anywhere",
        ),
        pytest.param(
            {"$and": [{"hidden": False}, {"type": "file"}]},
            {"$and": [{"hidden": False}, {"type": "file"}]},
            id="sdk-filter-unchanged",
        ),
        pytest.param(
            {"filename": "/dir1", "hidden": {"$exists": True}, "type": 1},
            {"filename": "/dir1/**", "hidden": {"$exists": True}, "type": 1},
            id="filename-dir",
        ),
    ],
)
def test_with_item_defaults(filter: dict[str, Any] | None, expected: dict[str, Any]) -> None:
    assert with_item_defaults(filter) == expected


def test_with_item_defaults_leaves_its_argument_alone() -> None:
    filter = {"$and": [{"filename": "/d"}], "$or": [{"filename": {"$in": ["/e"]}}, {"a": 1}]}
    before = repr(filter)
    assert with_item_defaults(filter) != filter
    assert repr(filter) == before


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("/dir1", "/dir1/**", id="dir"),
        pytest.param("/dir1/", "/dir1/**", id="dir-slash"),
        pytest.param("/", "/**", id="root"),
        pytest.param("/dir1/a.jpg", "/dir1/a.jpg", id="file-kept"),
        pytest.param("/dir1/*", "/dir1/*", id="star-kept"),
        pytest.param("/dir1/**", "/dir1/**", id="recursive-kept"),
        pytest.param("/v1.2", "/v1.2", id="dot-looks-like-a-file"),
        pytest.param("/.hidden-folder", "/.hidden-folder/**", id="leading-dot-is-a-dir"),
        pytest.param({"$eq": "/d"}, {"$eq": "/d/**"}, id="$eq"),
        pytest.param({"$ne": "/d"}, {"$ne": "/d/**"}, id="$ne"),
        pytest.param({"$in": ["/d", "/e.png"]}, {"$in": ["/d/**", "/e.png"]}, id="$in"),
        pytest.param({"$nin": ["/d/"]}, {"$nin": ["/d/**"]}, id="$nin"),
        pytest.param({"$gt": "/d", "$exists": True}, {"$gt": "/d", "$exists": True}, id="others"),
    ],
)
def test_filename_convention(value: Any, expected: Any) -> None:
    done = with_item_defaults({"$or": [{"filename": value}, {"hidden": True, "type": "dir"}]})
    assert done == {"$or": [{"filename": expected}, {"hidden": True, "type": "dir"}]}


def test_item_matcher_applies_filter_and_entity_defaults() -> None:
    matcher = compile_filter({"filename": "/dir1"}, ITEM)
    assert matcher.matches(IMAGE) is True
    assert matcher.matches({"filename": "/dir1/a.jpg"}) is True  # hidden, type read as defaults
    assert matcher.matches(IMAGE | {"hidden": True}) is False
    assert matcher.matches(IMAGE | {"type": "dir"}) is False
    assert matcher.matches(IMAGE | {"filename": "/dir2/a.jpg"}) is False
    assert dict(ITEM_ENTITY_DEFAULTS) == {"hidden": False, "type": "file"}


def test_hidden_true_overrides_the_item_default() -> None:
    matcher = compile_filter({"hidden": True}, ITEM)
    assert matcher.matches(IMAGE | {"hidden": True, "filename": "/.hidden-folder/a.jpg"})
    assert not matcher.matches(IMAGE)
    assert not matcher.matches({})


@pytest.mark.parametrize(
    "resource", [r for r in TriggerResource if r is not ITEM] + [None], ids=str
)
def test_item_defaults_only_for_items(resource: TriggerResource | None) -> None:
    matcher = compile_filter({"filename": "/dir1"}, resource)
    assert matcher.matches({"filename": "/dir1", "hidden": True, "type": "dir"}) is True
    assert matcher.matches({"filename": "/dir1/a.jpg"}) is False
    assert matcher.fields == {"filename"}


@pytest.mark.parametrize(
    ("filter", "path", "reason"),
    [
        pytest.param([1], "filter", "must be an object, not a list", id="not-object"),
        pytest.param({1: 2}, "filter", "keys must be strings, not a number", id="key"),
        pytest.param(
            {"$and": [{"a": 1}, {"score": {"$gt": [1]}}]},
            "filter.$and[1].score.$gt",
            "$gt needs a number, a string or a date, not a list",
            id="$gt-list",
        ),
        pytest.param(
            {"$and": [{"a": 1}, {"b": 2}, {"score": {"$lte": True}}]},
            "filter.$and[2].score.$lte",
            "$lte needs a number, a string or a date, not a boolean",
            id="$lte-bool",
        ),
        pytest.param(
            {"s": {"$lt": None}}, "filter.s.$lt", "$lt needs a number, a string or a date, not null"
        ),
        pytest.param(
            {"s": {"$gt": float("nan")}}, "filter.s.$gt", "$gt needs a comparable number, not NaN"
        ),
        pytest.param({"a": {"$in": "x"}}, "filter.a.$in", "$in needs a list, not a string"),
        pytest.param({"a": {"$nin": {}}}, "filter.a.$nin", "$nin needs a list, not an object"),
        pytest.param(
            {"a": {"$in": [1, [2]]}},
            "filter.a.$in[1]",
            "each value needs to be a string, a number, a boolean, a date or null, not a list; "
            "use $in to match one of several values",
            id="$in-nested-list",
        ),
        pytest.param(
            {"a": {"$exists": 1}}, "filter.a.$exists", "$exists needs true or false, not a number"
        ),
        pytest.param(
            {"a": {"$exists": "true"}},
            "filter.a.$exists",
            "$exists needs true or false, not a string",
        ),
        pytest.param(
            {"$and": []},
            "filter.$and",
            "$and needs a non-empty list of objects, not an empty list",
        ),
        pytest.param(
            {"$or": {"a": 1}}, "filter.$or", "$or needs a non-empty list of objects, not an object"
        ),
        pytest.param(
            {"$and": [{"a": 1}, "b"]}, "filter.$and[1]", "must be an object, not a string"
        ),
        pytest.param(
            {"$or": [{"$and": [{"a": {"$regex": "x"}}]}]},
            "filter.$or[0].$and[0].a.$regex",
            "unknown operator '$regex'; use one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, "
            "$exists",
            id="unknown-op-nested",
        ),
        pytest.param(
            {"a": {"$match": {"b": 1}}},
            "filter.a.$match",
            "$match is not supported; use one of $eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, "
            "$exists",
            id="$match",
        ),
        pytest.param(
            {"$nor": [{"a": 1}]},
            "filter.$nor",
            "unknown operator '$nor'; only $and and $or join clauses",
        ),
        pytest.param(
            {"$match": [{"a": 1}]},
            "filter.$match",
            "$match is not supported; only $and and $or join clauses",
            id="$match-top",
        ),
        pytest.param(
            {"metadata": {"user": 1}},
            "filter.metadata.user",
            "unknown operator 'user'; operators start with $ (for a nested field use a dotted "
            "path such as 'metadata.user')",
            id="nested-object-value",
        ),
        pytest.param({"a": {}}, "filter.a", "needs at least one operator, such as $eq"),
        pytest.param(
            {"a": [1, 2]},
            "filter.a",
            "an equality needs a string, a number, a boolean, a date or null, not a list; "
            "use $in to match one of several values",
            id="eq-list",
        ),
        pytest.param(
            {"a": {"$eq": [1]}},
            "filter.a.$eq",
            "$eq needs a string, a number, a boolean, a date or null, not a list; "
            "use $in to match one of several values",
            id="$eq-list",
        ),
        pytest.param(
            {"a": {"$ne": {"b": 1}}},
            "filter.a.$ne",
            "$ne needs a string, a number, a boolean, a date or null, not an object",
        ),
        pytest.param(
            {"a": float("nan")}, "filter.a", "an equality needs a comparable number, not NaN"
        ),
        pytest.param({"": 1}, "filter.", "a field name needs a non-empty part between dots"),
        pytest.param(
            {"a..b": 1}, "filter.a..b", "a field name needs a non-empty part between dots"
        ),
        pytest.param({"a.": 1}, "filter.a.", "a field name needs a non-empty part between dots"),
    ],
)
def test_errors_name_the_bad_part(filter: Any, path: str, reason: str) -> None:
    with pytest.raises(DqlError) as caught:
        compile_filter(filter)
    assert (caught.value.path, caught.value.reason) == (path, reason)
    assert str(caught.value) == f"{path}: {reason}"
    assert isinstance(caught.value, ValueError)


def test_errors_use_the_callers_path_and_the_users_indexes_for_items() -> None:
    with pytest.raises(DqlError) as caught:
        compile_filter({"$and": [{"a": 1}, {"b": {"$in": 1}}]}, ITEM, where="spec.filter")
    assert caught.value.path == "spec.filter.$and[1].b.$in"
    with pytest.raises(DqlError) as caught:
        with_item_defaults({"$and": "x"})
    assert caught.value.path == "filter.$and"


def test_dql_error_survives_pickling() -> None:
    data = pickle.dumps(DqlError("filter.a", "bad"))
    error = pickle.loads(data)  # noqa: S301 - our own bytes, made one line above
    assert (error.path, error.reason, str(error)) == ("filter.a", "bad", "filter.a: bad")


def _nested(depth: int) -> dict[str, Any]:
    clause: dict[str, Any] = {"a": 1}
    for _ in range(depth - 1):
        clause = {"$and": [clause]}
    return clause


def test_depth_limit() -> None:
    assert compile_filter(_nested(16)).matches({"a": 1})
    with pytest.raises(DqlError) as caught:
        compile_filter(_nested(17))
    assert caught.value.path == "filter" + ".$and[0]" * 16
    assert caught.value.reason == "is nested deeper than 16 levels"


def test_node_limit() -> None:
    # The top clause, the $and clauses and their leaves all count.
    assert compile_filter({"$and": [{"a": i} for i in range(499)]}).matches({"a": 1}) is False
    with pytest.raises(DqlError) as caught:
        compile_filter({"$and": [{"a": i} for i in range(500)]})
    assert str(caught.value) == "filter: has more than 1000 clauses and conditions"
    with pytest.raises(DqlError):
        compile_filter({"a": {"$ne": 1}, **{f"f{i}": {"$exists": True} for i in range(1000)}})


def test_in_list_limit() -> None:
    assert compile_filter({"a": {"$in": list(range(1000))}}).matches({"a": 999})
    with pytest.raises(DqlError) as caught:
        compile_filter({"a": {"$nin": list(range(1001))}})
    assert str(caught.value) == "filter.a.$nin: $nin allows at most 1000 values, not 1001"


def test_glob_length_limit() -> None:
    assert compile_filter({"a": "*" + "x" * 999}).matches({"a": "x" * 999})
    assert compile_filter({"a": "y" * 5000}).matches({"a": "y" * 5000})  # no star, no limit
    with pytest.raises(DqlError) as caught:
        compile_filter({"a": {"$in": ["ok", "*" + "x" * 1000]}})
    assert str(caught.value) == (
        "filter.a.$in[1]: a wildcard pattern may have at most 1000 characters"
    )


@pytest.mark.parametrize(
    ("filter", "entity", "expected"),
    [
        pytest.param(
            {"$and": [{"a": 1}, {"b": 2}, {"metadata.system.mimetype": "image/*"}]},
            {"a": 1, "b": 2, "metadata": {"system": {"mimetype": "video/mp4"}}},
            "filter.$and[2]: metadata.system.mimetype is 'video/mp4', not 'image/*'",
            id="brief-example",
        ),
        pytest.param(
            {"datasetId": "d-1", "score": {"$gt": 0.5, "$lt": 0.6}},
            IMAGE,
            "filter: score is 0.7, wanted < 0.6",
            id="top-level-second-op",
        ),
        pytest.param({"nope": 5}, IMAGE, "filter: nope is missing, wanted 5", id="missing"),
        pytest.param(
            {"labels": {"$ne": "dog"}},
            IMAGE,
            "filter: labels is ['dog', 'cat'], wanted anything but 'dog'",
            id="$ne-list",
        ),
        pytest.param(
            {"count": {"$in": [1, 2]}},
            IMAGE,
            "filter: count is 3, wanted one of [1, 2]",
            id="$in",
        ),
        pytest.param(
            {"count": {"$nin": [3]}}, IMAGE, "filter: count is 3, wanted none of [3]", id="$nin"
        ),
        pytest.param(
            {"metadata.user.good": {"$exists": False}},
            IMAGE,
            "filter: metadata.user.good is true, wanted it to be missing",
            id="$exists-false",
        ),
        pytest.param(
            {"x": {"$exists": True}}, IMAGE, "filter: x is missing, wanted it to exist", id="exists"
        ),
        pytest.param(
            {"metadata": {"$gte": 1}},
            IMAGE,
            "filter: metadata is an object, wanted >= 1",
            id="object",
        ),
        pytest.param(
            {"$and": [{"a": 1}, {"$or": [{"b": True}, {"c": None}]}]},
            {"a": 1, "b": 1, "c": "x"},
            "filter.$and[1].$or: no alternative matched "
            "(filter.$and[1].$or[0]: b is 1, not true; filter.$and[1].$or[1]: c is 'x', not null)",
            id="or",
        ),
        pytest.param(
            {"name": "x" * 100},
            {"name": "y" * 100},
            f"filter: name is '{'y' * 77}...', not '{'x' * 77}...'",
            id="long-strings",
        ),
        pytest.param(
            {"n": {"$gt": 5}},
            {"n": [1, [2], {"a": 3}, None, True, 4.5]},
            "filter: n is [1, [...], an object, null, true, ...], wanted > 5",
            id="list-shown-short",
        ),
    ],
)
def test_explain(filter: dict[str, Any], entity: dict[str, Any], expected: str) -> None:
    matcher = compile_filter(filter)
    assert matcher.explain(entity) == expected
    assert matcher.matches(entity) is False


@pytest.mark.parametrize(
    ("filter", "entity", "expected"),
    [
        pytest.param(
            {"$and": [{"hidden": True}]},
            {},
            "filter.$and[0]: hidden is missing (defaults to false), wanted true",
            id="brief-example",
        ),
        pytest.param(
            {"a": 1},
            {"a": 1, "hidden": True},
            "filter.$and[0]: hidden is true, not false "
            "(an item default; filter on hidden to change it)",
            id="default-clause",
        ),
        pytest.param(
            {"$and": [{"a": 1}], "hidden": {"$in": [True, False]}},
            {"a": 1, "type": "dir"},
            "filter.$and[1]: type is 'dir', not 'file' "
            "(an item default; filter on type to change it)",
            id="default-clause-after-user-clauses",
        ),
        pytest.param(
            {"filename": "/dir1"},
            {"filename": "/dir2/a.jpg"},
            "filter: filename is '/dir2/a.jpg', not '/dir1/**'",
            id="filename-convention",
        ),
    ],
)
def test_explain_for_items(filter: dict[str, Any], entity: dict[str, Any], expected: str) -> None:
    assert compile_filter(filter, ITEM).explain(entity) == expected


def test_explain_is_none_when_matching() -> None:
    assert compile_filter({"$or": [{"a": 1}, {"b": 2}], "c": 3}).explain({"b": 2, "c": 3}) is None
    assert compile_filter(None, ITEM).explain(IMAGE) is None


@pytest.mark.parametrize(
    ("filter", "resource", "expected"),
    [
        pytest.param(None, None, {}, id="none"),
        pytest.param(
            {"datasetId": "d-1", "$and": [{"hidden": False}, {"n": {"$eq": 3}}]},
            None,
            {"datasetId": "d-1", "hidden": False, "n": 3},
            id="fields-and-$and",
        ),
        pytest.param(
            {"$and": [{"$and": [{"a": "x"}]}, {"$or": [{"b": "y"}]}, {"c": None}]},
            None,
            {"a": "x", "b": "y", "c": None},
            id="nested-and-single-or",
        ),
        pytest.param(
            {"$or": [{"a": 1}, {"b": 2}], "c": {"$ne": 1}, "d": "x*", "e": {"$in": [1]}},
            None,
            {},
            id="not-or-ne-glob-in",
        ),
        pytest.param({"a": 1, "$and": [{"a": 2}]}, None, {"a": 1}, id="first-wins"),
        pytest.param(
            {"datasetId": "d-1", "filename": "/dir1/a.jpg"},
            ITEM,
            {"datasetId": "d-1", "filename": "/dir1/a.jpg", "hidden": False, "type": "file"},
            id="item",
        ),
        pytest.param({"filename": "/dir1"}, ITEM, {"hidden": False, "type": "file"}, id="item-dir"),
        pytest.param({"hidden": True}, ITEM, {"hidden": True, "type": "file"}, id="item-hidden"),
    ],
)
def test_equalities(
    filter: dict[str, Any] | None, resource: TriggerResource | None, expected: dict[str, Any]
) -> None:
    equalities = compile_filter(filter, resource).equalities
    assert dict(equalities) == expected
    assert [type(v) for v in equalities.values()] == [type(v) for v in expected.values()]


def test_equalities_and_fields_are_immutable() -> None:
    matcher = compile_filter({"a": 1})
    with pytest.raises(TypeError):
        matcher.equalities["b"] = 2  # type: ignore[index]
    assert isinstance(matcher.fields, frozenset)


def test_fields() -> None:
    matcher = compile_filter(
        {"a": 1, "$or": [{"b.c": {"$gt": 1}}, {"$and": [{"d-e.f_g": {"$exists": True}}]}]}
    )
    assert matcher.fields == {"a", "b.c", "d-e.f_g"}
    assert compile_filter({"x": 1}, ITEM).fields == {"x", "hidden", "type"}
