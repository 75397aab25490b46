"""Check an execution's `input` against the function's declared inputs, before it is stored.

What a caller sees:
- a key that is not a declared input is refused;
- a missing input takes its `FunctionIO.value` when that is not None; otherwise it is refused
  if the input is `mandatory`, else left out so the method's own Python default applies (the
  gateway cannot see signatures at run time: with no default, the agent reports a TypeError);
- `null` is passed on as None for an input that is not mandatory, and refused for one that is;
- String takes a string; Integer an integer (not a boolean); Float and Number any finite number
  (not a boolean); Boolean true or false; Json anything; `T[]` a list whose every element is T;
- an entity (Item, Dataset, Annotation, ...) takes an id string, or an object with `<type>_id`
  (`item_id`, `dataset_id` ...) or `id`. It is passed on as an object holding both `<type>_id`
  and `id` plus any other fields given, and listed once in `resources`;
- the whole input is at most `MAX_INPUT_BYTES` of JSON.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from spool_common.errors import FieldError, ValidationFailure, raise_if_any
from spool_common.models import FunctionIO, PackageFunction, PackageInputType, ResourceRef

MAX_INPUT_BYTES = 1024 * 1024
MAX_ELEMENT_ERRORS = 10  # per list; the rest are counted, not listed


@dataclass(frozen=True)
class ValidatedInput:
    input: dict[str, Any]
    resources: list[ResourceRef]


def validate_input(
    function: PackageFunction,
    raw: object,
    *,
    field: str = "input",
    max_bytes: int = MAX_INPUT_BYTES,
) -> ValidatedInput:
    """`raw` checked against `function.input` and normalised, or one ValidationFailure.

    `field` prefixes every error (`input.item`, `input.items[2]`). For a service's init params,
    pass `PackageFunction(name="__init__", input=module.init_inputs)` and "initParams".
    """
    given = as_object(raw, field, max_bytes)
    declared = {io.name: io for io in function.input}
    names = ", ".join(declared) if declared else "it takes none"
    unknown = f"not an input of function {function.name!r} (inputs: {names})"
    checker = _Checker(function.name)
    checker.errors += [
        FieldError(f"{field}.{key}", unknown) for key in given if key not in declared
    ]
    values: dict[str, Any] = {}
    for io in function.input:
        checker.take(io, given, f"{field}.{io.name}", values)
    raise_if_any(checker.errors)
    unique = dict.fromkeys((ref.type, ref.id) for ref in checker.resources)
    resources = [ResourceRef(type=kind, id=ident) for kind, ident in unique]
    return ValidatedInput(input=values, resources=resources)


def as_object(raw: object, at: str, max_bytes: int = MAX_INPUT_BYTES) -> Mapping[str, Any]:
    """`raw` as a JSON object of at most `max_bytes` (None is an empty one)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValidationFailure.of(at, f"must be a JSON object, not {_kind(raw)}")
    try:
        size = len(orjson.dumps(raw))
    except orjson.JSONEncodeError as e:
        raise ValidationFailure.of(at, f"is not JSON ({e})") from None
    if size > max_bytes:
        reason = f"is too large: {size} bytes of JSON; the limit is {max_bytes}"
        raise ValidationFailure.of(at, reason)
    return raw


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


_T = PackageInputType
_SCALARS: dict[PackageInputType, tuple[Callable[[object], bool], str]] = {
    _T.STRING: (lambda v: isinstance(v, str), "a string"),
    _T.INTEGER: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    _T.FLOAT: (_is_number, "a finite number"),
    _T.NUMBER: (_is_number, "a finite number"),
    _T.BOOLEAN: (lambda v: isinstance(v, bool), "true or false"),
    _T.JSON: (lambda v: True, "JSON"),
}


def _kind(value: object) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN or infinity"
    kinds = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number"}
    kinds |= {str: "a string", list: "a list", dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


@dataclass
class _Checker:
    function_name: str
    errors: list[FieldError] = dataclasses.field(default_factory=list)
    resources: list[ResourceRef] = dataclasses.field(default_factory=list)

    def take(self, io: FunctionIO, given: Mapping[str, Any], at: str, out: dict[str, Any]) -> None:
        """Check one declared input and put its normalised value in `out`, if it has one."""
        required = f"is required by function {self.function_name!r}"
        if io.name in given:
            value = given[io.name]
        elif io.value is not None:
            value = copy.deepcopy(io.value)
        elif io.mandatory:
            self.errors.append(FieldError(at, required))
            return
        else:
            return
        if value is None and io.mandatory:
            self.errors.append(FieldError(at, f"{required} and cannot be null"))
        else:
            out[io.name] = None if value is None else self.check(io.type, value, at)

    def check(self, kind: PackageInputType, value: object, at: str) -> Any:
        if kind.is_list:
            return self._list(kind, value, at)
        if kind.is_entity:
            return self._entity(kind, value, at)
        accepts, expected = _SCALARS[kind]
        if not accepts(value):
            self.errors.append(FieldError(at, f"must be {expected}, not {_kind(value)}"))
        return value

    def _list(self, kind: PackageInputType, value: object, at: str) -> Any:
        if not isinstance(value, list):
            reason = f"must be a list of {kind.element.value}, not {_kind(value)}"
            self.errors.append(FieldError(at, reason))
            return value
        start = len(self.errors)
        checked = [self.check(kind.element, v, f"{at}[{n}]") for n, v in enumerate(value)]
        unlisted = len(self.errors) - start - MAX_ELEMENT_ERRORS
        if unlisted > 0:
            del self.errors[start + MAX_ELEMENT_ERRORS :]
            self.errors.append(FieldError(at, f"{unlisted} more elements are invalid"))
        return checked

    def _entity(self, kind: PackageInputType, value: object, at: str) -> Any:
        key = f"{kind.value.lower()}_id"
        fields: dict[str, Any] = value if isinstance(value, dict) else {}
        ident = value if isinstance(value, str) else fields.get(key, fields.get("id"))
        if not isinstance(value, str | dict):
            reason = f"must be an id or an object with {key!r} or 'id', not {_kind(value)}"
        elif key in fields and "id" in fields and fields[key] != fields["id"]:
            reason = f"has {key} {fields[key]!r} and id {fields['id']!r}; they must match"
        elif not isinstance(ident, str) or not ident.strip():
            reason = f"must be a non-empty {kind.value} id, or an object with one in {key!r}"
        else:
            self.resources.append(ResourceRef(type=kind.value, id=ident))
            return {**fields, key: ident, "id": ident}
        self.errors.append(FieldError(at, reason))
        return value
