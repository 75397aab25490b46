"""Table tests for Kubernetes resource quantities (CPU, memory, GPUs)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from spool_common.errors import ValidationFailure
from spool_common.quantities import (
    format_cpu,
    format_memory,
    parse_cpu,
    parse_gpus,
    parse_memory,
)

FIELD = "runtime.limits.cpu"


def _reason(failure: pytest.ExceptionInfo[ValidationFailure]) -> str:
    [error] = failure.value.errors
    assert error.field == FIELD
    return error.reason


@pytest.mark.parametrize(
    ("value", "cores"),
    [
        pytest.param("500m", 0.5, id="millicores"),
        pytest.param("2", 2.0, id="whole-string"),
        pytest.param("0.5", 0.5, id="decimal-string"),
        pytest.param(".25", 0.25, id="leading-dot"),
        pytest.param("1m", 0.001, id="smallest"),
        pytest.param("1500m", 1.5, id="millicores-over-one"),
        pytest.param(" 250m ", 0.25, id="padded"),
        pytest.param("+3", 3.0, id="plus-sign"),
        pytest.param(2, 2.0, id="int"),
        pytest.param(1.5, 1.5, id="float"),
        pytest.param(0.001, 0.001, id="float-smallest"),
    ],
)
def test_parse_cpu(value: str | float, cores: float) -> None:
    assert parse_cpu(value, field=FIELD) == cores


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        pytest.param("", '"" is not a quantity', id="empty"),
        pytest.param("two", '"two" is not a quantity', id="word"),
        pytest.param("1.5.2", '"1.5.2" in "1.5.2" is not a number', id="two-dots"),
        pytest.param("2k", 'unknown CPU unit "k"', id="kilo"),
        pytest.param("2 cores", '"2 cores" is not a quantity', id="space-unit"),
        pytest.param("500M", 'unknown CPU unit "M"', id="capital-m"),
        pytest.param("1e3", '"1e3" is not a quantity', id="exponent"),
        pytest.param("-1", "must be more than 0, not -1", id="negative-string"),
        pytest.param(-0.5, "must be more than 0", id="negative-float"),
        pytest.param("0", "must be more than 0", id="zero-string"),
        pytest.param(0, "must be more than 0", id="zero-int"),
        pytest.param("0.5m", 'less than "1m"', id="under-a-millicore"),
        pytest.param(0.0001, 'less than "1m"', id="float-under-a-millicore"),
        pytest.param(float("nan"), "finite", id="nan"),
        pytest.param(float("inf"), "finite", id="inf"),
        pytest.param(True, "must be cores", id="bool"),
    ],
)
def test_parse_cpu_rejects(value: str | float, quoted: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_cpu(value, field=FIELD)
    assert quoted in _reason(caught)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        pytest.param("1Gi", 2**30, id="gibi"),
        pytest.param("1G", 10**9, id="giga"),
        pytest.param("1.5Gi", 3 * 2**29, id="decimal-gibi"),
        pytest.param("512Mi", 512 * 2**20, id="mebi"),
        pytest.param("1Ki", 1024, id="kibi"),
        pytest.param("1k", 1000, id="kilo"),
        pytest.param("2Ti", 2 * 2**40, id="tebi"),
        pytest.param("1T", 10**12, id="tera"),
        pytest.param("1Pi", 2**50, id="pebi"),
        pytest.param("1P", 10**15, id="peta"),
        pytest.param("1Ei", 2**60, id="exbi"),
        pytest.param("1E", 10**18, id="exa"),
        pytest.param("128974848", 128974848, id="plain-string"),
        pytest.param("129M", 129 * 10**6, id="mega"),
        pytest.param("1.1Ki", 1127, id="fraction-of-a-byte-rounds-up"),
        pytest.param(4096, 4096, id="int"),
    ],
)
def test_parse_memory(value: str | int, size: int) -> None:
    assert parse_memory(value, field=FIELD) == size


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        pytest.param("1GB", 'unknown memory unit "GB" in "1GB"; use G or Gi', id="gb"),
        pytest.param("1gi", 'unknown memory unit "gi" in "1gi"; use G or Gi', id="lowercase"),
        pytest.param("1K", "use k or Ki", id="capital-k"),
        pytest.param("1MB", "use M or Mi", id="mb"),
        pytest.param("1m", '"m" means thousandths of a byte; use M or Mi', id="milli"),
        pytest.param("1Xi", "use one of Ki, Mi, Gi, Ti, Pi, Ei, k, M, G, T, P, E", id="unknown"),
        pytest.param("lots", '"lots" is not a quantity', id="word"),
        pytest.param("1.2.3Gi", '"1.2.3" in "1.2.3Gi" is not a number', id="two-dots"),
        pytest.param("", '"" is not a quantity', id="empty"),
        pytest.param("-1Gi", "must be more than 0, not -1Gi", id="negative"),
        pytest.param(0, "must be more than 0", id="zero"),
        pytest.param("0Mi", "must be more than 0", id="zero-with-suffix"),
        pytest.param(1.5, "must be bytes", id="float"),
        pytest.param(True, "must be bytes", id="bool"),
    ],
)
def test_parse_memory_rejects(value: str | int, quoted: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_memory(value, field=FIELD)
    assert quoted in _reason(caught)


@pytest.mark.parametrize(
    ("value", "count"),
    [
        pytest.param(0, 0, id="none"),
        pytest.param(1, 1, id="one"),
        pytest.param("2", 2, id="string"),
        pytest.param(" 4 ", 4, id="padded"),
    ],
)
def test_parse_gpus(value: int | str, count: int) -> None:
    assert parse_gpus(value, field=FIELD) == count


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        pytest.param(-1, "must be 0 or more, not -1", id="negative"),
        pytest.param("-2", "must be 0 or more, not -2", id="negative-string"),
        pytest.param("1.5", 'whole number of GPUs, such as 1, not "1.5"', id="fraction"),
        pytest.param(1.0, "whole number of GPUs", id="float"),
        pytest.param("one", "whole number of GPUs", id="word"),
        pytest.param("", "whole number of GPUs", id="empty"),
        pytest.param(True, "whole number of GPUs", id="bool"),
    ],
)
def test_parse_gpus_rejects(value: int | str, quoted: str) -> None:
    with pytest.raises(ValidationFailure) as caught:
        parse_gpus(value, field=FIELD)
    assert quoted in _reason(caught)


@pytest.mark.parametrize(
    ("cores", "text"),
    [
        pytest.param(0.5, "500m", id="half"),
        pytest.param(2, "2", id="whole-int"),
        pytest.param(2.0, "2", id="whole-float"),
        pytest.param(1.5, "1500m", id="one-and-a-half"),
        pytest.param(0.001, "1m", id="smallest"),
        pytest.param(0.45625, "457m", id="fraction-of-a-millicore-rounds-up"),
        pytest.param(1.4125, "1413m", id="half-millicore-rounds-up"),
        pytest.param(0.1, "100m", id="binary-float-is-read-as-written"),
        pytest.param(0.57, "570m", id="binary-float-below-its-decimal"),
        pytest.param(0.0, "0", id="zero"),
    ],
)
def test_format_cpu(cores: float, text: str) -> None:
    assert format_cpu(cores) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        pytest.param(2**30, "1Gi", id="gibi"),
        pytest.param(1_500_000_000, "1500M", id="decimal-mega"),
        pytest.param(10**9, "1G", id="giga"),
        pytest.param(10**12, "1T", id="tera-not-kibi"),
        pytest.param(3 * 2**29, "1536Mi", id="one-and-a-half-gibi"),
        pytest.param(1_024_000, "1024k", id="shorter-decimal-wins"),
        pytest.param(10_112_000, "9875Ki", id="tie-prefers-binary"),
        pytest.param(1000, "1k", id="kilo"),
        pytest.param(1023, "1023", id="plain"),
        pytest.param(2**60, "1Ei", id="exbi"),
        pytest.param(0, "0", id="zero"),
    ],
)
def test_format_memory(size: int, text: str) -> None:
    assert format_memory(size) == text


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda: format_cpu(-1.0), id="negative-cpu"),
        pytest.param(lambda: format_cpu(float("nan")), id="nan-cpu"),
        pytest.param(lambda: format_memory(-1), id="negative-memory"),
    ],
)
def test_format_refuses_impossible_values(call: Callable[[], str]) -> None:
    with pytest.raises(ValueError, match="cannot format"):
        call()


@given(st.integers(min_value=1, max_value=10**9))
def test_cpu_round_trip(millicores: int) -> None:
    cores = millicores / 1000
    text = format_cpu(cores)
    assert parse_cpu(text, field=FIELD) == cores
    assert format_cpu(parse_cpu(text, field=FIELD)) == text


@given(st.integers(min_value=1, max_value=2**70))
def test_memory_round_trip(size: int) -> None:
    text = format_memory(size)
    assert parse_memory(text, field=FIELD) == size
    assert len(text) <= len(str(size))
