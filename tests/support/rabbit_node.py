"""A throw-away RabbitMQ node of a test's own, for broker settings the shared node must keep
(reference/reliability.md §6): its own node name, loopback AMQP and distribution ports, and
its own directories, so stopping it or breaking it touches nothing else.

Debian's `rabbitmq-server` drops to user `rabbitmq`, so the node runs as that user through
`runuser` with `RABBITMQ_CONF_ENV_FILE` pointing at our env file, and every directory it
writes is owned by `rabbitmq`. The host's EPMD (port 4369) is shared, as it is for any two
nodes on one host; the node only registers its name there. The node is stopped with
`rabbitmqctl stop` (its own cookie), killed by process group if it does not go, and its
directories are removed, whatever happened in between.

    async with rabbit_node(consumer_timeout_ms=60_000) as node:
        await node.ctl("eval", "application:get_env(rabbit, consumer_timeout).")  # {ok,60000}
        connection = await aio_pika.connect(node.amqp_url)

Being the test's own, a node can also be broken the ways the reliability suite needs
(reference/reliability.md §7, T07, T08, T10): frozen and thawed (`pause`/`resume`: SIGSTOP and
SIGCONT of the Erlang VM, so every socket stays open and nothing answers), killed (`kill`:
SIGKILL, no goodbye to any client) and started again on the same directory, name and port
(`restart`: durable queues and persistent messages survive), its AMQP application stopped and
started inside a live VM (`stop_app`/`start_app`), and its publishers blocked by a memory alarm
(`set_memory_watermark(0)`, undone by `set_memory_watermark(0.4)`). Mind one defect of 3.10.8:
a quorum queue declared within about a second before a SIGKILL comes back empty, at term 0,
and never elects a leader again, so kill a node only once its queues have settled.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from support.commands import run
from support.platform import free_port
from support.rabbit_process import (
    SERVER,
    USER,
    answers_amqp,
    kill_group,
    kill_stragglers,
    processes_naming,
    start_server,
)

CTL_TIMEOUT = 30.0  # seconds for one rabbitmqctl call
STOP_TIMEOUT = 15.0  # seconds for the node to exit after `rabbitmqctl stop`


@dataclass
class _Running:
    """The node's mutable part: its server process while it runs (None once killed or
    stopped), and how long a (re)start may take to answer AMQP."""

    boot_timeout: float
    process: asyncio.subprocess.Process | None = None


@dataclass(frozen=True)
class RabbitNode:
    name: str  # e.g. spooltest-1a2b3c4d@localhost
    port: int
    dist_port: int
    cookie: str
    directory: Path
    running: _Running = field(default_factory=lambda: _Running(60.0), compare=False, repr=False)

    @property
    def amqp_url(self) -> str:
        return self.url()

    def url(self, heartbeat: int = 5) -> str:
        """The AMQP URL with the heartbeat (seconds) clients should negotiate."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/?heartbeat={heartbeat}"

    def log(self) -> str:
        """The node's own log file (channel errors, consumer timeouts, …)."""
        path = self.directory / "log" / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """`rabbitmqctl -q -n <node> --erlang-cookie <cookie> *args`; its stdout, stripped."""
        command = ["rabbitmqctl", "-q", "-n", self.name, "--erlang-cookie", self.cookie, *args]
        what = f"rabbitmqctl -n {self.name} {' '.join(args)}"  # never the cookie
        code, out, err = await run(command, what, timeout)
        if code != 0:
            raise RuntimeError(f"{what} exited {code}: {err or out}")
        return out.strip()

    # --- faults -------------------------------------------------------------------------------

    def pause(self) -> None:
        """Freeze the Erlang VM (SIGSTOP): connections stay open and nothing answers, which
        is a silent broker, or a half-open TCP connection, to every client."""
        os.kill(self.beam_pid(), signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.beam_pid(), signal.SIGCONT)

    def beam_pid(self) -> int:
        """The node's Erlang VM (beam.smp), found by the node directory in its command line."""
        for pid, argv in processes_naming(self.directory):
            if argv and argv[0].endswith(b"/beam.smp"):
                return pid
        raise RuntimeError(f"{self.name} has no running Erlang VM")

    async def kill(self) -> None:
        """SIGKILL the node whole: no client hears a goodbye, nothing is flushed by choice."""
        process = self.running.process
        if process is None:
            raise RuntimeError(f"{self.name} is not running")
        self.running.process = None
        await _kill(self, process)

    async def restart(self) -> None:
        """Start the node again on its directory, name and ports (stopping it first if it
        runs); returns once it answers AMQP. What it stored durably is there again."""
        process = self.running.process
        if process is not None:
            self.running.process = None
            await _stop(self, process)
        await self._boot()

    async def stop_app(self) -> None:
        """Stop RabbitMQ inside a live VM: every client connection is closed, the port
        refuses new ones."""
        await self.ctl("stop_app")

    async def start_app(self) -> None:
        """Start RabbitMQ in the VM again; returns once it has booted (as `restart`)."""
        await self.ctl("start_app", timeout=self.running.boot_timeout)
        await self.ctl("await_startup", timeout=self.running.boot_timeout)

    async def set_memory_watermark(self, fraction: float) -> None:
        """`set_vm_memory_high_watermark`: 0 raises the memory alarm (every publishing
        connection is blocked), 0.4 (the default) clears it."""
        await self.ctl("set_vm_memory_high_watermark", f"{fraction:g}")

    async def _boot(self) -> None:
        """Start the server; return once it is booted whole. Its port answers before its
        queues are back: a quorum queue reports 0 messages until it has a leader again."""
        self.running.process = await start_server(self.directory)
        await _await_amqp(self, self.running.process, self.running.boot_timeout)
        await self.ctl("await_startup", timeout=self.running.boot_timeout)

    async def _shutdown(self) -> None:
        process = self.running.process
        self.running.process = None
        if process is not None:
            await _stop(self, process)


