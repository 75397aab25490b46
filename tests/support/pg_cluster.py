"""A throw-away PostgreSQL 15 cluster of a test's own, for faults the shared server must never
see (reference/reliability.md §6, T17/T18): restarting it, stopping it, killing its backends.

`initdb` refuses to run as root, so the cluster belongs to user `postgres` (through `runuser`
when we are root) and lives in a fresh directory under /tmp (postgres cannot enter pytest's
0700 temp directories): `data/` for the cluster, the unix socket beside it, the server log in
`postgres.log`. It listens on 127.0.0.1 on a free port with trust authentication; fsync is off,
since a test never survives a power cut. On the way out it is stopped (immediate), anything of
it still alive is killed by pid, and its directory is removed, whatever happened in between.

    async with pg_cluster() as cluster:
        ... cluster.url ...
        await cluster.restart("immediate")
        await cluster.terminate_backends()
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import asyncpg
from support.commands import run
from support.ledger import children
from support.platform import free_port

BIN = Path("/usr/lib/postgresql/15/bin")
USER = "postgres"
CTL_TIMEOUT = 60.0  # seconds for one initdb or pg_ctl call on a loaded 2-core machine
StopMode = Literal["smart", "fast", "immediate"]

# Appended to postgresql.conf, so `pg_ctl restart` keeps them. Room for four services' pools
# and the test's own connections. fsync is off for speed: only an OS crash could lose what it
# protects. synchronous_commit stays on: with it off, an immediate stop (a postmaster crash)
# loses commits already acknowledged, and T17 would count them as lost executions.
SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{directory}'
max_connections = 200
fsync = off
"""


@dataclass(frozen=True)
class PgCluster:
    port: int
    directory: Path  # ours: the data directory, the socket and the log are inside

    @property
    def url(self) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/postgres"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def log(self) -> str:
        """The server's log (shutdowns, terminated backends, crash recovery, …)."""
        path = self.directory / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def start(self) -> None:
        """Start the postmaster and wait until it accepts connections."""
        log = str(self.directory / "postgres.log")
        await self._ctl("start", "-w", "-t", str(int(CTL_TIMEOUT)), "-l", log)

    async def stop(self, mode: StopMode = "fast") -> None:
        await self._ctl("stop", "-w", "-m", mode)

    async def restart(self, mode: StopMode = "fast") -> None:
        """Stop in `mode` (immediate: a crash, recovered from the WAL at start), start again."""
        await self.stop(mode)
        await self.start()

    async def terminate_backends(self) -> int:
        """pg_terminate_backend every other client backend; how many were terminated."""
        conn = await asyncpg.connect(self.url)
        try:
            killed = await conn.fetchval(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
            )
        finally:
            await conn.close()
        return int(killed)

    def pause(self) -> None:
        """SIGSTOP the postmaster and its children: a silent peer, sockets left open."""
        self._signal_all(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_all(signal.SIGCONT)

    def postmaster_pid(self) -> int | None:
        """From `postmaster.pid` (None while the cluster is stopped)."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def pids(self) -> list[int]:
        """The postmaster and its children (backends, checkpointer, …)."""
        postmaster = self.postmaster_pid()
        if postmaster is None:
            return []
        return [postmaster, *children(postmaster)]

    def _signal_all(self, sig: signal.Signals) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    async def _ctl(self, *args: str) -> None:
        await _run_as_postgres([str(BIN / "pg_ctl"), "-D", str(self.data), *args], self.directory)


@contextlib.asynccontextmanager
async def pg_cluster() -> AsyncIterator[PgCluster]:
    """A running cluster answering on 127.0.0.1; stopped, killed if need be, and removed on
    the way out."""
    owner = _postgres_user()
    cluster = PgCluster(free_port(), Path(tempfile.mkdtemp(prefix="spool-pg-", dir="/tmp")))
    try:
        os.chown(cluster.directory, owner.pw_uid, owner.pw_gid)
        await _init(cluster)
        await cluster.start()
        yield cluster
    finally:
        await _stop_for_good(cluster)
        shutil.rmtree(cluster.directory, ignore_errors=True)


# --- starting ---------------------------------------------------------------------------------


def _postgres_user() -> pwd.struct_passwd:
    if not (BIN / "initdb").exists():
        raise RuntimeError(f"{BIN}/initdb not found: install Debian's postgresql-15")
    try:
        owner = pwd.getpwnam(USER)
    except KeyError as e:
        raise RuntimeError(f"no user {USER!r}: install Debian's postgresql-15") from e
    if os.geteuid() not in (0, owner.pw_uid):
        raise RuntimeError(f"a throw-away PostgreSQL cluster must be started as root or {USER}")
    return owner


async def _init(cluster: PgCluster) -> None:
    initdb = [str(BIN / "initdb"), "-D", str(cluster.data), "-U", USER, "-A", "trust"]
    await _run_as_postgres(
        [*initdb, "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"], cluster.directory
    )
    settings = SETTINGS.format(port=cluster.port, directory=cluster.directory)
    with (cluster.data / "postgresql.conf").open("a") as conf:
        conf.write(settings)


async def _run_as_postgres(command: list[str], cwd: Path) -> None:
    """Run `command` as user postgres in `cwd` (one of its own: postgres cannot enter root's
    working directory); its output in the error if it fails."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", USER, "--", *command]
    what = " ".join(command)
    code, out, err = await run(command, what, CTL_TIMEOUT, cwd=cwd)
    if code != 0:
        raise RuntimeError(f"{what} exited {code}:\n{out}{err}")


# --- stopping ---------------------------------------------------------------------------------


async def _stop_for_good(cluster: PgCluster) -> None:
    """`pg_ctl stop -m immediate`, then SIGKILL to whatever of the cluster is still alive (a
    paused cluster is resumed first: a stopped process cannot act on a signal to quit). A pid
    is killed only if it still names the process seen before the stop (same start time), so
    a pid the system has reused since is never touched."""
    seen = {pid: _start_time(pid) for pid in cluster.pids()}
    cluster.resume()
    if seen:
        with contextlib.suppress(RuntimeError):
            await cluster.stop("immediate")
    for pid, started in seen.items():
        if started is not None and _start_time(pid) == started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/<pid>/stat field 22)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text[text.rindex(")") + 2 :].split()[19])  # the name may hold spaces
