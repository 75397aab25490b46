"""The hostile zip corpus of test T25, built by hand so each archive is exactly as hostile as
intended: zipfile would refuse to write most of them.

`refused()` lists archives the platform must refuse, each with a substring of the reason the
user is told; `accepted()` lists odd but harmless archives it takes, each with the files a user
gets back. The 1 GiB bombs are built streaming: the test never holds more than 1 MiB of zeros.
"""

from __future__ import annotations

import functools
import io
import random
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from typing import NamedTuple

from spool_common.archive import MIB

GIB = 1024 * MIB
STORED, DEFLATED = zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED
REGULAR = stat.S_IFREG | 0o644
ENCRYPTED = 0x1  # general purpose flag bit 0
ESCAPE_DIR = "/tmp/spool-t25-escape"  # noqa: S108 -- an absolute name that must never be written
MAIN = b"class ServiceRunner:\n    def run(self):\n        return 'ok'\n"


class Hostile(NamedTuple):
    id: str
    data: bytes
    reason: str  # a substring of the reason given for the field `codebase`


class Harmless(NamedTuple):
    id: str
    data: bytes
    files: dict[str, bytes]  # what the archive holds once checked


@dataclass(frozen=True)
class Entry:
    """One entry as written: `payload` is the data as stored (maybe deflated)."""

    name: bytes
    payload: bytes
    method: int
    crc: int
    size: int  # the uncompressed size the headers declare
    mode: int = REGULAR
    flags: int = 0


def stored(name: str | bytes, content: bytes, mode: int = REGULAR, flags: int = 0) -> Entry:
    raw = name.encode() if isinstance(name, str) else name
    return Entry(raw, content, STORED, zlib.crc32(content), len(content), mode, flags)


def deflated(name: str, content: bytes) -> Entry:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    payload = compressor.compress(content) + compressor.flush()
    return Entry(name.encode(), payload, DEFLATED, zlib.crc32(content), len(content))


def local_header(e: Entry) -> bytes:
    fixed = (b"PK\x03\x04", 20, e.flags, e.method, 0, 0x21, e.crc, len(e.payload), e.size)
    return struct.pack("<4sHHHHHIIIHH", *fixed, len(e.name), 0) + e.name


def central_header(e: Entry, offset: int) -> bytes:
    fixed = (b"PK\x01\x02", 0x0314, 20, e.flags, e.method, 0, 0x21, e.crc, len(e.payload), e.size)
    rest = (len(e.name), 0, 0, 0, 0, e.mode << 16, offset)
    return struct.pack("<4sHHHHHHIIIHHHHHII", *fixed, *rest) + e.name


def end_record(count: int, cd_size: int, cd_offset: int) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, cd_size, cd_offset, 0)


def zip_of(*entries: Entry) -> bytes:
    body, central = io.BytesIO(), io.BytesIO()
    for entry in entries:
        central.write(central_header(entry, body.tell()))
        body.write(local_header(entry) + entry.payload)
    cd = central.getvalue()
    return body.getvalue() + cd + end_record(len(entries), len(cd), body.tell())


def with_main(*entries: Entry) -> bytes:
    """`entries` after a valid main.py, so only the hostile part can be the reason."""
    return zip_of(stored("main.py", MAIN), *entries)


# --- bombs -----------------------------------------------------------------------------------


