"""T25 through the real API: every hostile zip is refused with a 4xx naming `codebase` and the
reason, quickly, without the gateway unpacking it, and nothing is stored; odd but harmless zips
are kept byte for byte, and the real agent unpacks them as they are."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio
from support.hostile_zips import Harmless, Hostile, accepted, every_oddity, over_size_cap, refused
from support.platform import LocalPlatform, run, running_platform

from spool_common.archive import MIB, build_archive, read_archive

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CAP = 8 * MIB  # the gateway's SPOOL_MAX_UPLOAD_BYTES here: the 413 case needs only 8 MiB
HANG_GUARD_SECONDS = 10.0  # a guard against a request that hangs, not a performance target
# The 1 GiB bombs arrive as ~1 MB. Unpacking one would lift the gateway's peak RSS by ~1 GiB;
# refusing it from its headers costs a few MB. This bound tells the two apart.
RSS_GROWTH_LIMIT = 300 * 1000 * 1000

LISTER = b"""\
import hashlib, os

HERE = os.path.dirname(os.path.abspath(__file__))


class ServiceRunner:
    def run(self):
        found = {}
        for folder, dirs, files in os.walk(HERE):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    found[os.path.relpath(path, HERE)] = hashlib.sha256(f.read()).hexdigest()
        return found
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    tmp_path_factory: pytest.TempPathFactory, servers: None
) -> AsyncIterator[LocalPlatform]:
    """conftest's platform, with the gateway's upload cap lowered to CAP."""
    async with running_platform(
        tmp_path_factory.mktemp("platform"), {"SPOOL_MAX_UPLOAD_BYTES": str(CAP)}
    ) as p:
        yield p


@dataclass(frozen=True)
class World:
    platform: LocalPlatform
    client: httpx.AsyncClient
    project_id: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(platform: LocalPlatform) -> AsyncIterator[World]:
    async with platform.client() as client:
        project = await client.post("/projects", json={"name": "hostile"})
        assert project.status_code == 201, project.text
        yield World(platform, client, project.json()["id"])


@dataclass(frozen=True)
class Pushed:
    response: httpx.Response
    seconds: float
    rss_growth: int  # bytes: the gateway's peak RSS during the request, less its RSS before


def _status_bytes(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def _reset_peak(pid: int) -> int:
    """Set the process's VmHWM to its VmRSS (Linux clear_refs 5); return that RSS."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return _status_bytes(pid, "VmRSS")


async def _push(world: World, data: bytes, name: str = "hostile") -> Pushed:
    pid = world.platform.processes["gateway"].pid
    rss_before = _reset_peak(pid)
    started = time.monotonic()
    response = await world.client.post(
        "/packages",
        files={"codebase": ("code.zip", data, "application/zip")},
        data={"projectId": world.project_id, "package": orjson.dumps({"name": name}).decode()},
    )
    seconds = time.monotonic() - started
    return Pushed(response, seconds, _status_bytes(pid, "VmHWM") - rss_before)


async def _stored(world: World) -> tuple[int, int, int]:
    """Packages as the API lists them, and the rows of the gateway's packages and codebases."""
    listed = await world.client.get("/packages", params={"projectId": world.project_id})
    settings = {"search_path": world.platform.schema("gateway")}
    conn = await asyncpg.connect(world.platform.database_url, server_settings=settings)
    try:
        packages = await conn.fetchval("SELECT count(*) FROM packages")
        codebases = await conn.fetchval("SELECT count(*) FROM codebases")
    finally:
        await conn.close()
    return len(listed.json()), int(packages), int(codebases)


def _codebase_reason(pushed: Pushed, status: int) -> str:
    response = pushed.response
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"]
    assert body["message"]
    reasons = [d["reason"] for d in body["details"] if d["field"] == "codebase"]
    assert reasons, body
    return str(reasons[0])


def _cheap(pushed: Pushed) -> None:
    assert pushed.seconds < HANG_GUARD_SECONDS
    assert pushed.rss_growth < RSS_GROWTH_LIMIT, f"gateway peak RSS grew {pushed.rss_growth} B"


@pytest.mark.parametrize("case", refused(), ids=lambda case: case.id)
async def test_a_hostile_archive_is_refused_cheaply_and_nothing_is_stored(
    world: World, case: Hostile
) -> None:
    before = await _stored(world)
    pushed = await _push(world, case.data)
    assert case.reason in _codebase_reason(pushed, 400)
    _cheap(pushed)
    assert await _stored(world) == before


async def test_an_archive_over_the_upload_cap_is_413_and_not_stored(world: World) -> None:
    before = await _stored(world)
    pushed = await _push(world, over_size_cap(CAP))
    assert _codebase_reason(pushed, 413) == f"at most {CAP} bytes"
    _cheap(pushed)
    assert await _stored(world) == before


async def _round_trip(world: World, data: bytes, name: str) -> dict[str, Any]:
    before = await _stored(world)
    pushed = await _push(world, data, name)
    assert pushed.response.status_code == 201, pushed.response.text
    _cheap(pushed)
    package: dict[str, Any] = pushed.response.json()
    assert package["codebase"]["itemId"] == hashlib.sha256(data).hexdigest()
    downloaded = await world.client.get(f"/packages/{package['id']}/codebase")
    assert downloaded.status_code == 200, downloaded.text
    assert downloaded.content == data
    listed, packages, codebases = before
    assert await _stored(world) == (listed + 1, packages + 1, codebases + 1)
    return package


async def test_a_valid_archive_still_round_trips(world: World) -> None:
    data = build_archive({"main.py": b"class ServiceRunner:\n    def run(self):\n        pass\n"})
    await _round_trip(world, data, "valid")


@pytest.mark.parametrize("case", accepted(), ids=lambda case: case.id)
async def test_an_odd_but_harmless_archive_is_kept_byte_for_byte(
    world: World, case: Harmless
) -> None:
    """`A.py` and `a.py` are two files (the checks have no case-folding rule); a zip in the
    zip is a file, never unpacked; bytes before the zip are kept in the stored archive."""
    await _round_trip(world, case.data, case.id)
    assert read_archive(case.data).files == case.files


async def test_the_agent_unpacks_an_odd_archive_as_it_is(world: World) -> None:
    """The real agent fetches and extracts a polyglot holding case-colliding names and a
    1 GiB zip bomb as a file; the user's code sees exactly the files that were pushed."""
    odd = every_oddity(LISTER)
    package = await _round_trip(world, odd.data, "every-oddity")
    body = {"name": "oddity", "projectId": world.project_id, "packageId": package["id"]}
    service = await world.client.post("/services", json={**body, "runtime": {"numReplicas": 1}})
    assert service.status_code == 201, service.text
    done = await run(world.client, service.json()["id"], {})
    assert done["latestStatus"]["status"] == "success", done
    expected = {name: hashlib.sha256(content).hexdigest() for name, content in odd.files.items()}
    assert done["output"] == expected
