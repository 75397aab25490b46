"""Safe handling of uploaded codebase zips: check in memory, extract to disk, build for tests.

Nothing in an archive is trusted. zipfile only parses the central directory (after a cheap
bound on its entry count). Before a byte is decompressed, every entry's name, type, method,
declared size and position are checked; entries whose data overlap (the "quoted-overlap" zip
bomb, CVE-2024-0450, which Python 3.11.7's zipfile does not catch) are refused. Data are then
inflated here in chunks, counting the bytes actually produced, and no entry may produce more
than it declares, so no header can push the total past `ArchiveLimits.max_total_bytes`.
Every problem is a `ValidationFailure` on the field `codebase`.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from zipfile import BadZipFile

from spool_common.errors import ValidationFailure

MIB = 1024 * 1024
FIELD = "codebase"
RATIO_GRACE_BYTES = MIB  # entries no larger than this are not held to max_ratio
_CHUNK = 64 * 1024
_FIXED_TIME = (1980, 1, 1, 0, 0, 0)
_METHODS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
# RuntimeError includes NotImplementedError, raised for patched or strongly encrypted data.
_ZIP_ERRORS = (BadZipFile, zlib.error, struct.error, EOFError, OSError, ValueError, RuntimeError)
_EOCD = b"PK\x05\x06"


@dataclass(frozen=True)
class ArchiveLimits:
    max_archive_bytes: int = 50 * MIB
    max_total_bytes: int = 200 * MIB  # uncompressed, all files together
    max_entries: int = 10_000
    max_ratio: int = 200  # uncompressed / compressed, per entry above RATIO_GRACE_BYTES
    max_path_depth: int = 32
    max_file_bytes: int = 100 * MIB  # uncompressed, one file


DEFAULT_LIMITS = ArchiveLimits()


@dataclass(frozen=True)
class Archive:
    """Checked contents: `files` keyed by normalised POSIX relative path; sha256 of the zip."""

    files: dict[str, bytes]
    sha256: str
    size: int
    paths: tuple[str, ...] = ()  # every file, kept or not (see `read_archive(keep=...)`)


def _fail(reason: str) -> ValidationFailure:
    return ValidationFailure.of(FIELD, reason)


def normalise_path(name: str) -> str:
    """`name` as a clean relative POSIX path (`./a//b/` -> `a/b`); ValueError says why not."""
    if any(ord(c) < 32 or c == "\x7f" for c in name):
        raise ValueError("contains a control character")
    if "\\" in name:
        raise ValueError("contains a backslash; use '/' between folders")
    if ":" in name:
        raise ValueError("contains ':' (drive letters are not allowed)")
    if name.startswith("/"):
        raise ValueError("is an absolute path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise ValueError("contains '..'")
    if not parts:
        raise ValueError("is empty")
    return "/".join(parts)


def read_archive(
    data: bytes, limits: ArchiveLimits = DEFAULT_LIMITS, keep: Callable[[str], bool] | None = None
) -> Archive:
    """Check `data` and return its files, or raise `ValidationFailure` (field `codebase`).

    Every entry is inflated and checked (size, CRC); only those for which `keep(path)` is true
    (all, by default) are held in memory and returned in `files`, so a caller that inspects a
    few files never holds the whole unpacked archive. `paths` lists every file.
    If every file sits under one top-level folder (a zip of a directory), that folder is
    stripped: `proj/main.py` becomes `main.py`. Directory entries are dropped.
    """
    if len(data) > limits.max_archive_bytes:
        raise _fail(f"the archive is {len(data)} bytes; the limit is {limits.max_archive_bytes}")
    if _entry_upper_bound(data) > limits.max_entries:
        raise _fail(f"the archive has more than {limits.max_entries} entries")
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            planned = _plan(zf, data, limits)
    except _ZIP_ERRORS as e:
        raise _fail(f"is not a valid zip archive ({e})") from e
    if not planned:
        raise _fail("the archive contains no files")
    files: dict[str, bytes] = {}
    for path, info in planned.items():
        content = _read_entry(data, info, path, keep is None or keep(path))
        if content is not None:
            files[path] = content
    prefix = _common_folder(list(planned))
    digest = hashlib.sha256(data).hexdigest()
    return Archive(
        files={path[len(prefix) :]: content for path, content in files.items()},
        sha256=digest,
        size=len(data),
        paths=tuple(path[len(prefix) :] for path in planned),
    )


def _entry_upper_bound(data: bytes) -> int:
    """At least as many entries as zipfile will parse, counted before it allocates any."""
    tail = len(data) - 22
    if tail >= 0 and data[tail : tail + 4] == _EOCD and data[-2:] == b"\x00\x00":
        eocd = tail
    else:
        eocd = data.rfind(_EOCD, max(0, len(data) - 22 - 65_535))
    if eocd < 0 or eocd + 22 > len(data):
        return 0  # zipfile will refuse it
    (cd_size,) = struct.unpack_from("<I", data, eocd + 12)
    zip64 = eocd >= 20 and data[eocd - 20 : eocd - 16] == b"PK\x06\x07"  # zip64 locator
    start = 0 if zip64 else max(0, eocd - cd_size)
    return data.count(b"PK\x01\x02", start, eocd)


def _plan(zf: zipfile.ZipFile, data: bytes, limits: ArchiveLimits) -> dict[str, zipfile.ZipInfo]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise _fail(f"the archive has more than {limits.max_entries} entries")
    planned: dict[str, zipfile.ZipInfo] = {}
    folders: set[str] = set()
    declared = 0
    for info in infos:
        path = _check_entry(info, limits)
        if info.is_dir():
            folders.add(path)
            continue
        if path in planned:
            raise _fail(f"entry {path!r} appears more than once")
        declared += info.file_size
        if declared > limits.max_total_bytes:
            raise _fail(f"the files add up to more than {limits.max_total_bytes} bytes unpacked")
        planned[path] = info
    _check_tree(planned, folders)
    _check_overlaps(data, infos, zf.start_dir)
    return planned


def _check_entry(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str:
    try:
        path = normalise_path(info.orig_filename)
    except ValueError as e:
        raise _fail(f"entry {info.orig_filename!r} {e}") from None
    if path.count("/") >= limits.max_path_depth:
        raise _fail(f"entry {path!r} is nested deeper than {limits.max_path_depth} levels")
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise _fail(f"entry {path!r} is a symbolic link; links are not allowed")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise _fail(f"entry {path!r} is not a regular file or folder")
    if info.flag_bits & 0x1:
        raise _fail(f"entry {path!r} is encrypted; encrypted archives are not supported")
    if info.compress_type not in _METHODS:
        raise _fail(
            f"entry {path!r} uses compression method {info.compress_type}; "
            "only stored and deflated entries are supported"
        )
    if info.file_size > limits.max_file_bytes:
        raise _fail(
            f"entry {path!r} is {info.file_size} bytes unpacked; "
            f"one file may be at most {limits.max_file_bytes}"
        )
    if info.file_size > max(RATIO_GRACE_BYTES, limits.max_ratio * info.compress_size):
        raise _fail(
            f"entry {path!r} expands more than {limits.max_ratio} times "
            "(this is how zip bombs are built)"
        )
    return path


def _check_tree(files: Iterable[str], folders: set[str]) -> None:
    parents = set(folders)
    for path in files:
        parts = path.split("/")
        parents.update("/".join(parts[:i]) for i in range(1, len(parts)))
    for path in files:
        if path in parents:
            raise _fail(f"{path!r} is both a file and a folder")


def _check_overlaps(data: bytes, infos: list[zipfile.ZipInfo], end: int) -> None:
    """Each entry's local header and data must end before the next entry begins."""
    following = "the central directory"
    for info in sorted(infos, key=lambda i: i.header_offset, reverse=True):
        if _data_start(data, info) + info.compress_size > end:
            raise _fail(
                f"entry {info.orig_filename!r} overlaps {following} "
                "(this is how zip bombs are built)"
            )
        end, following = info.header_offset, repr(info.orig_filename)


