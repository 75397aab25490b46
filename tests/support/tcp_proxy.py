"""A TCP proxy on loopback for network faults between the platform and its broker
(reference/reliability.md §6: no Toxiproxy and no netem on these machines, so a Python proxy
stands in). Clients connect to `proxy.port`; each connection is forwarded to the upstream
port on a connection of its own, and closing either side closes both.

Faults: `disconnect_all()` closes every connection at once (both ends see the close);
`refuse()` closes every new connection at once (a server that is down) until `accept()`;
`drop_server_bytes()` makes the network silent toward the clients: whatever the server sends
is read and thrown away, while the clients' bytes still reach it, so neither side sees a
close (a half-open connection, as a dead link or a frozen NAT gives); `forward()` carries
server bytes again (those dropped meanwhile stay lost).

    async with tcp_proxy(node.port) as proxy:
        url = f"amqp://guest:guest@127.0.0.1:{proxy.port}/"
        proxy.drop_server_bytes()
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass(eq=False)  # hashed by identity, to be kept in a set
class _Pair:
    """One proxied connection: the client's stream and ours to the upstream."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    pumps: list[asyncio.Task[None]] = field(default_factory=list)

    def close(self) -> None:
        for writer in (self.client, self.upstream):
            writer.close()


class TcpProxy:
    def __init__(self, upstream_port: int, host: str = "127.0.0.1") -> None:
        self.upstream_port = upstream_port
        self.host = host
        self.port = 0  # known once started
        self.dropping = False
        self.refusing = False
        self.accepted = 0  # connections accepted so far
        self._pairs: set[_Pair] = set()
        self._server: asyncio.Server | None = None

    @property
    def connections(self) -> int:
        return len(self._pairs)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.disconnect_all()
        pumps = [p for pair in list(self._pairs) for p in pair.pumps]
        await asyncio.gather(*pumps, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def disconnect_all(self) -> None:
        """Close every proxied connection, both ends; new connections are still accepted."""
        for pair in list(self._pairs):
            pair.close()

    def refuse(self) -> None:
        """From now on, new connections are closed as soon as they are made."""
        self.refusing = True

    def accept(self) -> None:
        """Forward new connections again."""
        self.refusing = False

    def drop_server_bytes(self) -> None:
        """From now on, server -> client bytes are read and discarded (a silent network)."""
        self.dropping = True

    def forward(self) -> None:
        """Carry server -> client bytes again."""
        self.dropping = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refusing:
            writer.close()
            return
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.host, self.upstream_port)
        except OSError:
            writer.close()  # the upstream refuses: so does the proxy
            return
        pair = _Pair(writer, up_writer)
        self._pairs.add(pair)
        pair.pumps = [
            asyncio.create_task(self._pump(reader, up_writer, lambda: False)),
            asyncio.create_task(self._pump(up_reader, writer, lambda: self.dropping)),
        ]
        try:
            await asyncio.wait(pair.pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pair.close()
            for pump in pair.pumps:
                pump.cancel()
            await asyncio.gather(*pair.pumps, return_exceptions=True)
            self._pairs.discard(pair)

    @staticmethod
    async def _pump(
        source: asyncio.StreamReader,
        target: asyncio.StreamWriter,
        drop: Callable[[], bool],
    ) -> None:
        """Copy until EOF or an error on either side; bytes read while `drop()` are lost."""
        with contextlib.suppress(OSError):
            while chunk := await source.read(CHUNK):
                if drop():
                    continue
                target.write(chunk)
                await target.drain()


@contextlib.asynccontextmanager
async def tcp_proxy(upstream_port: int) -> AsyncIterator[TcpProxy]:
    """A started proxy to 127.0.0.1:`upstream_port`; closed, with every connection, after."""
    proxy = TcpProxy(upstream_port)
    await proxy.start()
    try:
        yield proxy
    finally:
        await proxy.close()
