"""Pure rules for project secrets: which names and values are acceptable, and which of a
service's secrets are missing. A reason never repeats a value: values are secret."""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence

from spool_common.errors import FieldError

NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
MAX_NAME = 128
MAX_VALUE_BYTES = 64 * 1024
# The agent's own variables (SPOOL_*) never reach user code; these are set by the runner.
RESERVED_PREFIX = "SPOOL_"
RESERVED = frozenset({"PATH", "HOME", "PYTHONPATH", "PYTHONHOME", "PYTHONUNBUFFERED"})


def name_errors(name: str, field: str = "name") -> list[FieldError]:
    """A secret is an environment variable of the user's code: its name must be one."""
    if not NAME.fullmatch(name) or len(name) > MAX_NAME:
        return [
            FieldError(
                field,
                f"must match [A-Z_][A-Z0-9_]* (an environment variable name) and be at most "
                f"{MAX_NAME} characters",
            )
        ]
    if name.startswith(RESERVED_PREFIX) or name in RESERVED:
        return [FieldError(field, f"'{name}' is reserved for the platform")]
    return []


def value_errors(value: str, field: str = "value") -> list[FieldError]:
    size = len(value.encode())
    if size == 0:
        return [FieldError(field, "must not be empty")]
    if size > MAX_VALUE_BYTES:
        return [FieldError(field, f"is {size} bytes; at most {MAX_VALUE_BYTES} are accepted")]
    if "\0" in value:
        return [FieldError(field, "must not contain NUL characters (environment variables)")]
    return []


def missing_secrets(requested: Sequence[str], existing: Collection[str]) -> list[FieldError]:
    """Each of a service's `secrets` that its project does not have, as `secrets[i]`."""
    return [
        FieldError(f"secrets[{i}]", f"the project has no secret '{name}'")
        for i, name in enumerate(requested)
        if name not in existing
    ]
