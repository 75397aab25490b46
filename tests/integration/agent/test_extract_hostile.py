"""T25, agent side: the hostile zip corpus through `extract_archive`, as the agent unpacks a
codebase. A refused archive writes nothing, anywhere; an accepted one writes exactly its files.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
from support.hostile_zips import (
    ESCAPE_DIR,
    GIB,
    Harmless,
    Hostile,
    accepted,
    over_size_cap,
    refused,
    zeros_deflated,
)

from spool_common.archive import DEFAULT_LIMITS, MIB, ArchiveLimits, extract_archive
from spool_common.errors import ValidationFailure

pytestmark = pytest.mark.integration


def tree(root: Path) -> dict[str, int]:
    """Every path under `root` (links not followed) and its size in bytes; folders count 0."""
    found: dict[str, int] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder, name)
            info = path.lstat()
            found[str(path.relative_to(root))] = 0 if path.is_dir() else info.st_size
    return found


def written(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink()
    }


def refuse(data: bytes, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(ValidationFailure) as caught:
        extract_archive(data, dest, limits)
    [error] = caught.value.errors
    assert error.field == "codebase"
    return error.reason


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    """Deep inside tmp_path, so `../..` names would still land where the snapshot sees them.
    A decoy file sits beside it: it must be left alone."""
    (tmp_path / "jail").mkdir()
    (tmp_path / "jail" / "decoy.txt").write_bytes(b"untouched")
    return tmp_path / "jail" / "deep" / "code"


@pytest.mark.parametrize("fresh", ["missing", "empty"])
@pytest.mark.parametrize("case", refused(), ids=lambda case: case.id)
def test_a_refused_archive_writes_nothing_anywhere(
    case: Hostile, fresh: str, dest: Path, tmp_path: Path
) -> None:
    if fresh == "empty":
        dest.mkdir(parents=True)
    before = tree(tmp_path)
    assert case.reason in refuse(case.data, dest)
    after = tree(tmp_path)
    assert sum(after.values()) - sum(before.values()) == 0  # bytes written
    assert after == before  # nothing created, removed or resized, inside dest or out
    assert (tmp_path / "jail" / "decoy.txt").read_bytes() == b"untouched"
    assert dest.exists() == (fresh == "empty")
    assert not dest.exists() or not any(dest.iterdir())
    assert not Path(ESCAPE_DIR).exists()  # where the absolute names and the symlink point


def test_an_archive_over_the_agents_size_cap_writes_nothing(dest: Path, tmp_path: Path) -> None:
    before = tree(tmp_path)
    cap = DEFAULT_LIMITS.max_archive_bytes  # what the agent uses (ArchiveLimits())
    reason = refuse(over_size_cap(cap), dest)
    assert f"the limit is {cap}" in reason
    assert tree(tmp_path) == before


@pytest.mark.parametrize("case", accepted(), ids=lambda case: case.id)
def test_an_odd_but_harmless_archive_is_extracted_as_it_is(
    case: Harmless, dest: Path, tmp_path: Path
) -> None:
    """Case-colliding names land as distinct files (the archive checks have no case-folding
    rule; a case-insensitive filesystem would refuse the second with FileExistsError). A zip in
    the zip stays a zip: its 1 GiB is never unpacked. Bytes before the zip are ignored."""
    before = tree(tmp_path)
    archive = extract_archive(case.data, dest)
    assert archive.files == case.files
    assert written(dest) == case.files
    after = tree(tmp_path)
    outside = {path: size for path, size in after.items() if not path.startswith("jail/deep")}
    assert outside == before
    assert sum(after.values()) - sum(before.values()) == sum(map(len, case.files.values()))


def test_the_one_gib_stream_is_real() -> None:
    """The bombs above hold what they say: 1 GiB of zeros, inflated here 1 MiB at a time."""
    payload, crc = zeros_deflated()
    assert len(payload) < 2 * MIB
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    total, check, pending, zeros = 0, 0, payload, bytes(MIB)
    while not inflater.eof:
        chunk = inflater.decompress(pending, MIB)
        pending = inflater.unconsumed_tail
        assert chunk or pending, f"the stream stops after {total} bytes"
        assert chunk == zeros[: len(chunk)]
        total, check = total + len(chunk), zlib.crc32(chunk, check)
    assert not inflater.unused_data
    assert (total, check) == (GIB, crc)
