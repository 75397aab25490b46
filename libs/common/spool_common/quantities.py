"""Kubernetes resource quantities: CPU in cores, memory in bytes, GPUs as a count.

Pure: no I/O. Accepts what a user writes in `requests` / `limits` ("500m", "2", "1.5Gi",
"1G"), and formats values back to the canonical strings a pod spec carries. Kubernetes also
allows exponent forms ("1e9") and a "m" suffix on memory; Spool refuses both, as a typo more
often than an intent.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from types import MappingProxyType
from typing import Final

from spool_common.errors import ValidationFailure

_QUANTITY: Final = re.compile(r"(?P<sign>[+-]?)(?P<number>[0-9.]+)(?P<suffix>[A-Za-z]*)")
_NUMBER: Final = re.compile(r"[0-9]+(?:\.[0-9]*)?|\.[0-9]+")

_CPU_EXAMPLES: Final = 'cores such as "2" or "0.5", or millicores such as "500m"'
_MIN_CPU: Final = Fraction(1, 1000)

_BINARY: Final[Mapping[str, int]] = MappingProxyType(
    {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
)
_DECIMAL: Final[Mapping[str, int]] = MappingProxyType(
    {"k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}
)
_MEMORY_SUFFIXES: Final[Mapping[str, int]] = MappingProxyType({**_BINARY, **_DECIMAL})
_MEMORY_EXAMPLES: Final = 'bytes such as "512Mi", "1.5Gi" or "1G", or a whole number of bytes'


def parse_cpu(value: str | int | float, *, field: str) -> float:
    """Cores in `value`: `"500m"` -> 0.5, `"2"` -> 2.0, `1.5` -> 1.5. At least 1m."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _fail(field, f"must be {_CPU_EXAMPLES}")
    if isinstance(value, str):
        cores = _cpu_from_text(value, field=field)
    elif isinstance(value, float) and not math.isfinite(value):
        raise _fail(field, f"must be a finite number of cores, not {value}")
    else:
        cores = Fraction(value)
    if cores <= 0:
        raise _fail(field, f"must be more than 0, not {value}")
    if cores < _MIN_CPU:
        raise _fail(field, f'{value} is less than "1m" (0.001 cores), the smallest CPU share')
    return float(cores)


def _cpu_from_text(text: str, *, field: str) -> Fraction:
    number, suffix = _split(text.strip(), field=field, examples=_CPU_EXAMPLES)
    if suffix == "":
        return number
    if suffix == "m":
        return number / 1000
    raise _fail(field, f'unknown CPU unit "{suffix}" in "{text}"; write {_CPU_EXAMPLES}')


def parse_memory(value: str | int, *, field: str) -> int:
    """Bytes in `value`: `"1Gi"` -> 2**30, `"1G"` -> 10**9, `"1.5Gi"`, `1024`; more than 0.

    A fraction of a byte is rounded up, as Kubernetes does.
    """
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _fail(field, f"must be {_MEMORY_EXAMPLES}")
    size = Fraction(value) if isinstance(value, int) else _memory_from_text(value, field=field)
    if size <= 0:
        raise _fail(field, f"must be more than 0, not {value}")
    return math.ceil(size)


def _memory_from_text(text: str, *, field: str) -> Fraction:
    number, suffix = _split(text.strip(), field=field, examples=_MEMORY_EXAMPLES)
    if suffix == "":
        return number
    scale = _MEMORY_SUFFIXES.get(suffix)
    if scale is None:
        raise _fail(field, f'unknown memory unit "{suffix}" in "{text}"; {_memory_hint(suffix)}')
    return number * scale


def _memory_hint(suffix: str) -> str:
    if suffix == "m":
        return 'in Kubernetes "m" means thousandths of a byte; use M or Mi'
    first = suffix[0].upper()
    decimal = "k" if first == "K" else first
    if decimal in _DECIMAL:
        return f"use {decimal} or {first}i"
    return "use one of " + ", ".join(_MEMORY_SUFFIXES)


def parse_gpus(value: int | str, *, field: str) -> int:
    """A whole number of GPUs, 0 or more: `1`, `"2"`."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _fail(field, f"must be a whole number of GPUs, such as 1, not {value!r}")
    text = str(value).strip()
    if re.fullmatch(r"[+-]?[0-9]+", text) is None:
        raise _fail(field, f'must be a whole number of GPUs, such as 1, not "{value}"')
    count = int(text)
    if count < 0:
        raise _fail(field, f"must be 0 or more, not {count}")
    return count


def format_cpu(cores: float) -> str:
    """The canonical Kubernetes string for `cores`: 0.5 -> "500m", 2 -> "2".

    A fraction of a millicore is rounded up, as Kubernetes does: 1.4125 -> "1413m". The float is
    read as its shortest decimal form, so 0.1 is exactly "100m" despite binary rounding.
    """
    if not math.isfinite(cores) or cores < 0:
        raise ValueError(f"cannot format {cores} cores")
    millicores = math.ceil(Fraction(repr(float(cores))) * 1000)
    if millicores % 1000 == 0:
        return str(millicores // 1000)
    return f"{millicores}m"


def format_memory(size: int) -> str:
    """The shortest exact Kubernetes string for `size` bytes: 2**30 -> "1Gi", 15*10**8 -> "1500M".

    Binary and decimal forms are both tried; on a tie the binary one wins.
    """
    if size < 0:
        raise ValueError(f"cannot format {size} bytes")
    candidates = [_largest(size, _BINARY), _largest(size, _DECIMAL), str(size)]
    return min(candidates, key=len)


def _largest(size: int, suffixes: Mapping[str, int]) -> str:
    best = str(size)
    for suffix, scale in suffixes.items():
        if size and size % scale == 0:
            best = f"{size // scale}{suffix}"
    return best


def _split(text: str, *, field: str, examples: str) -> tuple[Fraction, str]:
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise _fail(field, f'"{text}" is not a quantity; write {examples}')
    if _NUMBER.fullmatch(match["number"]) is None:
        raise _fail(field, f'"{match["number"]}" in "{text}" is not a number')
    number = Fraction(match["number"])
    return (-number if match["sign"] == "-" else number), match["suffix"]


def _fail(field: str, reason: str) -> ValidationFailure:
    return ValidationFailure.of(field, reason)
