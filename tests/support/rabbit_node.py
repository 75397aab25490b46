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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import resource
import secrets
import shutil
import signal
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from support.platform import free_port

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
USER = "rabbitmq"
CTL_TIMEOUT = 30.0  # seconds for one rabbitmqctl call
STOP_TIMEOUT = 15.0  # seconds for the node to exit after `rabbitmqctl stop`
OPEN_FILES = 65536  # RabbitMQ's production checklist
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1  # the first byte of connection.start, the broker's answer to the header


@dataclass(frozen=True)
class RabbitNode:
    name: str  # e.g. spooltest-1a2b3c4d@localhost
    port: int
    dist_port: int
    cookie: str
    directory: Path

    @property
    def amqp_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/?heartbeat=5"

    def log(self) -> str:
        """The node's own log file (channel errors, consumer timeouts, …)."""
        path = self.directory / "log" / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    async def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """`rabbitmqctl -q -n <node> --erlang-cookie <cookie> *args`; its stdout, stripped."""
        command = ["rabbitmqctl", "-q", "-n", self.name, "--erlang-cookie", self.cookie, *args]
        what = f"rabbitmqctl -n {self.name} {' '.join(args)}"  # never the cookie
        code, out, err = await _run(command, what, timeout)
        if code != 0:
            raise RuntimeError(f"{what} exited {code}: {err or out}")
        return out.strip()


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
    node = _new_node()
    try:
        _write_node(node, consumer_timeout_ms, owner)
        process = await _start(node)
        try:
            await _await_amqp(node, process, boot_timeout)
            yield node
        finally:
            await _stop(node, process)
    finally:
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


def _new_node() -> RabbitNode:
    port = free_port()
    dist_port = free_port()
    while dist_port == port:
        dist_port = free_port()
    # Under /tmp, not pytest's tmp_path: user rabbitmq cannot enter root's 0700 directories.
    directory = Path(tempfile.mkdtemp(prefix="spool-rabbit-", dir="/tmp"))
    name = f"spooltest-{secrets.token_hex(4)}@localhost"
    return RabbitNode(name, port, dist_port, secrets.token_hex(20).upper(), directory)


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


def _clean_env(**extra: str) -> dict[str, str]:
    """No RABBITMQ_* or ERL_* of ours may leak into the node or the CLI."""
    path = os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return {"PATH": path, "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", **extra}


async def _start(node: RabbitNode) -> asyncio.subprocess.Process:
    env = _clean_env(
        RABBITMQ_CONF_ENV_FILE=str(node.directory / "rabbitmq-env.conf"),
        HOME=str(node.directory / "home"),
    )
    # RabbitMQ keeps ~3 file handles per quorum queue: with the 1024 open files runuser's PAM
    # session leaves it, a node stalls at a few hundred queues (publishes go unconfirmed).
    raise_soft = f'ulimit -n {OPEN_FILES} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0"'
    command = ["sh", "-c", raise_soft, SERVER]
    if os.geteuid() == 0:
        command = ["runuser", "-u", USER, "--", *command]
    with (node.directory / "stdout.log").open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=node.directory,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,  # its own process group, to kill it whole if need be
            preexec_fn=_raise_hard_open_files,
        )


def _raise_hard_open_files() -> None:
    """Raise the hard open-files limit to OPEN_FILES where allowed (root with
    CAP_SYS_RESOURCE); the node's shell then raises its soft limit as far as the hard one."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < OPEN_FILES:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (OPEN_FILES, OPEN_FILES))


async def _await_amqp(
    node: RabbitNode, process: asyncio.subprocess.Process, timeout: float
) -> None:
    """Until the node answers the AMQP protocol header with connection.start."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if process.returncode is not None:
            raise RuntimeError(f"{node.name} exited {process.returncode}:\n{_tail(node)}")
        if await _answers_amqp(node.port):
            return
        await asyncio.sleep(0.25)
    raise RuntimeError(f"{node.name} did not answer AMQP within {timeout:.0f} s:\n{_tail(node)}")


async def _answers_amqp(port: int) -> bool:
    try:
        async with asyncio.timeout(2):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(AMQP_HEADER)
                await writer.drain()
                first = await reader.read(1)
            finally:
                writer.close()
                await writer.wait_closed()
    except (OSError, TimeoutError):
        return False
    return first == bytes([FRAME_METHOD])


def _tail(node: RabbitNode, chars: int = 3000) -> str:
    stdout = node.directory / "stdout.log"
    text = stdout.read_text(errors="replace") if stdout.exists() else ""
    return (text + node.log())[-chars:]


# --- stopping ---------------------------------------------------------------------------------


async def _stop(node: RabbitNode, process: asyncio.subprocess.Process) -> None:
    """`rabbitmqctl stop`, then SIGKILL to the node's process group if it is still there. The
    group is signalled only while its leader (our child) is unreaped, so its id is ours."""
    if process.returncode is None:
        with contextlib.suppress(RuntimeError):
            await node.ctl("stop")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    _kill_stragglers(node.directory)


def _kill_stragglers(directory: Path) -> None:
    """A node that hangs in its own shutdown outlives the script that started it (its group
    leader): SIGKILL every process whose command line names the node's directory."""
    marker = str(directory).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            continue


async def _run(command: list[str], what: str, timeout: float) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *command,
        env=_clean_env(),
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
