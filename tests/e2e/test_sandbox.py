"""T26 (reliability.md §5.3): user code tries to escape or abuse its runner on the process
driver. Each attempt fails that execution alone, with the operating system's own error; a
normal execution running meanwhile on the same replica succeeds, and the agent lives on.

Agents run as root here, so user code runs under a uid of its replica's own (see
spool_agent.sandbox); the service runs each execution as a process, with a 2 GiB memory limit.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
from support.platform import deploy, run, wait

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

CODE = b"""
import ctypes
import os
import time

PTRACE_ATTACH = 16


def agent_pid():
    # In process mode our parent is the runner; the runner's parent is the agent.
    pid = os.getppid()
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        if b"spool_agent.runner" in f.read():
            with open(f"/proc/{pid}/stat") as stat:
                pid = int(stat.read().rsplit(")", 1)[1].split()[1])
    return pid


class ServiceRunner:
    def probe(self):
        return {"uid": os.getuid(), "agentPid": agent_pid(), "cwd": os.getcwd(),
                "spool": sorted(k for k in os.environ if k.startswith("SPOOL_"))}

    def sleep(self, seconds):
        time.sleep(seconds)
        return "slept"

    def read_agent_environ(self):
        with open(f"/proc/{agent_pid()}/environ", "rb") as f:
            return f.read().decode(errors="replace")

    def ptrace_agent(self):
        libc = ctypes.CDLL(None, use_errno=True)
        pid = agent_pid()
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) != 0:
            err = ctypes.get_errno()
            raise PermissionError(err, f"ptrace(PTRACE_ATTACH, {pid}): {os.strerror(err)}")
        libc.ptrace(17, pid, None, None)  # PTRACE_DETACH
        return "attached"

    def write_file(self, path):
        with open(path, "w") as f:
            f.write("T26")
        return "written"

    def fork_bomb(self):
        children = []
        try:
            for _ in range(100_000):
                pid = os.fork()
                if pid == 0:
                    time.sleep(60)
                    os._exit(0)
                children.append(pid)
        finally:
            for pid in children:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
        return f"forked {len(children)}"

    def allocate(self, gb):
        block = bytearray(int(gb * 10**9))
        return len(block)

    def big_file(self, gb):
        with open("big.bin", "wb") as f:
            f.seek(int(gb * 10**9))
            f.write(b"x")
        return "written"

    def open_files(self, count):
        files = []
        try:
            for _ in range(count):
                files.append(open("/dev/null", "rb"))
        finally:
            for f in files:
                f.close()
        return len(files)
"""

FUNCTIONS = {
    "probe": [],
    "sleep": [{"name": "seconds", "type": "Float"}],
    "read_agent_environ": [],
    "ptrace_agent": [],
    "write_file": [{"name": "path", "type": "String"}],
    "fork_bomb": [],
    "allocate": [{"name": "gb", "type": "Float"}],
    "big_file": [{"name": "gb", "type": "Float"}],
    "open_files": [{"name": "count", "type": "Integer"}],
}


def package_json() -> bytes:
    functions = [{"name": name, "input": inputs} for name, inputs in FUNCTIONS.items()]
    modules = [{"name": "default_module", "functions": functions}]
    return orjson.dumps({"name": "sandbox", "modules": modules})


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def sandboxed(client: httpx.AsyncClient) -> dict[str, Any]:
    files = {"main.py": CODE, "package.json": package_json()}
    return await deploy(
        client,
        files,
        "sandboxed",
        executionTimeout=30,
        onReset="failed",
        maxAttempts=1,
        runExecutionAsProcess=True,
        runtime={"concurrency": 10, "resources": {"limits": {"memory": "2Gi"}}},
    )


# function, input, the error's type, a part of its message
ATTEMPTS: list[tuple[str, dict[str, Any], str, str]] = [
    ("read_agent_environ", {}, "PermissionError", "Permission denied"),
    ("ptrace_agent", {}, "PermissionError", "Operation not permitted"),
    ("write_file", {"path": "/etc/spool-t26"}, "PermissionError", "Permission denied"),
    ("write_file", {"path": "../spool-t26"}, "PermissionError", "Permission denied"),
    ("fork_bomb", {}, "BlockingIOError", "Resource temporarily unavailable"),
    ("allocate", {"gb": 4}, "MemoryError", ""),
    ("big_file", {"gb": 10}, "OSError", "File too large"),
    ("open_files", {"count": 100_000}, "OSError", "Too many open files"),
]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_user_code_runs_as_its_own_uid_without_the_agents_credentials(
    client: httpx.AsyncClient, sandboxed: dict[str, Any]
) -> None:
    done = await run(client, sandboxed["id"], {}, function="probe")
    assert done["latestStatus"]["status"] == "success", done
    out = done["output"]
    assert out["uid"] != 0
    assert out["uid"] != os.getuid()
    # None of the agent's SPOOL_* (broker, database, agent token): only the API's address and
    # the service bot's token, which user code is meant to act with.
    assert out["spool"] == ["SPOOL_TOKEN", "SPOOL_URL"]
    assert out["cwd"].endswith("/codebase")


async def test_every_t26_attempt_fails_alone_and_the_agent_lives_on(
    client: httpx.AsyncClient, sandboxed: dict[str, Any]
) -> None:
    service_id = sandboxed["id"]
    before = (await run(client, service_id, {}, function="probe"))["output"]["agentPid"]
    body = {"functionName": "sleep", "input": {"seconds": 6}}
    normal = (await client.post(f"/executions/{service_id}", json=body)).json()
    await asyncio.sleep(1)  # it is running before the attacks begin

    async def attempt(function: str, inputs: dict[str, Any]) -> dict[str, Any]:
        return await run(client, service_id, inputs, function=function)

    results = await asyncio.gather(*(attempt(f, i) for f, i, _, _ in ATTEMPTS))
    for (function, inputs, kind, text), done in zip(ATTEMPTS, results, strict=True):
        status = done["latestStatus"]
        assert status["status"] == "failed", (function, inputs, done.get("output"))
        assert status["error"]["type"] == kind, (function, status["error"])
        assert text in status["error"]["message"], (function, status["error"])
    assert (await wait(client, normal["id"]))["latestStatus"]["status"] == "success"
    assert _alive(before)
    after = await run(client, service_id, {}, function="probe")
    assert after["latestStatus"]["status"] == "success"
    assert after["output"]["agentPid"] == before  # the same agent: never restarted
