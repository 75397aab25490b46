"""Uploaded codebase zips: what is accepted, what is refused and why, and what it costs."""

from __future__ import annotations

import copy
import hashlib
import stat
import struct
import tracemalloc
import zlib
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spool_common.archive import (
    DEFAULT_LIMITS,
    MIB,
    ArchiveLimits,
    build_archive,
    extract_archive,
    normalise_path,
    read_archive,
)
from spool_common.errors import FieldError, ValidationFailure

# --- hand-made zips ----------------------------------------------------------------------


@dataclass
class Entry:
    """One zip entry exactly as written: `payload` is the stored (maybe deflated) data."""

    name: bytes
    payload: bytes
    method: int
    crc: int
    file_size: int
    mode: int = stat.S_IFREG | 0o644
    flags: int = 0


def stored(name: str | bytes, content: bytes, **changes: int) -> Entry:
    raw = name.encode() if isinstance(name, str) else name
    entry = Entry(raw, content, 0, zlib.crc32(content), len(content))
    entry.__dict__.update(changes)
    return entry


def deflate(content: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(content) + compressor.flush()


def deflated(name: str, content: bytes, **changes: int) -> Entry:
    entry = Entry(name.encode(), deflate(content), 8, zlib.crc32(content), len(content))
    entry.__dict__.update(changes)
    return entry


def local_header(e: Entry) -> bytes:
    fields = (b"PK\x03\x04", 20, e.flags, e.method, 0, 0x21, e.crc, len(e.payload), e.file_size)
    return struct.pack("<4sHHHHHIII", *fields) + struct.pack("<HH", len(e.name), 0) + e.name


def central_header(e: Entry, offset: int) -> bytes:
    fixed = struct.pack(
        "<4sHHHHHHIII",
        b"PK\x01\x02",
        0x0314,
        20,
        e.flags,
        e.method,
        0,
        0x21,
        e.crc,
        len(e.payload),
        e.file_size,
    )
    rest = struct.pack("<HHHHHII", len(e.name), 0, 0, 0, 0, e.mode << 16, offset)
    return fixed + rest + e.name


def end_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def raw_zip(*entries: Entry) -> bytes:
    body, central = b"", b""
    for entry in entries:
        central += central_header(entry, len(body))
        body += local_header(entry) + entry.payload
    return body + central + end_record(len(entries), len(central), len(body))


def quoted_overlap_bomb(files: int, kernel_size: int) -> bytes:
    """David Fifield's quoted-overlap bomb: each file's deflate stream opens with a stored
    block that quotes the next file's local header, then runs on into the next file's data,
    so every file ends in the same shared kernel and N files cost one kernel on disk."""
    kernel_plain = b"\x00" * kernel_size
    data, plain = deflate(kernel_plain), kernel_plain
    entries: list[Entry] = []
    for i in reversed(range(files)):
        entry = Entry(f"f{i:04d}".encode(), data, 8, zlib.crc32(plain), len(plain))
        entries.insert(0, entry)
        header = local_header(entry)
        quote = b"\x00" + struct.pack("<HH", len(header), len(header) ^ 0xFFFF)
        data, plain = quote + header + data, header + plain
    first = entries[0]
    assert zlib.decompress(first.payload, -zlib.MAX_WBITS) == plain[len(local_header(first)) :]
    body = local_header(first) + first.payload
    central, offset = b"", 0
    for entry in entries:
        central += central_header(entry, offset)
        offset += len(local_header(entry)) + 5
    return body + central + end_record(len(entries), len(central), len(body))


def reason_of(data: bytes, limits: ArchiveLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(ValidationFailure) as caught:
        read_archive(data, limits)
    [error] = caught.value.errors
    assert error.field == "codebase"
    return error.reason


# --- refused -----------------------------------------------------------------------------

TINY = ArchiveLimits(max_archive_bytes=300, max_total_bytes=1000, max_entries=2, max_path_depth=3)
main = stored("main.py", b"x = 1\n")

REFUSED = [
    ("not-a-zip", b"hello, world", ArchiveLimits(), "not a valid zip archive"),
    ("empty-bytes", b"", ArchiveLimits(), "not a valid zip archive"),
    ("no-files", raw_zip(), ArchiveLimits(), "contains no files"),
    ("only-folders", raw_zip(stored("src/", b"")), ArchiveLimits(), "contains no files"),
    ("archive-too-big", raw_zip(stored("a", b"a" * 400)), TINY, "the limit is 300"),
    ("too-many-entries", raw_zip(main, stored("b", b""), stored("c", b"")), TINY, "more than 2"),
    ("absolute", raw_zip(stored("/etc/cron.d/x", b"")), ArchiveLimits(), "absolute path"),
    ("dot-dot", raw_zip(stored("../evil.py", b"")), ArchiveLimits(), "contains '..'"),
    ("inner-dot-dot", raw_zip(stored("a/../../b", b"")), ArchiveLimits(), "contains '..'"),
    ("drive-letter", raw_zip(stored("C:/evil.py", b"")), ArchiveLimits(), "drive letters"),
    ("backslash", raw_zip(stored("..\\evil.py", b"")), ArchiveLimits(), "backslash"),
    ("nul-byte", raw_zip(stored(b"main.py\x00.txt", b"")), ArchiveLimits(), "control char"),
    ("too-deep", raw_zip(stored("a/b/c/d.py", b"")), TINY, "deeper than 3"),
    (
        "symlink",
        raw_zip(stored("link", b"/etc/passwd", mode=stat.S_IFLNK | 0o777)),
        ArchiveLimits(),
        "symbolic link",
    ),
    (
        "fifo",
        raw_zip(stored("pipe", b"", mode=stat.S_IFIFO | 0o644)),
        ArchiveLimits(),
        "not a regular file",
    ),
    ("duplicate", raw_zip(main, stored("main.py", b"")), ArchiveLimits(), "more than once"),
    (
        "duplicate-after-normalising",
        raw_zip(main, stored("./main.py", b"")),
        ArchiveLimits(),
        "more than once",
    ),
    (
        "file-and-folder",
        raw_zip(stored("a", b""), stored("a/b", b"")),
        ArchiveLimits(),
        "both a file and a folder",
    ),
    ("encrypted", raw_zip(stored("a", b"", flags=1)), ArchiveLimits(), "encrypted"),
    ("bzip2", raw_zip(stored("a", b"", method=12)), ArchiveLimits(), "compression method 12"),
    (
        "declared-total-over-cap",
        raw_zip(deflated("a", b"a" * 600), deflated("b", b"b" * 600)),
        ArchiveLimits(max_total_bytes=1000),
        "more than 1000 bytes",
    ),
    ("ratio", raw_zip(deflated("zeros", bytes(2 * MIB))), ArchiveLimits(), "expands more than"),
    ("bad-crc", raw_zip(stored("a", b"abc", crc=1)), ArchiveLimits(), "bad CRC-32"),
    (
        "stored-size-lie",
        raw_zip(stored("a", b"abc", file_size=2)),
        ArchiveLimits(),
        "holds 3 bytes, not the 2 declared",
    ),
    (
        "inflated-size-lie",
        raw_zip(deflated("a", b"a" * 5000, file_size=10)),
        ArchiveLimits(),
        "more data than its header declares",
    ),
    (
        "short-inflate",
        raw_zip(deflated("a", b"a" * 50, file_size=60)),
        ArchiveLimits(),
        "holds 50 bytes, not the 60 declared",
    ),
    (
        "truncated-deflate",
        raw_zip(Entry(b"a", deflate(b"abc" * 99)[:3], 8, 0, 297)),
        ArchiveLimits(),
        "truncated",
    ),
    ("garbage-deflate", raw_zip(Entry(b"a", b"\xff" * 8, 8, 0, 8)), ArchiveLimits(), "corrupt"),
    ("quoted-overlap", quoted_overlap_bomb(3, 1000), ArchiveLimits(), "overlaps"),
]


@pytest.mark.parametrize(
    ("data", "limits", "expected"), [pytest.param(*case[1:], id=case[0]) for case in REFUSED]
)
def test_refuses_with_a_reason_a_user_can_act_on(
    data: bytes, limits: ArchiveLimits, expected: str
) -> None:
    assert expected in reason_of(data, limits)


def test_two_entries_sharing_one_local_header_overlap() -> None:
    entry = deflated("a", bytes(1000))
    data = local_header(entry) + entry.payload
    central = central_header(entry, 0) + central_header(Entry(b"b", b"", 8, 0, 0), 0)
    whole = data + central + end_record(2, len(central), len(data))
    assert "overlaps" in reason_of(whole)


def test_a_central_entry_pointing_nowhere_is_refused() -> None:
    data = raw_zip(main)
    broken = data.replace(b"PK\x03\x04", b"XX\x03\x04", 1)
    assert "no local header" in reason_of(broken)


# --- bombs cost no more than the cap -----------------------------------------------------


def peak_while_refusing(data: bytes, limits: ArchiveLimits) -> tuple[str, int]:
    tracemalloc.start()
    try:
        reason = reason_of(data, limits)
        return reason, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    ("cap", "expected"),
    [
        pytest.param(8 * MIB, "add up to more than", id="declared-total-over-cap"),
        pytest.param(64 * MIB, "overlaps", id="declared-total-under-cap"),
    ],
)
def test_quoted_overlap_bomb_is_refused_cheaply(cap: int, expected: str) -> None:
    bomb = quoted_overlap_bomb(60, 1_000_000)  # ~60 MB unpacked from ~6 KB
    assert len(bomb) < 10_000
    reason, peak = peak_while_refusing(bomb, ArchiveLimits(max_total_bytes=cap))
    assert expected in reason
    assert peak < 2 * MIB


def test_lying_uncompressed_size_is_refused_after_at_most_the_declared_bytes() -> None:
    cap = 1 * MIB
    liar = raw_zip(deflated("a", bytes(64 * MIB), file_size=100_000))
    reason, peak = peak_while_refusing(liar, ArchiveLimits(max_total_bytes=cap))
    assert "more data than its header declares" in reason
    assert peak < cap


# --- accepted ----------------------------------------------------------------------------

ACCEPTED = [
    ("plain", {"main.py": b"a", "lib/x.py": b"b"}, {"main.py": b"a", "lib/x.py": b"b"}),
    (
        "one-top-folder-stripped",
        {"proj/main.py": b"a", "proj/lib/x.py": b"b"},
        {"main.py": b"a", "lib/x.py": b"b"},
    ),
    ("single-nested-file-stripped", {"proj/main.py": b"a"}, {"main.py": b"a"}),
    ("two-top-folders-kept", {"a/x.py": b"1", "b/y.py": b"2"}, {"a/x.py": b"1", "b/y.py": b"2"}),
    ("names-normalised", {"./a//b.py": b"1", "c.py": b""}, {"a/b.py": b"1", "c.py": b""}),
    ("empty-file", {"__init__.py": b""}, {"__init__.py": b""}),
]


@pytest.mark.parametrize(
    ("files", "expected"), [pytest.param(*case[1:], id=case[0]) for case in ACCEPTED]
)
def test_accepted_files(files: dict[str, bytes], expected: dict[str, bytes]) -> None:
    data = build_archive(files)
    archive = read_archive(data)
    assert archive.files == expected
    assert archive.sha256 == hashlib.sha256(data).hexdigest()
    assert archive.size == len(data)


def test_folder_entries_are_dropped_and_stored_entries_read() -> None:
    data = raw_zip(stored("proj/", b""), stored("proj/main.py", b"x"), stored("proj/a.txt", b""))
    assert read_archive(data).files == {"main.py": b"x", "a.txt": b""}


def test_bytes_before_the_zip_are_tolerated() -> None:
    assert read_archive(b"#!/bin/sh\nexit 0\n" + raw_zip(main)).files == {"main.py": b"x = 1\n"}


def test_small_compressible_files_are_not_held_to_the_ratio() -> None:
    assert read_archive(build_archive({"blank.txt": bytes(MIB)})).files["blank.txt"] == bytes(MIB)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("a/b.py", "a/b.py", id="clean"),
        pytest.param("./a//b/", "a/b", id="dots-and-slashes"),
        pytest.param("a/./b", "a/b", id="inner-dot"),
    ],
)
def test_normalise_path(name: str, expected: str) -> None:
    assert normalise_path(name) == expected


