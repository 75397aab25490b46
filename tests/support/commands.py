"""Running a server's command-line tools from the tests (rabbitmqctl, initdb, pg_ctl): a clean
environment, a bounded wait, and the whole process group killed past it."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path


def clean_env(**extra: str) -> dict[str, str]:
    """No variable of ours (RABBITMQ_*, ERL_*, PG*, SPOOL_*) may leak into a server or a CLI."""
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {"PATH": path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", **extra}


async def run(
    command: list[str], what: str, timeout: float, cwd: Path | None = None
) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of a CLI call, killed whole past `timeout`."""
    process = await asyncio.create_subprocess_exec(
        *command,
        env=clean_env(),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        os.killpg(process.pid, signal.SIGKILL)  # unreaped, so the group is still ours
        await process.wait()
        raise RuntimeError(f"{what} did not answer within {timeout:.0f} s") from None
    return int(process.returncode or 0), out.decode(errors="replace"), err.decode(errors="replace")
