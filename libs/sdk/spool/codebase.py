"""A package's source directory as the zip the gateway takes, and its package.json.

The zip is built by `spool_common.archive.build_archive` (sorted, fixed timestamps), so the
same sources always give the same bytes. Version-control data, virtual environments and
bytecode caches are left out: they are large, and the replica never needs them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from spool.errors import BadRequest, Detail
from spool_common.archive import build_archive

SKIPPED_DIRS = frozenset(
    {".git", ".hg", ".svn", "__pycache__", ".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache"}
)
SKIPPED_SUFFIXES = (".pyc", ".pyo")
MANIFEST = "package.json"


def skipped(relative: str) -> bool:
    """Pure: whether a file at this POSIX path relative to the source is left out."""
    *folders, name = relative.split("/")
    return any(f in SKIPPED_DIRS for f in folders) or name.endswith(SKIPPED_SUFFIXES)


def read_sources(root: Path) -> dict[str, bytes]:
    """Every file under `root` that is not `skipped`, keyed by POSIX relative path."""
    if not root.is_dir():
        raise BadRequest(
            f"{root} is not a directory", details=(Detail("src_path", "must be a directory"),)
        )
    files: dict[str, bytes] = {}
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in names:
            path = Path(folder, name)
            relative = path.relative_to(root).as_posix()
            if not skipped(relative) and path.is_file():
                files[relative] = path.read_bytes()
    if not files:
        raise BadRequest(f"{root} holds no files", details=(Detail("src_path", "is empty"),))
    return files


def zip_sources(files: dict[str, bytes]) -> bytes:
    return build_archive(files)


def manifest(files: dict[str, bytes]) -> dict[str, Any]:
    """package.json's object, or {} when there is none."""
    raw = files.get(MANIFEST)
    if raw is None:
        return {}
    try:
        value = orjson.loads(raw.removeprefix(b"\xef\xbb\xbf"))
    except orjson.JSONDecodeError as e:
        raise BadRequest(
            f"package.json is not valid JSON: {e}", details=(Detail(MANIFEST, "not valid JSON"),)
        ) from None
    if not isinstance(value, dict):
        raise BadRequest(
            "package.json must hold a JSON object",
            details=(Detail(MANIFEST, "must be a JSON object"),),
        )
    return value
