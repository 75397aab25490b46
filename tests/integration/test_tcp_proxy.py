"""The test proxy (support/tcp_proxy.py) against an echo server on loopback: it forwards both
ways, a silent network keeps connections open while the server's bytes vanish,
`disconnect_all` closes every client, and a refusing proxy closes new ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.integration


@dataclass
class Echo:
    """An echo server behind the proxy, keeping what it was sent."""

    received: list[bytes] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(1024):
            self.received.append(data)
            writer.write(data)
            await writer.drain()
        writer.close()


@pytest.fixture
def echo() -> Echo:
    return Echo()


@pytest_asyncio.fixture
async def proxy(echo: Echo) -> AsyncIterator[TcpProxy]:
    server = await asyncio.start_server(echo.serve, "127.0.0.1", 0)
    async with server, tcp_proxy(server.sockets[0].getsockname()[1]) as p:
        yield p


async def _open(proxy: TcpProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


@pytest.mark.timeout(20)
async def test_bytes_flow_both_ways(proxy: TcpProxy) -> None:
    reader, writer = await _open(proxy)
    writer.write(b"ping")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"ping"
    writer.close()


@pytest.mark.timeout(20)
async def test_a_silent_network_drops_server_bytes_until_forwarding_again(
    proxy: TcpProxy, echo: Echo
) -> None:
    reader, writer = await _open(proxy)
    proxy.drop_server_bytes()
    writer.write(b"lost")
    for _ in range(100):  # the server got it, and answered into the void
        if echo.received == [b"lost"]:
            break
        await asyncio.sleep(0.02)
    assert echo.received == [b"lost"]
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.5)
    assert proxy.connections == 1  # still open: half-open, not closed

    proxy.forward()
    writer.write(b"back")
    assert await asyncio.wait_for(reader.readexactly(4), 5) == b"back"
    writer.close()


@pytest.mark.timeout(20)
async def test_disconnect_all_closes_every_client(proxy: TcpProxy) -> None:
    clients = [await _open(proxy) for _ in range(3)]
    for reader, writer in clients:
        writer.write(b"x")
        await asyncio.wait_for(reader.readexactly(1), 5)

    proxy.disconnect_all()

    for reader, writer in clients:
        assert await asyncio.wait_for(reader.read(), 5) == b""  # EOF
        writer.close()
    reader, writer = await _open(proxy)  # and it still accepts new ones
    writer.write(b"y")
    assert await asyncio.wait_for(reader.readexactly(1), 5) == b"y"
    writer.close()


@pytest.mark.timeout(20)
async def test_a_refusing_proxy_closes_new_connections_until_it_accepts_again(
    proxy: TcpProxy,
) -> None:
    reader, writer = await _open(proxy)
    proxy.refuse()
    refused_reader, refused_writer = await _open(proxy)
    assert await asyncio.wait_for(refused_reader.read(), 5) == b""  # closed at once
    refused_writer.close()
    writer.write(b"x")  # a connection made before still works
    assert await asyncio.wait_for(reader.readexactly(1), 5) == b"x"

    proxy.accept()
    again_reader, again_writer = await _open(proxy)
    again_writer.write(b"y")
    assert await asyncio.wait_for(again_reader.readexactly(1), 5) == b"y"
    for w in (writer, again_writer):
        w.close()
