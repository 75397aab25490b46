"""Entity inputs as user code receives them. Pure: values in, values out.

dtlpy hands a function an SDK object (`dl.Item`, `dl.Dataset`...) for an input declared with
an entity type. The runner hands over an `Entity` of that type's class (`Item`, `Dataset`...,
which the SDK exports as `spool.Item`...): the fields the gateway sent, read as attributes
(`item.id`, `item.dataset_id`, `item.name`...). The gateway always sends `id` and `<type>_id`,
plus any other fields the caller gave. `Entity(kind, fields)` builds the class of `kind`, so
`isinstance(Entity("Item", {...}), Item)` holds; `Item({...})` is the same.

`.id`, `.type` (e.g. "Item") and `.to_json()` belong to the entity itself; a field with one of
those names (an item's `type` is "file") is read with `entity["type"]`. Entities are read-only
and compare equal when their type and id are. Returned from a function, anywhere in its output,
an entity is stored as `to_json()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, ClassVar, Self, overload


class EntityType(StrEnum):
    ITEM = "Item"
    DATASET = "Dataset"
    ANNOTATION = "Annotation"
    EXECUTION = "Execution"
    TASK = "Task"
    ASSIGNMENT = "Assignment"
    SERVICE = "Service"
    PACKAGE = "Package"
    PROJECT = "Project"
    RECIPE = "Recipe"
    MODEL = "Model"

    @property
    def id_field(self) -> str:
        """The field that names an entity of this type: `item_id`, `dataset_id`..."""
        return f"{self.value.lower()}_id"


_ENTITY_TYPES = frozenset(t.value for t in EntityType)


class Entity:
    """Any entity; each type has its subclass below, which `Entity(kind, fields)` builds."""

    __slots__ = ("_fields", "_type")
    _fields: dict[str, Any]
    _type: EntityType
    _kind: ClassVar[EntityType | None] = None  # set by each subclass

    @overload
    def __new__(cls, kind: EntityType | str, fields: Mapping[str, Any], /) -> Self: ...
    @overload
    def __new__(cls, fields: Mapping[str, Any], /) -> Self: ...
    def __new__(cls, *args: Any) -> Self:
        entity_type, _ = _arguments(cls, args)
        target = _CLASSES[entity_type]
        if not issubclass(target, cls):
            raise TypeError(f"{cls.__name__} cannot hold a {entity_type.value}")
        return object.__new__(target)  # target is cls or one of its subclasses

    @overload
    def __init__(self, kind: EntityType | str, fields: Mapping[str, Any], /) -> None: ...
    @overload
    def __init__(self, fields: Mapping[str, Any], /) -> None: ...
    def __init__(self, *args: Any) -> None:
        entity_type, fields = _arguments(type(self), args)
        values = dict(fields)
        ident = values.get("id", values.get(entity_type.id_field))
        values.setdefault("id", ident)
        values.setdefault(entity_type.id_field, ident)
        object.__setattr__(self, "_type", entity_type)
        object.__setattr__(self, "_fields", values)

    @property
    def id(self) -> Any:
        return self._fields["id"]

    @property
    def type(self) -> str:
        return self._type.value

    def to_json(self) -> dict[str, Any]:
        """Every field, as the gateway sent it (a new dict; nested values are shared)."""
        return dict(self._fields)

    def get(self, name: str, default: Any = None) -> Any:
        return self._fields.get(name, default)

    def __getitem__(self, name: str) -> Any:
        return self._fields[name]

    def __getattr__(self, name: str) -> Any:
        fields: dict[str, Any] = object.__getattribute__(self, "_fields")
        try:
            return fields[name]
        except KeyError:
            raise AttributeError(f"this {self.type} has no field {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"entities are read-only: cannot set {name!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Entity):
            return NotImplemented
        return self._type == other._type and self.id == other.id

    def __hash__(self) -> int:
        return hash((self._type.value, str(self.id)))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._fields.items())
        return f"{self.type}({fields})"

    def __dir__(self) -> list[str]:
        return sorted({*object.__dir__(self), *(k for k in self._fields if k.isidentifier())})

    def __reduce__(self) -> tuple[Any, tuple[str, dict[str, Any]]]:
        return (Entity, (self._type.value, self._fields))


def _arguments(cls: type[Entity], args: tuple[Any, ...]) -> tuple[EntityType, Mapping[str, Any]]:
    """`(kind, fields)`, or `(fields,)` for a class of one type (`Item({...})`)."""
    if len(args) == 2:
        return EntityType(args[0]), args[1]
    if len(args) == 1 and cls._kind is not None:
        return cls._kind, args[0]
    raise TypeError(f"use {cls.__name__}(kind, fields) or a typed class: Item(fields)")


class Item(Entity):
    __slots__ = ()
    _kind = EntityType.ITEM


class Dataset(Entity):
    __slots__ = ()
    _kind = EntityType.DATASET


class Annotation(Entity):
    __slots__ = ()
    _kind = EntityType.ANNOTATION


class Execution(Entity):
    __slots__ = ()
    _kind = EntityType.EXECUTION


class Task(Entity):
    __slots__ = ()
    _kind = EntityType.TASK


class Assignment(Entity):
    __slots__ = ()
    _kind = EntityType.ASSIGNMENT


class Service(Entity):
    __slots__ = ()
    _kind = EntityType.SERVICE


class Package(Entity):
    __slots__ = ()
    _kind = EntityType.PACKAGE


class Project(Entity):
    __slots__ = ()
    _kind = EntityType.PROJECT


class Recipe(Entity):
    __slots__ = ()
    _kind = EntityType.RECIPE


class Model(Entity):
    __slots__ = ()
    _kind = EntityType.MODEL


_CLASSES: dict[EntityType, type[Entity]] = {
    cls._kind: cls for cls in Entity.__subclasses__() if cls._kind is not None
}


def parse_type(declared: str) -> tuple[EntityType | None, bool]:
    """("Item[]") -> (Item, True); a type that is not an entity gives (None, is_list)."""
    many = declared.endswith("[]")
    element = declared.removesuffix("[]")
    return (EntityType(element) if element in _ENTITY_TYPES else None), many


def entity_of(kind: EntityType, value: Any) -> Any:
    """An object (or a bare id) as an Entity of `kind`'s class; None and anything else stay as
    they are."""
    if isinstance(value, Mapping):
        return Entity(kind, value)
    if isinstance(value, str):
        return Entity(kind, {"id": value})
    return value


def convert_value(declared: str, value: Any) -> Any:
    kind, many = parse_type(declared)
    if kind is None:
        return value
    if many:
        return [entity_of(kind, v) for v in value] if isinstance(value, list) else value
    return entity_of(kind, value)


def convert_inputs(kwargs: Mapping[str, Any], types: Mapping[str, str]) -> dict[str, Any]:
    """The call's arguments with entity-typed ones as Entity objects; the rest unchanged."""
    return {
        name: convert_value(types[name], value) if name in types else value
        for name, value in kwargs.items()
    }


def to_jsonable(value: Any) -> Any:
    """orjson's `default`: an Entity becomes its JSON; anything else is still a TypeError."""
    if isinstance(value, Entity):
        return value.to_json()
    raise TypeError(f"Type is not JSON serializable: {type(value).__name__}")
