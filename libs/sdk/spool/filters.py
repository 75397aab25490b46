"""dtlpy's `Filters`: build a DQL query in Python instead of writing Mongo-style JSON.

`Filters(field="dir", values="/input")` then `.add(...)` builds the same JSON as dtlpy's
`prepare()` (reference §5): conditions joined by `$and` (the default method) or `$or`, each
`{field: value}` or `{field: {"$<op>": value}}`, and, with `use_defaults=True`, the resource's
default conditions first (items: `hidden: false`, `type: file`). A trigger stores
`prepare()["filter"]`. Only what Spool's DQL evaluates is offered: the operators `$eq $ne $gt
$gte $lt $lte $in $nin $exists` (no `$match`), no joins and no sorting (a trigger filter
matches one entity at a time). `prepare()` checks the filter with the gateway's own DQL
compiler, so a bad one fails here with the path at fault.

Items' `filename` values without a `*` or an extension become recursive (`/dir` matches
`/dir/**`) on the server, as dtlpy does in `add`; the SDK leaves that to the server.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from spool.errors import BadRequest, Detail
from spool_common.dql import DqlError, compile_filter


class FiltersResource(StrEnum):
    ITEM = "items"
    ANNOTATION = "annotations"
    DATASET = "datasets"
    TASK = "tasks"
    ASSIGNMENT = "assignments"
    MODEL = "models"
    EXECUTION = "executions"
    SERVICE = "services"
    PACKAGE = "packages"
    TRIGGER = "triggers"


class FiltersOperations(StrEnum):
    EQUAL = "eq"
    NOT_EQUAL = "ne"
    GREATER_THAN = "gt"
    GREATER_THAN_OR_EQUAL = "gte"
    LESS_THAN = "lt"
    LESS_THAN_OR_EQUAL = "lte"
    IN = "in"
    NIN = "nin"
    EXISTS = "exists"


class FiltersMethod(StrEnum):
    AND = "and"
    OR = "or"


# dtlpy's AnnotationType values except "note": what an annotation filter matches by default.
ANNOTATION_TYPES = (
    "box", "cube", "cube_3d", "class", "comparison", "ellipse", "point", "segment", "polyline",
    "pose", "binary", "subtitle", "text_mark", "gis", "ref_semantic_3d", "polyline_3d", "text",
    "ref_image",
)  # fmt: skip


@dataclass(frozen=True)
class Condition:
    """One leaf: `{field: values}` (operator None) or `{field: {"$op": values}}`."""

    field: str
    values: Any
    operator: FiltersOperations | None = None

    def to_json(self) -> dict[str, Any]:
        values = list(self.values) if isinstance(self.values, list | tuple) else self.values
        if self.operator is None:
            return {self.field: values}
        return {self.field: {f"${self.operator.value}": values}}


_R, _O = FiltersResource, FiltersOperations
DEFAULTS: Mapping[FiltersResource, tuple[Condition, ...]] = {
    _R.ITEM: (Condition("hidden", False), Condition("type", "file")),
    _R.ANNOTATION: (Condition("type", ANNOTATION_TYPES, _O.IN),),
    _R.SERVICE: (Condition("global", True, _O.NOT_EQUAL),),
    _R.PACKAGE: (Condition("global", True, _O.NOT_EQUAL),),
}
# Fields whose AND condition replaces an earlier one (so `add("hidden", True)` overrides the
# default instead of contradicting it).
UNIQUE_FIELDS: Mapping[FiltersResource, frozenset[str]] = {
    _R.ITEM: frozenset({"hidden", "type"}),
    _R.ANNOTATION: frozenset({"type"}),
    _R.SERVICE: frozenset({"global"}),
    _R.PACKAGE: frozenset({"global"}),
}
PAGE_SIZE = 1000
EXECUTIONS_PAGE_SIZE = 100


def _operator(value: FiltersOperations | str | None) -> FiltersOperations | None:
    if value is None:
        return None
    try:
        return FiltersOperations(str(value).removeprefix("$"))
    except ValueError:
        names = ", ".join(op.value for op in FiltersOperations)
        raise BadRequest(
            f"unknown filter operator {value!r}",
            details=(Detail("operator", f"choose one of: {names}"),),
        ) from None


class Filters:
    """A DQL query on `resource` (items by default); see the module docstring."""

    def __init__(
        self,
        field: str | None = None,
        values: Any = None,
        operator: FiltersOperations | str | None = None,
        method: FiltersMethod | str | None = None,
        custom_filter: Mapping[str, Any] | None = None,
        resource: FiltersResource | str = FiltersResource.ITEM,
        use_defaults: bool = True,
        page_size: int | None = None,
    ) -> None:
        self.resource = FiltersResource(resource)
        self.use_defaults = use_defaults
        self.custom_filter = dict(custom_filter) if custom_filter is not None else None
        self.page = 0
        default_size = EXECUTIONS_PAGE_SIZE if self.resource is _R.EXECUTION else PAGE_SIZE
        self.page_size = page_size or default_size
        self.and_filter_list: list[Condition] = []
        self.or_filter_list: list[Condition] = []
        if use_defaults:
            self.and_filter_list.extend(DEFAULTS.get(self.resource, ()))
        if field is not None:
            self.add(field, values, operator, method)

    def add(
        self,
        field: str,
        values: Any,
        operator: FiltersOperations | str | None = None,
        method: FiltersMethod | str | None = None,
    ) -> Filters:
        """Add a condition (AND by default); returns the filters, for chaining."""
        condition = Condition(field, values, _operator(operator))
        if FiltersMethod(method or FiltersMethod.AND) is FiltersMethod.OR:
            self.or_filter_list.append(condition)
            return self
        if field in UNIQUE_FIELDS.get(self.resource, frozenset()):
            self.and_filter_list = [c for c in self.and_filter_list if c.field != field]
        self.and_filter_list.append(condition)
        return self

    def pop(self, field: str) -> None:
        """Remove every condition on `field` (defaults included)."""
        self.and_filter_list = [c for c in self.and_filter_list if c.field != field]
        self.or_filter_list = [c for c in self.or_filter_list if c.field != field]

    def has_field(self, field: str) -> bool:
        return any(c.field == field for c in (*self.and_filter_list, *self.or_filter_list))

    @property
    def filter(self) -> dict[str, Any]:
        """The DQL filter object (what a trigger stores)."""
        if self.custom_filter is not None:
            inner = self.custom_filter.get("filter", self.custom_filter)
            return dict(inner)
        built: dict[str, Any] = {}
        if self.or_filter_list:
            built["$or"] = [c.to_json() for c in self.or_filter_list]
        if self.and_filter_list:
            built["$and"] = [c.to_json() for c in self.and_filter_list]
        return built

    def prepare(self, query_only: bool = False) -> dict[str, Any]:
        """The query JSON: `{"filter", "page", "pageSize", "resource"}` (only `filter` when
        `query_only`). Raises `BadRequest` if Spool's DQL would refuse the filter."""
        query = self.filter
        try:
            compile_filter(query)
        except DqlError as e:
            raise BadRequest(e.reason, details=(Detail(e.path, e.reason),)) from None
        if query_only:
            return {"filter": query}
        return {
            "filter": query,
            "page": self.page,
            "pageSize": self.page_size,
            "resource": self.resource.value,
        }

    def __repr__(self) -> str:
        return f"Filters(resource={self.resource.value!r}, filter={self.filter!r})"