names = st.text(alphabet="abcdefghij_-", min_size=1, max_size=6)
trees = st.dictionaries(
    st.lists(names, min_size=1, max_size=3).map("/".join), st.binary(max_size=300), max_size=8
).filter(lambda tree: not any(other.startswith(path + "/") for path in tree for other in tree))


@settings(max_examples=60, deadline=None)
@given(tree=trees)
def test_build_then_read_round_trips(tree: dict[str, bytes]) -> None:
    files = {"main.py": b"print(1)\n", **tree}
    data = build_archive(files)
    assert read_archive(data).files == files
    assert build_archive(dict(reversed(list(files.items())))) == data


# --- extraction --------------------------------------------------------------------------


def test_extract_writes_checked_files_read_only_for_others(tmp_path: Path) -> None:
    dest = tmp_path / "code"
    archive = extract_archive(build_archive({"main.py": b"a", "lib/x.py": b"b"}), dest)
    assert archive.files == {"main.py": b"a", "lib/x.py": b"b"}
    assert (dest / "lib" / "x.py").read_bytes() == b"b"
    assert stat.S_IMODE((dest / "main.py").stat().st_mode) == 0o644


def test_extract_into_an_existing_empty_folder(tmp_path: Path) -> None:
    extract_archive(raw_zip(main), tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["main.py"]


def test_extract_refuses_a_bad_archive_before_writing(tmp_path: Path) -> None:
    dest = tmp_path / "code"
    with pytest.raises(ValidationFailure) as caught:
        extract_archive(raw_zip(stored("../evil.py", b"")), dest)
    assert caught.value.errors[0] == FieldError("codebase", "entry '../evil.py' contains '..'")
    assert not dest.exists()


@pytest.mark.parametrize("kind", ["non-empty", "a-file", "a-symlink"])
def test_extract_needs_a_fresh_destination(tmp_path: Path, kind: str) -> None:
    dest = tmp_path / "code"
    if kind == "non-empty":
        dest.mkdir()
        (dest / "old.py").write_bytes(b"")
    elif kind == "a-file":
        dest.write_bytes(b"")
    else:
        (tmp_path / "elsewhere").mkdir()
        dest.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(FileExistsError):
        extract_archive(raw_zip(main), dest)
    assert not (tmp_path / "elsewhere" / "main.py").exists()


# --- the error every check raises --------------------------------------------------------


def test_validation_failure_lists_every_error() -> None:
    one = ValidationFailure.of("codebase", "is not a valid zip archive")
    two = ValidationFailure([FieldError("a", "is bad"), FieldError("b[0].c", "is worse")])
    assert str(one) == "codebase: is not a valid zip archive"
    assert str(two) == "2 problems: a: is bad; b[0].c: is worse"
    assert two.details() == [
        {"field": "a", "reason": "is bad"},
        {"field": "b[0].c", "reason": "is worse"},
    ]
    assert copy.deepcopy(two).errors == two.errors  # via __reduce__, as pickle would
    with pytest.raises(ValueError, match="at least one"):
        ValidationFailure([])


def test_keep_holds_only_the_chosen_files_but_checks_and_lists_them_all() -> None:
    data = build_archive({"proj/main.py": b"x = 1", "proj/data.bin": b"\0" * 1000})
    archive = read_archive(data, keep=lambda path: path.endswith(".py"))
    assert archive.files == {"main.py": b"x = 1"}
    assert sorted(archive.paths) == ["data.bin", "main.py"]


def test_one_file_over_the_per_file_cap_is_refused() -> None:
    data = build_archive({"big.bin": b"\1" * 2000, "main.py": b""})
    with pytest.raises(ValidationFailure, match="one file may be at most 1000"):
        read_archive(data, ArchiveLimits(max_file_bytes=1000))
