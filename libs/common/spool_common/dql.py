"""DQL filters (Dataloop's Mongo-style trigger filters) compiled once into fast matchers.

Pure: no I/O, no clock. `compile_filter` validates a filter and turns it into a tree of closures;
`Matcher.matches` then runs without parsing, regex compiling or raising. Reference: §4 and §5 of
../shared/reference/dataloop-faas.md; where it is silent we do what MongoDB does, except where
noted below.

Shape. A filter is an object; `{}` or None matches everything. Its keys are `$and` / `$or` (a
non-empty list of clause objects, nestable) or field names; all keys of one object must hold, so
`$and` and `$or` side by side must both hold. `{field: value}` is equality; `{field: {"$op": v}}`
uses `$eq $ne $gt $gte $lt $lte $in $nin $exists` (several operators in one object must all hold).
`$match` is refused: in Dataloop it matches elements of object arrays (the SDK points to it for
`metadata.system.refs`), which Spool does not implement. Any other `$` key is refused.

Fields. `a.b-c.d_e` walks nested objects; a step through a non-object or a missing key makes the
field missing (unlike MongoDB, no walking into arrays and no numeric indexes). A key that itself
contains a dot cannot be reached.

Values. Equality compares JSON scalars (strings, numbers, booleans, null) and datetimes. A bool
never equals a number (True is not 1). A string with `*` is an anchored glob: `*` matches any run
of characters without `/`, `**` (any longer run of stars too) also matches `/`. There is no escape
for a literal `*`. Globs apply to equality, `$eq`, `$ne`, `$in` and `$nin`, not to comparisons.
`$gt $gte $lt $lte` compare numbers with numbers (not bools), strings with strings (so ISO dates
compare as strings) and datetimes with datetimes of the same awareness; anything else is false.
MongoDB rules kept: null equals a missing field; `$ne` and `$nin` are the negations of equality
and `$in`, so they hold when the field is missing (`$ne: null` asks for a present, non-null
value); when the value is a list, equality, `$in` and the comparisons hold if the list itself or
any of its elements does (one level, like MongoDB). Equality values and `$in` elements must be
scalars (use `$in` to match one of several values); `$exists` needs a boolean.

Items. For `TriggerResource.ITEM` the filter gets the SDK defaults (`with_item_defaults`), and an
item entity without `hidden` or `type` reads as `ITEM_ENTITY_DEFAULTS` (false, "file"), so events
that leave them out still match the default filter.

Limits against abuse: clauses nested at most 16 deep, at most 1000 clauses and conditions, `$in`
lists of at most 1000 values, globs of at most 1000 characters. Globs match in polynomial time
(see `_compile_glob`), never by exponential backtracking.
"""

from __future__ import annotations

import operator
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Final, Protocol

from spool_common.models import TriggerResource

MAX_DEPTH: Final = 16
MAX_NODES: Final = 1000
MAX_IN_VALUES: Final = 1000
MAX_GLOB_CHARS: Final = 1000

ITEM_ENTITY_DEFAULTS: Final[Mapping[str, Any]] = MappingProxyType({"hidden": False, "type": "file"})
_ITEM_FILTER_DEFAULTS: Final = (("hidden", False), ("type", "file"))
_OPERATORS: Final = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$exists")
_COMPARE: Final[Mapping[str, Callable[[Any, Any], bool]]] = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}
_EQUALITY_OPS: Final = frozenset({"$eq", "$ne", "$in", "$nin"})
_WANT_SIGN: Final = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_STAR_RUN: Final = re.compile(r"\*{2,}")

Test = Callable[[Mapping[str, Any]], bool]
Check = Callable[[Any], bool]


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<missing>"


_MISSING: Final = _Missing()


class DqlError(ValueError):
    """A filter is invalid; `path` names the bad part (`filter.$and[2].score.$gt`)."""

    path: str
    reason: str

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self) -> tuple[type[DqlError], tuple[str, str]]:
        return (type(self), (self.path, self.reason))


