"""Validation errors a user sees: each one names a field and says what is wrong with it.

The gateway turns a `ValidationFailure` into HTTP 400
`{"error": "invalid_request", "message": str(failure), "details": failure.details()}`, so every
`reason` is written for the person who sent the request.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class FieldError:
    """One problem. `field` is a dotted path such as `modules[0].functions[1].input[0].type`."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ValidationFailure(Exception):
    """The request is invalid. Holds at least one `FieldError`; `str()` lists them all."""

    errors: tuple[FieldError, ...]

    def __init__(self, errors: FieldError | Iterable[FieldError]) -> None:
        collected = (errors,) if isinstance(errors, FieldError) else tuple(errors)
        if not collected:
            raise ValueError("a ValidationFailure needs at least one FieldError")
        self.errors = collected
        super().__init__(self.message)

    @classmethod
    def of(cls, field: str, reason: str) -> ValidationFailure:
        return cls(FieldError(field, reason))

    @property
    def message(self) -> str:
        if len(self.errors) == 1:
            return str(self.errors[0])
        return f"{len(self.errors)} problems: " + "; ".join(str(e) for e in self.errors)

    def details(self) -> list[dict[str, str]]:
        return [{"field": e.field, "reason": e.reason} for e in self.errors]

    def __reduce__(self) -> tuple[type[ValidationFailure], tuple[tuple[FieldError, ...]]]:
        return (type(self), (self.errors,))


def raise_if_any(errors: Iterable[FieldError]) -> None:
    """Raise one `ValidationFailure` holding `errors`, if there are any."""
    collected = tuple(errors)
    if collected:
        raise ValidationFailure(collected)


# Parts of a pydantic error location that are not fields: where the value came from, and the
# tags of validators and discriminated unions.
_NOT_FIELDS = frozenset(
    {"body", "query", "path", "header", "function-after", "rabbitmq", "rps", "[key]"}
)


def from_pydantic(error: Any, prefix: str = "") -> ValidationFailure:
    """A pydantic ValidationError as a ValidationFailure with dotted camelCase paths
    (`runtime.autoscaler.minReplicas`, `volumes[0].mountPath`), under `prefix`."""
    errors = []
    for item in error.errors():
        path = prefix
        for part in item["loc"]:
            if isinstance(part, int):
                path += f"[{part}]"
            elif part not in _NOT_FIELDS:
                path = f"{path}.{part}" if path else str(part)
        reason = str(item["msg"]).removeprefix("Value error, ")
        errors.append(FieldError(path or prefix or "body", reason))
    return ValidationFailure(errors)