def node_files(
    name: str, port: int, dist_port: int, directory: Path, config: str
) -> dict[str, str]:
    """The files of a node rooted at `directory`: relative path -> content."""
    env = {
        "NODENAME": name,
        "NODE_IP_ADDRESS": "127.0.0.1",
        "NODE_PORT": str(port),
        "DIST_PORT": str(dist_port),
        "MNESIA_BASE": str(directory / "mnesia"),
        "LOG_BASE": str(directory / "log"),
        "CONFIG_FILE": str(directory / "rabbitmq.conf"),
        "ENABLED_PLUGINS_FILE": str(directory / "enabled_plugins"),
        "HOME": str(directory / "home"),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
    }
    return {
        "rabbitmq-env.conf": "".join(f"{k}={v}\n" for k, v in env.items()),
        "rabbitmq.conf": config,
        "enabled_plugins": "[].\n",  # none: the shared node may hold the management port
    }


def node_config(port: int, consumer_timeout_ms: int) -> str:
    return (
        f"listeners.tcp.default = 127.0.0.1:{port}\n"
        "distribution.listener.interface = 127.0.0.1\n"
        f"consumer_timeout = {consumer_timeout_ms}\n"
    )


@contextlib.asynccontextmanager
async def rabbit_node(
    *, consumer_timeout_ms: int = 60_000, boot_timeout: float = 60.0
) -> AsyncIterator[RabbitNode]:
    """A running node, answering AMQP on 127.0.0.1; stopped and removed on the way out."""
    owner = _rabbitmq_user()
    node = _new_node(boot_timeout)
    try:
        _write_node(node, consumer_timeout_ms, owner)
        try:
            await node._boot()
            yield node
        finally:
            await node._shutdown()
    finally:
        kill_stragglers(node.directory)
        shutil.rmtree(node.directory, ignore_errors=True)


# --- starting ---------------------------------------------------------------------------------


def _rabbitmq_user() -> pwd.struct_passwd:
    if not Path(SERVER).exists():
        raise RuntimeError(f"{SERVER} not found: install Debian's rabbitmq-server")
    try:
        owner = pwd.getpwnam(USER)
    except KeyError as e:
        raise RuntimeError(f"no user {USER!r}: install Debian's rabbitmq-server") from e
    if os.geteuid() not in (0, owner.pw_uid):
        raise RuntimeError(f"a throw-away RabbitMQ node must be started as root or {USER}")
    return owner


def _new_node(boot_timeout: float) -> RabbitNode:
    port = free_port()
    dist_port = free_port()
    while dist_port == port:
        dist_port = free_port()
    # Under /tmp, not pytest's tmp_path: user rabbitmq cannot enter root's 0700 directories.
    directory = Path(tempfile.mkdtemp(prefix="spool-rabbit-", dir="/tmp"))
    name = f"spooltest-{secrets.token_hex(4)}@localhost"
    cookie = secrets.token_hex(20).upper()
    return RabbitNode(name, port, dist_port, cookie, directory, _Running(boot_timeout))


def _write_node(node: RabbitNode, consumer_timeout_ms: int, owner: pwd.struct_passwd) -> None:
    config = node_config(node.port, consumer_timeout_ms)
    files = node_files(node.name, node.port, node.dist_port, node.directory, config)
    for sub in ("home", "mnesia", "log"):
        (node.directory / sub).mkdir()
    for relative, content in files.items():
        (node.directory / relative).write_text(content)
    cookie = node.directory / "home" / ".erlang.cookie"
    cookie.write_text(node.cookie)
    cookie.chmod(0o400)  # Erlang refuses a cookie file others can read
    node.directory.chmod(0o755)
    for path in [node.directory, *node.directory.rglob("*")]:
        os.chown(path, owner.pw_uid, owner.pw_gid)


async def _await_amqp(
    node: RabbitNode, process: asyncio.subprocess.Process, timeout: float
) -> None:
    """Until the node answers the AMQP protocol header with connection.start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"{node.name} exited {process.returncode}:\n{_tail(node)}")
        if await answers_amqp(node.port):
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(f"{node.name} did not answer AMQP within {timeout:.0f} s:\n{_tail(node)}")


def _tail(node: RabbitNode, chars: int = 3000) -> str:
    stdout = node.directory / "stdout.log"
    text = stdout.read_text(errors="replace") if stdout.exists() else ""
    return (text + node.log())[-chars:]


# --- stopping ---------------------------------------------------------------------------------


async def _stop(node: RabbitNode, process: asyncio.subprocess.Process) -> None:
    """`rabbitmqctl stop` (a paused node is thawed first, or it could not answer), then
    SIGKILL to whatever of the node is still there."""
    if process.returncode is None:
        with contextlib.suppress(RuntimeError, OSError):
            node.resume()
        with contextlib.suppress(RuntimeError):
            await node.ctl("stop")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    await _kill(node, process)


async def _kill(node: RabbitNode, process: asyncio.subprocess.Process) -> None:
    await kill_group(process)
    kill_stragglers(node.directory)
