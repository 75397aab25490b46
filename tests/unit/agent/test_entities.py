"""Table tests for entity inputs: what user code receives for Item, Item[], Json..."""

from __future__ import annotations

import copy
import pickle
from typing import Any

import orjson
import pytest

from spool_agent.entities import (
    Entity,
    EntityType,
    convert_inputs,
    convert_value,
    parse_type,
    to_jsonable,
)
from spool_common.models import PackageInputType

ITEM = {"id": "i1", "item_id": "i1", "dataset_id": "d1", "name": "cat.jpg", "type": "file"}


def test_the_entity_types_are_the_packages_entity_types() -> None:
    declared = {t.value for t in PackageInputType if t.is_entity and not t.is_list}
    assert {t.value for t in EntityType} == declared


@pytest.mark.parametrize(
    ("declared", "expected"),
    [
        ("Item", (EntityType.ITEM, False)),
        ("Item[]", (EntityType.ITEM, True)),
        ("Model", (EntityType.MODEL, False)),
        ("Annotation[]", (EntityType.ANNOTATION, True)),
        ("Json", (None, False)),
        ("String[]", (None, True)),
        ("item", (None, False)),  # types are case-sensitive, as declared in package.json
        ("", (None, False)),
    ],
)
def test_parse_type(declared: str, expected: tuple[EntityType | None, bool]) -> None:
    assert parse_type(declared) == expected


def test_an_entity_reads_its_fields_as_attributes() -> None:
    item = Entity("Item", ITEM)
    assert (item.id, item.item_id, item.dataset_id, item.name) == ("i1", "i1", "d1", "cat.jpg")
    assert item.type == "Item"
    assert item["type"] == "file"  # a field named like a property is read by key
    assert item.get("missing", 7) == 7
    assert item.to_json() == ITEM
    assert "dataset_id" in dir(item)


def test_a_missing_field_is_an_attribute_error_that_names_it() -> None:
    with pytest.raises(AttributeError, match="this Item has no field 'height'"):
        Entity("Item", ITEM).height  # noqa: B018 - the access is the test


def test_entities_are_read_only() -> None:
    item = Entity("Item", ITEM)
    with pytest.raises(AttributeError, match="read-only"):
        item.name = "dog.jpg"
    assert item.name == "cat.jpg"


def test_to_json_is_a_copy() -> None:
    item = Entity("Item", ITEM)
    item.to_json()["name"] = "changed"
    assert item.name == "cat.jpg"


@pytest.mark.parametrize(
    ("a", "b", "equal"),
    [
        (Entity("Item", {"id": "i1"}), Entity("Item", {"id": "i1", "name": "x"}), True),
        (Entity("Item", {"id": "i1"}), Entity("Item", {"item_id": "i1"}), True),
        (Entity("Item", {"id": "i1"}), Entity("Dataset", {"id": "i1"}), False),
        (Entity("Item", {"id": "i1"}), Entity("Item", {"id": "i2"}), False),
    ],
)
def test_equality_is_by_type_and_id(a: Entity, b: Entity, equal: bool) -> None:
    assert (a == b) is equal
    assert (len({a, b}) == 1) is equal
    assert a != {"id": "i1"}


def test_repr_names_the_type_and_fields() -> None:
    assert repr(Entity("Dataset", {"id": "d1"})) == "Dataset(id='d1', dataset_id='d1')"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"item_id": "i1"}, {"item_id": "i1", "id": "i1"}),
        ({"id": "i1"}, {"id": "i1", "item_id": "i1"}),
        ({}, {"id": None, "item_id": None}),
    ],
)
def test_id_and_type_id_complete_each_other(
    fields: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert Entity("Item", fields).to_json() == expected


@pytest.mark.parametrize(
    ("declared", "value", "expected"),
    [
        ("Item", ITEM, Entity("Item", ITEM)),
        ("Item", "i9", Entity("Item", {"id": "i9"})),  # a bare id
        ("Item", None, None),
        ("Item[]", [{"id": "a"}, "b"], [Entity("Item", {"id": "a"}), Entity("Item", {"id": "b"})]),
        ("Item[]", [], []),
        ("Item[]", None, None),
        ("Json", ITEM, ITEM),  # Json stays as is, even if it looks like an entity
        ("String", "i1", "i1"),
        ("Integer", 3, 3),
        ("Json[]", [{"id": "a"}], [{"id": "a"}]),
    ],
)
def test_convert_value(declared: str, value: object, expected: object) -> None:
    converted = convert_value(declared, value)
    assert converted == expected
    assert type(converted) is type(expected)
    if isinstance(expected, list):
        assert isinstance(converted, list)
        assert [type(v) for v in converted] == [type(v) for v in expected]


def test_convert_inputs_only_touches_typed_entity_arguments() -> None:
    kwargs = {"item": {"id": "i1"}, "config": {"id": "x"}, "untyped": {"id": "y"}}
    converted = convert_inputs(kwargs, {"item": "Item", "config": "Json", "absent": "Item"})
    assert isinstance(converted["item"], Entity)
    assert converted["config"] == {"id": "x"}
    assert converted["untyped"] == {"id": "y"}
    assert "absent" not in converted


def test_an_entity_anywhere_in_an_output_serialises_as_its_json() -> None:
    item = Entity("Item", ITEM)
    output = {"item": item, "items": [item], "pair": (item, 1)}
    body = orjson.dumps(output, default=to_jsonable)
    assert orjson.loads(body) == {"item": ITEM, "items": [ITEM], "pair": [ITEM, 1]}


def test_to_jsonable_still_refuses_other_objects() -> None:
    with pytest.raises(TypeError):
        orjson.dumps({"x": object()}, default=to_jsonable)


@pytest.mark.parametrize(
    "clone",
    [copy.copy, copy.deepcopy, lambda e: pickle.loads(pickle.dumps(e))],  # noqa: S301 - our own bytes
)
def test_entities_copy_and_pickle(clone: Any) -> None:
    item = Entity("Item", ITEM)
    copied = clone(item)
    assert copied == item
    assert copied.to_json() == ITEM