def _data_start(data: bytes, info: zipfile.ZipInfo) -> int:
    start = info.header_offset
    if start < 0 or start + 30 > len(data) or data[start : start + 4] != b"PK\x03\x04":
        raise _fail(f"entry {info.orig_filename!r} has no local header where it should")
    name_len, extra_len = struct.unpack_from("<HH", data, start + 26)
    return int(start + 30 + name_len + extra_len)


def _read_entry(data: bytes, info: zipfile.ZipInfo, path: str, keep: bool) -> bytes | None:
    """The entry's bytes (None when not kept), checked against its declared size and CRC-32."""
    start = _data_start(data, info)
    raw = memoryview(data)[start : start + info.compress_size]
    stored = info.compress_type == zipfile.ZIP_STORED
    if stored:
        chunks: Iterable[bytes | memoryview] = (raw[: info.file_size + 1],)
    else:
        chunks = _inflate(raw, info.file_size, path)
    size, crc, kept = 0, 0, []
    for chunk in chunks:
        size += len(chunk)
        crc = zlib.crc32(chunk, crc)
        if keep:
            kept.append(bytes(chunk))
    if size != info.file_size or (stored and len(raw) != info.file_size):
        actual = len(raw) if stored else size
        raise _fail(f"entry {path!r} holds {actual} bytes, not the {info.file_size} declared")
    if crc != info.CRC:
        raise _fail(f"entry {path!r} is corrupt (bad CRC-32)")
    return b"".join(kept) if keep else None


