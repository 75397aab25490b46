"""Table tests for the instance catalog."""

from __future__ import annotations

import pytest

from spool_common.errors import ValidationFailure
from spool_common.instances import DEFAULT_INSTANCE, INSTANCES, InstanceSpec, instance
from spool_common.quantities import format_cpu, format_memory

FIELD = "runtime.podType"


@pytest.mark.parametrize(
    ("name", "cpu", "memory_bytes", "gpus", "gpu_type"),
    [
        pytest.param("regular-xs", 0.45625, 3_381_250_000, 0, None, id="regular-xs"),
        pytest.param("regular-s", 1.4125, 6_912_500_000, 0, None, id="regular-s"),
        pytest.param("regular-m", 3.325, 13_975_000_000, 0, None, id="regular-m"),
        pytest.param("regular-l", 7.15, 28_100_000_000, 0, None, id="regular-l"),
        pytest.param("highmem-xs", 0.45625, 6_118_750_000, 0, None, id="highmem-xs"),
        pytest.param("highmem-s", 1.4125, 12_387_500_000, 0, None, id="highmem-s"),
        pytest.param("highmem-m", 3.325, 24_925_000_000, 0, None, id="highmem-m"),
        pytest.param("highmem-l", 7.15, 50_000_000_000, 0, None, id="highmem-l"),
        pytest.param("gpu-t4", 3.5, 14_000_000_000, 1, "nvidia.com/gpu", id="gpu-t4"),
        pytest.param("gpu-t4-m", 7.5, 28_000_000_000, 1, "nvidia.com/gpu", id="gpu-t4-m"),
    ],
)
def test_catalog_entry(
    name: str, cpu: float, memory_bytes: int, gpus: int, gpu_type: str | None
) -> None:
    assert instance(name, field=FIELD) == InstanceSpec(name, cpu, memory_bytes, gpus, gpu_type)


def test_catalog_holds_exactly_the_dataloop_names() -> None:
    assert list(INSTANCES) == [
        "regular-xs",
        "regular-s",
        "regular-m",
        "regular-l",
        "highmem-xs",
        "highmem-s",
        "highmem-m",
        "highmem-l",
        "gpu-t4",
        "gpu-t4-m",
    ]
    assert all(spec.name == name for name, spec in INSTANCES.items())


def test_default_is_regular_s() -> None:
    assert instance(DEFAULT_INSTANCE, field=FIELD).name == "regular-s"


@pytest.mark.parametrize("size", ["xs", "s", "m", "l"])
def test_highmem_has_regular_cpu_and_more_memory(size: str) -> None:
    regular = instance(f"regular-{size}", field=FIELD)
    highmem = instance(f"highmem-{size}", field=FIELD)
    assert highmem.cpu == regular.cpu
    assert highmem.memory_bytes > regular.memory_bytes


@pytest.mark.parametrize(
    ("name", "cpu", "memory"),
    [
        pytest.param("regular-s", "1413m", "6912500k", id="regular-s"),
        pytest.param("highmem-l", "7150m", "50G", id="highmem-l"),
        pytest.param("gpu-t4", "3500m", "14G", id="gpu-t4"),
    ],
)
def test_specs_render_as_kubernetes_quantities(name: str, cpu: str, memory: str) -> None:
    spec = instance(name, field=FIELD)
    assert (format_cpu(spec.cpu), format_memory(spec.memory_bytes)) == (cpu, memory)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        pytest.param("regular-xxl", 'unknown instance type "regular-xxl"', id="unknown"),
        pytest.param("Regular-S", 'did you mean "regular-s"?', id="case"),
        pytest.param("highmem_m", 'did you mean "highmem-m"?', id="underscore"),
        pytest.param("gpu-k80-s", '"gpu-k80-s" is no longer offered; use "gpu-t4"', id="k80-s"),
        pytest.param("gpu-k80-m", 'use "gpu-t4-m"', id="k80-m"),
        pytest.param("", 'unknown instance type ""', id="empty"),
    ],
)
def test_unknown_name_lists_valid_names(name: str, hint: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        instance(name, field=FIELD)
    [error] = caught.value.errors
    assert error.field == FIELD
    assert hint in error.reason
    assert all(valid in error.reason for valid in INSTANCES)


def test_non_string_name_is_refused() -> None:
    with pytest.raises(ValidationFailure, match=r"runtime\.podType: unknown instance type"):
        instance(["regular-s"], field=FIELD)  # type: ignore[arg-type]


def test_every_pod_type_a_service_accepts_has_catalog_figures() -> None:
    from spool_common.models import InstanceType

    assert set(INSTANCES) == {t.value for t in InstanceType}
