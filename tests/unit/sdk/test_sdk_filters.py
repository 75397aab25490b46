"""spool.Filters builds dtlpy's DQL JSON (reference §5.3) that Spool's own DQL evaluates."""

from __future__ import annotations

from typing import Any

import pytest

import spool
from spool import Filters, FiltersMethod, FiltersOperations, FiltersResource
from spool_common.dql import compile_filter
from spool_common.models import TriggerResource

ITEM_DEFAULTS = [{"hidden": False}, {"type": "file"}]


def _items(*conditions: dict[str, Any]) -> dict[str, Any]:
    return {"$and": [*ITEM_DEFAULTS, *conditions]}


def _image_dogs() -> Filters:
    f = Filters()
    f.add("metadata.system.mimetype", "image/*")
    f.add("dir", "/dogs")
    f.add("createdAt", "2024-01-01T00:00:00.000Z", operator=FiltersOperations.GREATER_THAN)
    return f


def _either_dir() -> Filters:
    f = Filters()
    f.add("dir", "/a", method=FiltersMethod.OR)
    f.add("dir", "/b", method="or")
    return f


CASES = [
    ("defaults only", Filters, _items()),
    (
        "the reference's and-chain",
        _image_dogs,
        _items(
            {"metadata.system.mimetype": "image/*"},
            {"dir": "/dogs"},
            {"createdAt": {"$gt": "2024-01-01T00:00:00.000Z"}},
        ),
    ),
    ("or beside the defaults", _either_dir, {"$or": [{"dir": "/a"}, {"dir": "/b"}], **_items()}),
    (
        "hidden replaces its default",
        lambda: Filters().add("hidden", True),
        {"$and": [{"type": "file"}, {"hidden": True}]},
    ),
    (
        "constructor condition",
        lambda: Filters(field="dir", values="/input"),
        _items({"dir": "/input"}),
    ),
    (
        "operators by name or with $",
        lambda: (
            Filters(use_defaults=False)
            .add("label", ["dog", "cat"], operator=FiltersOperations.IN)
            .add("metadata.user.x", True, operator="$exists")
            .add("score", 0.5, operator="gte")
            .add("label", ["x"], operator="nin")
        ),
        {
            "$and": [
                {"label": {"$in": ["dog", "cat"]}},
                {"metadata.user.x": {"$exists": True}},
                {"score": {"$gte": 0.5}},
                {"label": {"$nin": ["x"]}},
            ]
        },
    ),
    ("no defaults, no conditions", lambda: Filters(use_defaults=False), {}),
    (
        "annotation defaults: every type but note",
        lambda: Filters(field="label", values="DOG", resource=FiltersResource.ANNOTATION),
        {
            "$and": [
                {"type": {"$in": list(spool.filters.ANNOTATION_TYPES)}},
                {"label": "DOG"},
            ]
        },
    ),
    (
        "annotation type replaces its default",
        lambda: Filters(field="type", values="box", resource=FiltersResource.ANNOTATION),
        {"$and": [{"type": "box"}]},
    ),
    (
        "services hide global ones",
        lambda: Filters(resource="services"),
        {"$and": [{"global": {"$ne": True}}]},
    ),
    (
        "custom filter as is",
        lambda: Filters(custom_filter={"$or": [{"a": 1}, {"b": 2}]}),
        {"$or": [{"a": 1}, {"b": 2}]},
    ),
]


@pytest.mark.parametrize(("build", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_prepare_builds_the_reference_filter(build: Any, expected: dict[str, Any]) -> None:
    filters = build()
    query = filters.prepare()
    assert query["filter"] == expected
    assert filters.prepare(query_only=True) == {"filter": expected}


def test_query_carries_page_size_and_resource() -> None:
    assert Filters().prepare() == {
        "filter": _items(),
        "page": 0,
        "pageSize": 1000,
        "resource": "items",
    }
    assert Filters(resource=FiltersResource.EXECUTION).prepare()["pageSize"] == 100
    assert Filters(page_size=50).prepare()["pageSize"] == 50


def test_pop_and_has_field() -> None:
    f = Filters(field="dir", values="/a")
    assert f.has_field("dir")
    f.pop("dir")
    f.pop("hidden")
    assert not f.has_field("dir")
    assert f.prepare()["filter"] == {"$and": [{"type": "file"}]}


def test_prepared_list_values_are_copies() -> None:
    """Editing a prepared query never changes the defaults of later Filters."""
    first = Filters(resource=FiltersResource.ANNOTATION).prepare()["filter"]
    first["$and"][0]["type"]["$in"].clear()
    second = Filters(resource=FiltersResource.ANNOTATION).prepare()["filter"]
    assert len(second["$and"][0]["type"]["$in"]) == len(spool.filters.ANNOTATION_TYPES)


def test_unknown_operator_is_refused_naming_the_choices() -> None:
    with pytest.raises(spool.BadRequest) as caught:
        Filters().add("label", "x", operator="match")
    assert caught.value.details[0].field == "operator"
    assert "exists" in caught.value.details[0].reason


@pytest.mark.parametrize(
    ("field", "values", "path", "reason"),
    [
        ("a..b", 1, "filter.$and[2].a..b", "non-empty part"),
        ("score", {}, "filter.$and[2].score", "at least one operator"),
        ("score", {"$match": 1}, "filter.$and[2].score.$match", "$match"),
    ],
)
def test_filters_the_server_would_refuse_fail_on_prepare(
    field: str, values: Any, path: str, reason: str
) -> None:
    filters = Filters().add(field, values)
    with pytest.raises(spool.BadRequest) as caught:
        filters.prepare()
    assert caught.value.details[0].field == path
    assert reason in str(caught.value)


def test_the_prepared_filter_selects_the_items_the_user_meant() -> None:
    """What a trigger stores: Spool's matcher fires on visible files under /input only."""
    stored = Filters(field="dir", values="/input").prepare()["filter"]
    matcher = compile_filter(stored, TriggerResource.ITEM)
    assert matcher.matches({"dir": "/input", "name": "a.jpg"})
    assert not matcher.matches({"dir": "/other", "name": "a.jpg"})
    assert not matcher.matches({"dir": "/input", "hidden": True})
    assert not matcher.matches({"dir": "/input", "type": "dir"})