def _inflate(raw: memoryview, limit: int, path: str) -> Iterator[bytes]:
    """Inflate chunk by chunk, yielding at most `limit` bytes in all: more raises."""
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    produced = 0
    try:
        for offset in range(0, max(len(raw), 1), _CHUNK):
            pending: bytes | memoryview = raw[offset : offset + _CHUNK]
            while not inflater.eof:
                chunk = inflater.decompress(pending, _CHUNK)
                produced += len(chunk)
                if produced > limit:
                    raise _fail(f"entry {path!r} holds more data than its header declares")
                yield chunk
                pending = inflater.unconsumed_tail
                if not chunk and not pending:
                    break
    except zlib.error as e:
        raise _fail(f"entry {path!r} is corrupt ({e})") from e
    if not inflater.eof:
        raise _fail(f"entry {path!r} is truncated")


def _common_folder(paths: list[str]) -> str:
    """`top/` when every file sits under one top-level folder, else ''."""
    tops = {path.split("/", 1)[0] for path in paths}
    if len(tops) != 1 or any("/" not in path for path in paths):
        return ""
    return next(iter(tops)) + "/"


def extract_archive(data: bytes, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> Archive:
    """Check `data` as `read_archive` does, then write its files under `dest` (mode 0o644).

    `dest` must be missing or an empty directory (FileExistsError otherwise). Links are never
    followed: every target must resolve inside `dest` and is created with O_EXCL|O_NOFOLLOW.
    """
    archive = read_archive(data, limits)
    root = _prepare_dest(dest)
    for path, content in archive.files.items():
        _write_file(root, path, content)
    return archive


def _prepare_dest(dest: Path) -> Path:
    if dest.is_symlink():
        raise FileExistsError(f"{dest} is a symbolic link")
    if not dest.exists():
        dest.mkdir(parents=True, mode=0o755)
    elif not dest.is_dir() or any(dest.iterdir()):
        raise FileExistsError(f"{dest} must be an empty directory or not exist")
    return dest.resolve()


def _write_file(root: Path, path: str, content: bytes) -> None:
    target = root.joinpath(*path.split("/"))
    if not os.path.realpath(target).startswith(str(root) + os.sep):
        raise FileExistsError(f"{path!r} would be written outside {root}")
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(target, flags, 0o644)
    with os.fdopen(fd, "wb") as stream:
        os.fchmod(stream.fileno(), 0o644)
        stream.write(content)


def build_archive(files: Mapping[str, bytes]) -> bytes:
    """A deterministic zip of `files`: sorted, fixed timestamps, deflated, mode 0o644.

    The same files give the same bytes (with the same zlib). Names are written as given;
    `read_archive` is the one that judges them.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name in sorted(files):
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, files[name], compresslevel=6)
    return buffer.getvalue()