class _Node(Protocol):
    @property
    def test(self) -> Test: ...

    def explain(self, entity: Mapping[str, Any]) -> str | None: ...


@dataclass(frozen=True, eq=False)
class Matcher:
    """A compiled filter. `equalities` holds the top-level AND equalities with exact scalar
    values: when `matches(e)`, the value at each field (after item defaults) equals it, or is a
    list holding it, or (for None) is missing. `fields` is every field the filter mentions."""

    equalities: Mapping[str, Any]
    fields: frozenset[str]
    _root: _Node = dataclass_field(repr=False)

    def matches(self, entity: Mapping[str, Any]) -> bool:
        return self._root.test(entity)

    def explain(self, entity: Mapping[str, Any]) -> str | None:
        """None when `entity` matches; otherwise the first failing clause, its path and why."""
        return self._root.explain(entity)


def compile_filter(
    filter: Mapping[str, Any] | None,
    resource: TriggerResource | None = None,
    *,
    where: str = "filter",
) -> Matcher:
    """Validate `filter` (raising `DqlError`) and compile it. Items get `with_item_defaults`."""
    notes: dict[str, str] = {}
    entity_defaults: Mapping[str, Any] = {}
    if resource == TriggerResource.ITEM:
        filter, notes = _item_filter(filter, where)
        entity_defaults = ITEM_ENTITY_DEFAULTS
    compiler = _Compiler(where, entity_defaults, notes)
    root = compiler.root(filter)
    equalities: dict[str, Any] = {}
    _collect_equalities(root, equalities)
    return Matcher(MappingProxyType(equalities), frozenset(compiler.fields), root)


def with_item_defaults(filter: Mapping[str, Any] | None) -> dict[str, Any]:
    """The filter as `Filters(use_defaults=True)` sends it for items: `{"hidden": False}` and
    `{"type": "file"}` appended to `$and` unless the filter mentions that field anywhere, and each
    `filename` value of `$eq $ne $in $nin` without a trailing `*` or a file extension made
    recursive ("/dir1" or "/dir1/" -> "/dir1/**"), anywhere in the tree. Raises `DqlError`."""
    return _item_filter(filter, "filter")[0]


def _item_filter(
    filter: Mapping[str, Any] | None, where: str
) -> tuple[dict[str, Any], dict[str, str]]:
    probe = _Compiler(where, {}, {})
    probe.root(filter)  # validates with the paths the user wrote
    out = _recursive_filenames(filter or {})
    added = [(k, v) for k, v in _ITEM_FILTER_DEFAULTS if k not in probe.fields]
    if not added:
        return out, {}
    existing = list(out.get("$and", []))
    out["$and"] = existing + [{k: v} for k, v in added]
    notes = {
        f"{where}.$and[{len(existing) + i}]": f" (an item default; filter on {k} to change it)"
        for i, (k, _) in enumerate(added)
    }
    return out, notes


