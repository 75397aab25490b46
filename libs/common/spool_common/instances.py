"""The instance catalog: what each `podType` gives one replica's runner container.

Pure data. Names follow Dataloop's `InstanceCatalog` (regular, high memory, NVIDIA T4 GPU).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from spool_common.errors import ValidationFailure

GB: Final = 10**9
NVIDIA_GPU: Final = "nvidia.com/gpu"
DEFAULT_INSTANCE: Final = "regular-s"  # Dataloop's default pod type


@dataclass(frozen=True)
class InstanceSpec:
    name: str
    cpu: float  # cores
    memory_bytes: int
    gpus: int
    gpu_type: str | None  # the Kubernetes extended resource, e.g. "nvidia.com/gpu"


# CPU and RAM are the "runner CPU" and "runner ram" columns of Dataloop's instance table.
# RAM is read as decimal GB (10**9 bytes), not GiB: the figures follow 3.53125 * size - 0.15
# (regular) and 6.26875 * size - 0.15 (highmem) for sizes 1, 2, 4, 8, which is no cleaner in
# GiB, and in GiB they would not be whole bytes (3.38125 * 2**30 is not an integer), whereas
# every one of them is a whole number of bytes in GB. The byte counts are written out exactly.
_CPU_ONLY: Final = (
    InstanceSpec("regular-xs", 0.45625, 3_381_250_000, 0, None),
    InstanceSpec("regular-s", 1.4125, 6_912_500_000, 0, None),
    InstanceSpec("regular-m", 3.325, 13_975_000_000, 0, None),
    InstanceSpec("regular-l", 7.15, 28_100_000_000, 0, None),
    InstanceSpec("highmem-xs", 0.45625, 6_118_750_000, 0, None),
    InstanceSpec("highmem-s", 1.4125, 12_387_500_000, 0, None),
    InstanceSpec("highmem-m", 3.325, 24_925_000_000, 0, None),
    InstanceSpec("highmem-l", 7.15, 50_000_000_000, 0, None),
)

# Not in the seed table (it still lists the removed gpu-k80-*): these figures are Spool's choice
# for one NVIDIA T4 on a 4-vCPU / 16 GB and an 8-vCPU / 32 GB node, after the node's own share.
_GPU: Final = (
    InstanceSpec("gpu-t4", 3.5, 14 * GB, 1, NVIDIA_GPU),
    InstanceSpec("gpu-t4-m", 7.5, 28 * GB, 1, NVIDIA_GPU),
)

INSTANCES: Final[Mapping[str, InstanceSpec]] = MappingProxyType(
    {spec.name: spec for spec in (*_CPU_ONLY, *_GPU)}
)

# Dataloop removed these in dtlpy 1.106.5; its documentation still lists them.
_REMOVED: Final[Mapping[str, str]] = MappingProxyType(
    {"gpu-k80-s": "gpu-t4", "gpu-k80-m": "gpu-t4-m"}
)


def instance(name: str, *, field: str) -> InstanceSpec:
    """The spec for `name`, or a `ValidationFailure` on `field` listing the valid names."""
    text = name if isinstance(name, str) else repr(name)
    spec = INSTANCES.get(text)
    if spec is not None:
        return spec
    valid = ", ".join(INSTANCES)
    if text in _REMOVED:
        reason = f'"{name}" is no longer offered; use "{_REMOVED[text]}" (valid: {valid})'
    else:
        close = difflib.get_close_matches(text.lower(), INSTANCES, n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        reason = f'unknown instance type "{name}"; {hint}choose one of: {valid}'
    raise ValidationFailure.of(field, reason)
