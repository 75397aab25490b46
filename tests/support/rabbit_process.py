"""The operating-system side of a throw-away RabbitMQ node (support/rabbit_node.py): starting
Debian's server script as user `rabbitmq` in a process group of its own, telling when it
answers AMQP, finding its processes by the node directory in their command lines, killing
them. Nothing here knows what a node is for.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
from pathlib import Path

from support.commands import clean_env

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
USER = "rabbitmq"
OPEN_FILES = 65536  # RabbitMQ's production checklist
AMQP_HEADER = b"AMQP\x00\x00\x09\x01"
FRAME_METHOD = 1  # the first byte of connection.start, the broker's answer to the header


async def start_server(directory: Path) -> asyncio.subprocess.Process:
    """The server of the node whose files are in `directory` (its env file and HOME)."""
    env = clean_env(
        RABBITMQ_CONF_ENV_FILE=str(directory / "rabbitmq-env.conf"),
        HOME=str(directory / "home"),
    )
    # RabbitMQ keeps ~3 file handles per quorum queue: with the 1024 open files runuser's PAM
    # session leaves it, a node stalls at a few hundred queues (publishes go unconfirmed).
    raise_soft = f'ulimit -n {OPEN_FILES} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$0"'
    command = ["sh", "-c", raise_soft, SERVER]
    if os.geteuid() == 0:
        command = ["runuser", "-u", USER, "--", *command]
    with (directory / "stdout.log").open("ab") as out:
        return await asyncio.create_subprocess_exec(
            *command,
            env=env,
            cwd=directory,
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


async def answers_amqp(port: int) -> bool:
    """Whether 127.0.0.1:`port` answers the AMQP protocol header with connection.start."""
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


async def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGKILL the process group `process` leads, and reap it. The group is signalled only
    while its leader (our child) is unreaped, so its id is still ours."""
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


def kill_stragglers(directory: Path) -> None:
    """A node that hangs in its own shutdown outlives the script that started it (its group
    leader): SIGKILL every process whose command line names the node's directory."""
    for pid, _ in processes_naming(directory):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def processes_naming(directory: Path) -> list[tuple[int, list[bytes]]]:
    """(pid, argv) of every process whose command line names `directory`."""
    marker = str(directory).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker in cmdline:
            found.append((int(entry.name), cmdline.split(b"\0")))
    return found