@functools.cache
def zeros_deflated(size: int = GIB) -> tuple[bytes, int]:
    """(raw deflate stream, CRC-32) of `size` zero bytes, built one MiB at a time.

    After a full flush the compressor starts over with an empty window, so each further MiB of
    zeros deflates to the same bytes: they are computed once and written `size/MiB - 1` times
    (compressing 1 GiB for real takes seconds). `test_the_one_gib_stream_is_real` inflates it.
    """
    assert size % MIB == 0
    assert size >= 2 * MIB
    chunk = bytes(MIB)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    out = io.BytesIO()
    out.write(compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH))
    again = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    crc = zlib.crc32(chunk, zlib.crc32(chunk))
    for _ in range(size // MIB - 1):
        out.write(again)
    for _ in range(size // MIB - 2):
        crc = zlib.crc32(chunk, crc)
    out.write(compressor.flush())
    return out.getvalue(), crc


def zeros_entry(name: str, declared: int = GIB) -> Entry:
    """1 GiB of zeros in ~1 MB, declaring `declared` bytes (the true size by default)."""
    payload, crc = zeros_deflated()
    return Entry(name.encode(), payload, DEFLATED, crc, declared)


def ratio_bomb() -> bytes:
    return zip_of(zeros_entry("zeros.bin"))


def small_ratio_bomb() -> bytes:
    """64 MiB of zeros: under the per-file cap, but it expands about 1000 times."""
    payload, crc = zeros_deflated(64 * MIB)
    return zip_of(Entry(b"zeros.bin", payload, zlib.DEFLATED, crc, 64 * MIB))


def quoted_overlap_bomb(files: int, kernel_size: int = 1_000_000) -> bytes:
    """David Fifield's quoted-overlap bomb (CVE-2024-0450): each entry's deflate stream opens
    with a stored block quoting the next entry's local header and then runs into that entry's
    data, so all `files` entries inflate to one shared kernel. Each is under 1 MiB unpacked."""
    kernel = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    plain = bytes(kernel_size)
    data = kernel.compress(plain) + kernel.flush()
    entries: list[Entry] = []
    for i in reversed(range(files)):
        entry = Entry(f"f{i:05d}".encode(), data, DEFLATED, zlib.crc32(plain), len(plain))
        entries.insert(0, entry)
        header = local_header(entry)
        quote = b"\x00" + struct.pack("<HH", len(header), len(header) ^ 0xFFFF)
        data, plain = quote + header + data, header + plain
    body = local_header(entries[0]) + entries[0].payload
    central, offset = io.BytesIO(), 0
    for entry in entries:
        central.write(central_header(entry, offset))
        offset += len(local_header(entry)) + 5
    cd = central.getvalue()
    return body + cd + end_record(len(entries), len(cd), len(body))


def many_entries(count: int = 50_000) -> bytes:
    return zip_of(*(stored(f"f{i:05d}", b"") for i in range(count)))


def over_size_cap(cap: int) -> bytes:
    """A valid zip of random bytes, one byte over `cap` once zipped."""
    content = random.Random(25).randbytes(cap)  # incompressible, so stored as is
    return zip_of(stored("noise.bin", content))


# --- the corpus ------------------------------------------------------------------------------


def _truncated() -> list[Hostile]:
    whole = with_main(deflated("lib/util.py", b"x = 1\n" * 500))
    return [
        Hostile("truncated-half", whole[: len(whole) // 2], "not a valid zip archive"),
        Hostile("truncated-end-record", whole[:-10], "not a valid zip archive"),
    ]


def _names() -> list[Hostile]:
    cases = [
        ("dot-dot", "../../evil.py", "contains '..'"),
        ("dot-dot-inside", "lib/../../../evil.py", "contains '..'"),
        ("absolute", f"{ESCAPE_DIR}/evil.py", "is an absolute path"),
        ("absolute-unc", f"/{ESCAPE_DIR}/evil.py", "is an absolute path"),
        ("drive-backslash", "C:\\Windows\\evil.py", "contains a backslash"),
        ("drive-slash", "C:/Windows/evil.py", "drive letters"),
        ("backslash-root", "\\evil.py", "contains a backslash"),
        ("backslash-dot-dot", "..\\..\\evil.py", "contains a backslash"),
        ("nul", "main2.py\x00.txt", "control character"),
        ("newline", "evil\n.py", "control character"),
        ("terminal-escape", "\x1b[2Jevil.py", "control character"),
        ("delete-char", "evil\x7f.py", "control character"),
    ]
    return [Hostile(i, with_main(stored(name, b"x = 1\n")), why) for i, name, why in cases]


def _types() -> list[Hostile]:
    cases = [
        ("symlink", stat.S_IFLNK | 0o777, "symbolic link"),
        ("char-device", stat.S_IFCHR | 0o666, "not a regular file or folder"),
        ("block-device", stat.S_IFBLK | 0o660, "not a regular file or folder"),
        ("fifo", stat.S_IFIFO | 0o644, "not a regular file or folder"),
        ("socket", stat.S_IFSOCK | 0o755, "not a regular file or folder"),
    ]
    hostile = [
        Hostile(i, with_main(stored("x", b"/etc/passwd", mode)), why) for i, mode, why in cases
    ]
    link_then_write = with_main(
        stored("lib", ESCAPE_DIR.encode(), stat.S_IFLNK | 0o777), stored("lib/evil.py", b"")
    )
    return [*hostile, Hostile("symlink-then-write-through", link_then_write, "symbolic link")]


@functools.cache
def refused() -> tuple[Hostile, ...]:
    """Every archive the platform must refuse, before it writes anything."""
    return (
        *_names(),
        Hostile("duplicate", with_main(stored("main.py", b"evil = 1\n")), "more than once"),
        Hostile(
            "duplicate-after-normalising",
            with_main(stored("lib/x.py", b""), stored("lib//./x.py", b"")),
            "more than once",
        ),
        *_types(),
        Hostile("quoted-overlap-bomb", quoted_overlap_bomb(200), "overlaps"),
        Hostile("quoted-overlap-bomb-300mb", quoted_overlap_bomb(300), "add up to more than"),
        Hostile("ratio-bomb-1gib", ratio_bomb(), "one file may be at most"),
        Hostile("ratio-bomb-64mib", small_ratio_bomb(), "expands more than"),
        Hostile(
            "declared-size-under-actual-1gib",
            with_main(zeros_entry("zeros.bin", declared=1000)),
            "more data than its header declares",
        ),
        Hostile("entries-50000", many_entries(), "more than 10000 entries"),
        *_truncated(),
        Hostile("encrypted", with_main(stored("secret.py", b"x", flags=ENCRYPTED)), "encrypted"),
        Hostile(
            "encrypted-aes",  # WinZip AES: method 99 with the encrypted flag
            with_main(Entry(b"s.py", b"\x00" * 28, 99, 0, 0, flags=ENCRYPTED)),
            "encrypted",
        ),
    )


GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"  # a 1x1 GIF; with a zip after it, a polyglot
COLLIDING = {
    "A.py": b"a = 'upper'\n",
    "a.py": b"a = 'lower'\n",
    "Lib/x.py": b"x = 'upper'\n",
    "lib/x.py": b"x = 'lower'\n",
}


@functools.cache
def accepted() -> tuple[Harmless, ...]:
    """Odd archives the platform takes as they are: names that differ only in case are
    distinct files, a zip inside is just a file, bytes before the zip are ignored."""
    bomb = ratio_bomb()
    case = with_main(*(stored(name, content) for name, content in COLLIDING.items()))
    return (
        Harmless("case-colliding-names", case, {"main.py": MAIN, **COLLIDING}),
        Harmless(
            "nested-bomb-kept-as-a-file",
            with_main(stored("inner.zip", bomb)),
            {"main.py": MAIN, "inner.zip": bomb},
        ),
        Harmless("polyglot-gif-then-zip", GIF + with_main(), {"main.py": MAIN}),
    )


def every_oddity(main: bytes) -> Harmless:
    """All of `accepted()` in one polyglot, with `main` as main.py."""
    files = {"main.py": main, **COLLIDING, "inner.zip": ratio_bomb()}
    data = GIF + zip_of(*(stored(name, content) for name, content in files.items()))
    return Harmless("every-oddity", data, files)