def _recursive_filenames(clause: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in clause.items():
        if key in ("$and", "$or"):
            out[key] = [_recursive_filenames(c) for c in value]
        elif key == "filename" and isinstance(value, Mapping):
            out[key] = {
                op: _recursive_value(v) if op in _EQUALITY_OPS else v for op, v in value.items()
            }
        else:
            out[key] = _recursive_value(value) if key == "filename" else value
    return out


def _recursive_value(value: Any) -> Any:
    if isinstance(value, list):
        return [_recursive_value(v) for v in value]
    if not isinstance(value, str) or value.endswith("*") or posixpath.splitext(value)[1]:
        return value
    return value + ("**" if value.endswith("/") else "/**")


class _Compiler:
    """Validates and compiles one filter; counts nodes and collects the fields it mentions."""

    def __init__(self, where: str, entity_defaults: Mapping[str, Any], notes: Mapping[str, str]):
        self.where = where
        self.entity_defaults = entity_defaults
        self.notes = notes
        self.nodes = 0
        self.fields: set[str] = set()

    def root(self, filter: Mapping[str, Any] | None) -> _Node:
        return self.clause({} if filter is None else filter, self.where, 1)

    def clause(self, obj: Any, where: str, depth: int) -> _Node:
        if not isinstance(obj, Mapping):
            raise DqlError(where, f"must be an object, not {_kind(obj)}")
        if depth > MAX_DEPTH:
            raise DqlError(where, f"is nested deeper than {MAX_DEPTH} levels")
        self._count()
        parts: list[_Node] = []
        for key, value in obj.items():
            if not isinstance(key, str):
                raise DqlError(where, f"keys must be strings, not {_kind(key)}")
            if key in ("$and", "$or"):
                parts.append(self.group(key, value, f"{where}.{key}", depth))
            elif key.startswith("$"):
                raise DqlError(f"{where}.{key}", f"{_unknown(key)}; only $and and $or join clauses")
            else:
                parts.extend(self.field(key, value, where))
        return _all_of(parts)

    def group(self, key: str, value: Any, where: str, depth: int) -> _Node:
        if not isinstance(value, list) or not value:
            raise DqlError(where, f"{key} needs a non-empty list of objects, not {_kind(value)}")
        parts = [self.clause(c, f"{where}[{i}]", depth + 1) for i, c in enumerate(value)]
        return _all_of(parts) if key == "$and" else _any_of(parts, where)

    def field(self, name: str, value: Any, where: str) -> list[_Node]:
        path = f"{where}.{name}"
        if "" in name.split("."):
            raise DqlError(path, "a field name needs a non-empty part between dots")
        self.fields.add(name)
        if not isinstance(value, Mapping):
            return [self.leaf(name, "$eq", value, where, path)]
        if not value:
            raise DqlError(path, "needs at least one operator, such as $eq")
        return [self.leaf(name, op, v, where, f"{path}.{op}") for op, v in value.items()]

    def leaf(self, name: str, op: Any, value: Any, where: str, path: str) -> _Leaf:
        self._count()
        if not isinstance(op, str) or op not in _OPERATORS:
            raise DqlError(path, _unknown_field_op(name, op))
        check = _check(op, value, path)
        keys = tuple(name.split("."))
        default = self.entity_defaults.get(name, _MISSING) if len(keys) == 1 else _MISSING
        note = self.notes.get(where, "")
        test = _fused_equality(keys, default, op, value) or _fuse(keys, default, check)
        return _Leaf(test, where, name, keys, op, value, default, note)

    def _count(self) -> None:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise DqlError(self.where, f"has more than {MAX_NODES} clauses and conditions")


def _unknown(op: str) -> str:
    if op == "$match":
        return "$match is not supported"
    return f"unknown operator {op!r}"


def _unknown_field_op(name: str, op: Any) -> str:
    if not isinstance(op, str):
        return f"operator names are strings, not {_kind(op)}"
    if op.startswith("$"):
        return f"{_unknown(op)}; use one of {', '.join(_OPERATORS)}"
    return (
        f"unknown operator {op!r}; operators start with $ "
        f"(for a nested field use a dotted path such as '{name}.{op}')"
    )


def _check(op: str, value: Any, path: str) -> Check:
    """The value test for one operator, after checking its argument."""
    if op in ("$eq", "$ne"):
        what = f"{op} needs" if path.endswith(op) else "an equality needs"
        wanted = _scalar(value, path, what)
        eq = _equals_check(wanted)
        return eq if op == "$eq" else _negate(eq)
    if op in ("$in", "$nin"):
        one_of = _lift(_one_of(_scalars(value, path, op)))
        return one_of if op == "$in" else _negate(one_of)
    if op == "$exists":
        if not isinstance(value, bool):
            raise DqlError(path, f"$exists needs true or false, not {_kind(value)}")
        return (lambda x: x is not _MISSING) if value else (lambda x: x is _MISSING)
    return _lift(_compare(op, _comparable(value, path, op)))


def _scalar(value: Any, path: str, what: str) -> Any:
    if value is None or isinstance(value, bool | int | datetime):
        return value
    if isinstance(value, float):
        if value != value:
            raise DqlError(path, f"{what} a comparable number, not NaN")
        return value
    if isinstance(value, str):
        if "*" in value and len(value) > MAX_GLOB_CHARS:
            raise DqlError(path, f"a wildcard pattern may have at most {MAX_GLOB_CHARS} characters")
        return value
    hint = "; use $in to match one of several values" if isinstance(value, list) else ""
    raise DqlError(
        path, f"{what} a string, a number, a boolean, a date or null, not {_kind(value)}{hint}"
    )


def _scalars(value: Any, path: str, op: str) -> list[Any]:
    if not isinstance(value, list):
        raise DqlError(path, f"{op} needs a list, not {_kind(value)}")
    if len(value) > MAX_IN_VALUES:
        raise DqlError(path, f"{op} allows at most {MAX_IN_VALUES} values, not {len(value)}")
    return [_scalar(v, f"{path}[{i}]", "each value needs to be") for i, v in enumerate(value)]


def _comparable(value: Any, path: str, op: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float | str | datetime):
        raise DqlError(path, f"{op} needs a number, a string or a date, not {_kind(value)}")
    if value != value:
        raise DqlError(path, f"{op} needs a comparable number, not NaN")
    return value


# Value tests. `x` is the field's value or _MISSING; a test never raises on JSON-like values.


def _equals_check(wanted: Any) -> Check:
    """Equality with the array rule; the common string and boolean cases skip a call layer."""
    if isinstance(wanted, str) and "*" not in wanted:
        return lambda x: x == wanted or (x.__class__ is list and wanted in x)
    if wanted is True or wanted is False:
        return lambda x: x is wanted or (x.__class__ is list and any(y is wanted for y in x))
    if isinstance(wanted, str):
        glob = _compile_glob(wanted)

        def check(x: Any) -> bool:
            if isinstance(x, str):
                return glob(x)
            return x.__class__ is list and any(isinstance(y, str) and glob(y) for y in x)

        return check
    return _lift(_equals(wanted))


def _equals(wanted: Any) -> Check:
    """True for one value (not a list's elements) equal to `wanted`: null, a date or a number."""
    if wanted is None:
        return lambda x: x is None or x is _MISSING
    if isinstance(wanted, datetime):
        return lambda x: isinstance(x, datetime) and x == wanted
    return lambda x: x.__class__ is not bool and isinstance(x, int | float) and x == wanted


def _is_glob(value: Any) -> bool:
    return isinstance(value, str) and "*" in value


def _typed_key(x: Any) -> tuple[int, Any] | None:
    """A hashable key under which equal values meet and bools never meet numbers."""
    if x is None or x is True or x is False:
        return (0, x)
    if isinstance(x, int | float):
        return (1, x)
    if isinstance(x, str | datetime):
        return (2, x)
    return None


def _one_of(values: Sequence[Any]) -> Check:
    globs = tuple(_compile_glob(v) for v in values if _is_glob(v))
    keys = frozenset(_typed_key(v) for v in values if not _is_glob(v))
    with_null = None in values

    def check(x: Any) -> bool:
        if x is _MISSING:
            return with_null
        if _typed_key(x) in keys:
            return True
        return isinstance(x, str) and any(glob(x) for glob in globs)

    return check


def _compare(op: str, wanted: Any) -> Check:
    cmp = _COMPARE[op]
    if isinstance(wanted, str):
        return lambda x: isinstance(x, str) and cmp(x, wanted)
    if isinstance(wanted, datetime):
        naive = wanted.utcoffset() is None
        return lambda x: (
            isinstance(x, datetime) and (x.utcoffset() is None) == naive and cmp(x, wanted)
        )
    return lambda x: x.__class__ is not bool and isinstance(x, int | float) and cmp(x, wanted)


def _lift(one: Check) -> Check:
    """MongoDB's array rule: a list value passes when it, or any of its elements, passes."""

    def check(x: Any) -> bool:
        if one(x):
            return True
        if x.__class__ is list:
            for element in x:
                if one(element):
                    return True
        return False

    return check


def _negate(check: Check) -> Check:
    return lambda x: not check(x)


MISSING: Final = _MISSING  # what `field_value` answers for a field the entity lacks


def field_value(entity: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted path as filters read it (MISSING when absent)."""
    return _walk(entity, tuple(dotted.split(".")))


def _walk(entity: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    value: Any = entity
    for key in keys:
        if value.__class__ is dict or isinstance(value, Mapping):
            value = value.get(key, _MISSING)
        else:
            return _MISSING
    return value


def _fused_equality(keys: tuple[str, ...], default: Any, op: str, wanted: Any) -> Test | None:
    """One closure for the hottest leaf: a top-level field equal to a plain string or a bool."""
    if op != "$eq" or len(keys) != 1:
        return None
    key = keys[0]
    if isinstance(wanted, str) and "*" not in wanted:
        return lambda e: (
            (x := e.get(key, default)) == wanted or (x.__class__ is list and wanted in x)
        )
    if wanted is True or wanted is False:
        return lambda e: (
            (x := e.get(key, default)) is wanted
            or (x.__class__ is list and any(y is wanted for y in x))
        )
    return None


def _fuse(keys: tuple[str, ...], default: Any, check: Check) -> Test:
    """The field lookup and the value test in one closure (the walk is inlined for speed)."""
    if len(keys) == 1:
        key = keys[0]
        return lambda e: check(e.get(key, default))

    def test(entity: Mapping[str, Any]) -> bool:
        value: Any = entity
        for key in keys:
            if value.__class__ is dict or isinstance(value, Mapping):
                value = value.get(key, _MISSING)
            else:
                return check(_MISSING)
        return check(value)

    return test


# Globs.


def _compile_glob(pattern: str) -> Callable[[str], bool]:
    """An anchored matcher for `*` (no `/`) and `**` (anything) that never backtracks badly.

    A plain translation to `[^/]*` and `.*` is exponential on texts like "aaaa…". Instead the
    pattern is split at `**` into segments holding only single `*`. Inside a segment, taking each
    literal piece at its earliest reachable place is optimal, and across `**` the leftmost start
    of a segment also gives its earliest end, which is optimal for whatever follows. So every
    piece and every inner segment is an atomic group: the regex commits to the first way it
    finds and only the last segment's start is searched. Cost: O(len(text) ** 2) at worst.
    """
    segments = _STAR_RUN.split(pattern)
    simple = _simple_glob(segments)
    if simple is not None:
        return simple
    body = _pieces(segments[0], last=len(segments) == 1)
    for segment in segments[1:-1]:
        body += f"(?>.*?{_pieces(segment, last=False)})"
    if len(segments) > 1:
        body += ".*?" + _pieces(segments[-1], last=True)
    regex = re.compile(body + r"\Z", re.DOTALL)
    return lambda s: regex.match(s) is not None


def _pieces(segment: str, *, last: bool) -> str:
    """`a*b*c` -> `a(?>[^/]*?b)(?>[^/]*?c)`; the last piece of the pattern stays greedy."""
    pieces = [re.escape(p) for p in segment.split("*")]
    inner = pieces[1:-1] if last else pieces[1:]
    body = pieces[0] + "".join(f"(?>[^/]*?{p})" for p in inner)
    return body + (f"[^/]*{pieces[-1]}" if last and len(pieces) > 1 else "")


def _simple_glob(segments: list[str]) -> Callable[[str], bool] | None:
    """String methods for the commonest shapes: `p*`, `p**`, `*s`, `**s`."""
    head, tail = segments[0], segments[-1]
    if len(segments) == 2 and "*" not in head + tail:
        if not tail:
            return lambda s: s.startswith(head)
        if not head:
            return lambda s: s.endswith(tail)
    if len(segments) == 1 and head.count("*") == 1:
        prefix, suffix = head.split("*")
        n, k = len(prefix), len(suffix)
        if not suffix:
            return lambda s: s[:n] == prefix and "/" not in s[n:]
        if not prefix:
            return lambda s: s[-k:] == suffix and "/" not in s[:-k]
    return None


# The tree.


@dataclass(frozen=True, eq=False)
class _Leaf:
    test: Test
    where: str
    field: str
    keys: tuple[str, ...]
    op: str
    wanted: Any
    default: Any
    note: str

    def explain(self, entity: Mapping[str, Any]) -> str | None:
        if self.test(entity):
            return None
        actual = _walk(entity, self.keys)
        if actual is not _MISSING:
            shown = _show(actual)
        elif self.default is _MISSING:
            shown = "missing"
        else:
            shown = f"missing (defaults to {_show(self.default)})"
        if self.op == "$eq" and actual is not _MISSING:
            why = f"{shown}, not {_show(self.wanted)}"
        else:
            why = f"{shown}, wanted {_want(self.op, self.wanted)}"
        return f"{self.where}: {self.field} is {why}{self.note}"


@dataclass(frozen=True, eq=False)
class _All:
    test: Test
    parts: tuple[_Node, ...]

    def explain(self, entity: Mapping[str, Any]) -> str | None:
        for part in self.parts:
            why = part.explain(entity)
            if why is not None:
                return why
        return None


@dataclass(frozen=True, eq=False)
class _Any:
    test: Test
    where: str
    parts: tuple[_Node, ...]

    def explain(self, entity: Mapping[str, Any]) -> str | None:
        if self.test(entity):
            return None
        whys = "; ".join(str(part.explain(entity)) for part in self.parts)
        return f"{self.where}: no alternative matched ({whys})"


def _all_of(parts: list[_Node]) -> _Node:
    flat: list[_Node] = []
    for part in parts:
        flat.extend(part.parts if isinstance(part, _All) else (part,))
    if len(flat) == 1:
        return flat[0]
    tests = tuple(part.test for part in flat)
    if len(tests) == 2:
        a, b = tests
        return _All(lambda e: a(e) and b(e), tuple(flat))

    def test(entity: Mapping[str, Any]) -> bool:
        for t in tests:  # noqa: SIM110 - a plain loop beats all() over a generator here
            if not t(entity):
                return False
        return True

    return _All(test, tuple(flat))


def _any_of(parts: list[_Node], where: str) -> _Node:
    if len(parts) == 1:
        return parts[0]
    tests = tuple(part.test for part in parts)

    def test(entity: Mapping[str, Any]) -> bool:
        for t in tests:  # noqa: SIM110 - a plain loop beats any() over a generator here
            if t(entity):
                return True
        return False

    return _Any(test, where, tuple(parts))


def _collect_equalities(node: _Node, out: dict[str, Any]) -> None:
    if isinstance(node, _All):
        for part in node.parts:
            _collect_equalities(part, out)
    elif isinstance(node, _Leaf) and node.op == "$eq" and not _is_glob(node.wanted):
        out.setdefault(node.field, node.wanted)


# Words for users.


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime):
        return "a date"
    if isinstance(value, list | tuple):
        return "a list" if value else "an empty list"
    return "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"


def _show(value: Any, nested: bool = False) -> str:
    if value is None or value is True or value is False:
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, str):
        return repr(value if len(value) <= 80 else value[:77] + "...")
    if isinstance(value, int) and value.bit_length() > 64:
        return "a very large number"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list):
        if nested:
            return "[...]"
        more = ", ..." if len(value) > 5 else ""
        return "[" + ", ".join(_show(v, nested=True) for v in value[:5]) + more + "]"
    return "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"


def _want(op: str, wanted: Any) -> str:
    if op == "$exists":
        return "it to exist" if wanted else "it to be missing"
    if op in _WANT_SIGN:
        return f"{_WANT_SIGN[op]} {_show(wanted)}"
    prefix = {"$eq": "", "$ne": "anything but ", "$in": "one of ", "$nin": "none of "}[op]
    return prefix + _show(wanted)
