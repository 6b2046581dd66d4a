"""SipTransport over real sockets on 127.0.0.1 (no pytest-asyncio: each test runs its own loop)."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable

import pytest

from teleoffice.sip.transaction import Address
from teleoffice.transport import SipTransport

HOST = "127.0.0.1"
WAIT = 2.0  # bound on every single wait; a healthy test finishes far sooner


def message(n: int, body: bytes = b"") -> bytes:
    return (
        f"OPTIONS sip:201@pbx.example SIP/2.0\r\n"
        f"Via: SIP/2.0/TCP 127.0.0.1;branch=z9hG4bK-{n}\r\n"
        f"Call-ID: {n}@test\r\n"
        f"CSeq: {n} OPTIONS\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def run(test: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(test(), 10.0)

    asyncio.run(bounded())


class Inbox:
    """on_message callback that queues what it gets; can be told to raise."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, Address]] = asyncio.Queue()
        self.raise_next = 0

    def __call__(self, data: bytes, source: Address) -> None:
        if self.raise_next:
            self.raise_next -= 1
            raise RuntimeError("handler bug")
        self.queue.put_nowait((data, source))

    async def get(self) -> tuple[bytes, Address]:
        return await asyncio.wait_for(self.queue.get(), WAIT)

    async def nothing_more(self, delay: float = 0.1) -> None:
        await asyncio.sleep(delay)
        assert self.queue.empty()


class UdpPeer(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        self.queue.put_nowait(data)


async def udp_peer() -> tuple[asyncio.DatagramTransport, UdpPeer]:
    loop = asyncio.get_running_loop()
    return await loop.create_datagram_endpoint(UdpPeer, local_addr=(HOST, 0))


async def started(
    inbox: Inbox,
    *,
    max_message_size: int = 65535,
    tcp_idle_timeout: float = 600.0,
    max_tcp_connections: int = 1024,
) -> SipTransport:
    transport = SipTransport(
        HOST,
        0,
        inbox,
        max_message_size=max_message_size,
        tcp_idle_timeout=tcp_idle_timeout,
        max_tcp_connections=max_tcp_connections,
    )
    await transport.start()
    return transport


async def wait_until(predicate: Callable[[], bool]) -> None:
    async def poll() -> None:
        # Polling is fine here: the predicates read counters the transport has no
        # event for.
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), WAIT)


def test_udp_and_tcp_share_the_ephemeral_port() -> None:
    async def body() -> None:
        transport = await started(Inbox())
        try:
            assert transport.port != 0
            assert transport.host == HOST
            # Binding the same port again must fail for both protocols.
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                with (
                    socket.socket(socket.AF_INET, kind) as sock,
                    pytest.raises(OSError, match="in use"),
                ):
                    sock.bind((HOST, transport.port))
        finally:
            await transport.stop()
            await transport.stop()  # idempotent

    run(body)


def test_udp_message_reaches_on_message_and_reply_goes_back() -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await started(inbox)
        peer_transport, peer = await udp_peer()
        try:
            peer_port = peer_transport.get_extra_info("sockname")[1]
            peer_transport.sendto(message(1), (HOST, transport.port))
            data, source = await inbox.get()
            assert data == message(1)
            assert source == Address("UDP", HOST, peer_port)
            assert transport.datagrams_in == 1

            transport.send(b"SIP/2.0 200 OK\r\n\r\n", source)
            assert await asyncio.wait_for(peer.queue.get(), WAIT) == b"SIP/2.0 200 OK\r\n\r\n"
        finally:
            peer_transport.close()
            await transport.stop()

    run(body)


def test_udp_oversize_dropped_and_crlf_keepalive_ignored() -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await started(inbox, max_message_size=500)
        peer_transport, _ = await udp_peer()
        try:
            peer_transport.sendto(message(1, b"x" * 600), (HOST, transport.port))
            peer_transport.sendto(b"\r\n\r\n", (HOST, transport.port))
            peer_transport.sendto(message(2), (HOST, transport.port))
            data, _ = await inbox.get()
            assert data == message(2)
            assert transport.datagrams_dropped_oversize == 1
            assert transport.datagrams_in == 3
            await inbox.nothing_more()
        finally:
            peer_transport.close()
            await transport.stop()

    run(body)


def test_tcp_split_and_coalesced_messages_and_reply_on_same_connection() -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await started(inbox)
        reader, writer = await asyncio.open_connection(HOST, transport.port)
        try:
            local_port = writer.get_extra_info("sockname")[1]
            first = message(1, b"hello")
            for i in range(0, len(first), 7):
                writer.write(first[i : i + 7])
                await writer.drain()
                await asyncio.sleep(0.001)
            writer.write(message(2) + message(3, b"abc"))
            await writer.drain()

            received = [await inbox.get() for _ in range(3)]
            assert [data for data, _ in received] == [first, message(2), message(3, b"abc")]
            source = received[0][1]
            assert source == Address("TCP", HOST, local_port)
            assert transport.tcp_connection_count == 1

            reply = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n"
            transport.send(reply, source)
            assert await asyncio.wait_for(reader.readexactly(len(reply)), WAIT) == reply
            assert transport.tcp_connection_count == 1
        finally:
            writer.close()
            await transport.stop()

    run(body)


def test_tcp_keepalive_ping_gets_a_pong() -> None:
    async def body() -> None:
        transport = await started(Inbox())
        reader, writer = await asyncio.open_connection(HOST, transport.port)
        try:
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), WAIT) == b"\r\n"
        finally:
            writer.close()
            await transport.stop()

    run(body)


def test_tcp_garbage_closes_only_that_connection() -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await started(inbox)
        _, good = await asyncio.open_connection(HOST, transport.port)
        bad_reader, bad = await asyncio.open_connection(HOST, transport.port)
        try:
            bad.write(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # a TLS ClientHello
            assert await asyncio.wait_for(bad_reader.read(), WAIT) == b""
            assert transport.framing_errors == 1

            good.write(message(1))
            data, _ = await inbox.get()
            assert data == message(1)
            await wait_until(lambda: transport.tcp_connection_count == 1)
        finally:
            good.close()
            bad.close()
            await transport.stop()

    run(body)


def test_tcp_idle_connection_is_closed() -> None:
    async def body() -> None:
        transport = await started(Inbox(), tcp_idle_timeout=0.1)
        reader, writer = await asyncio.open_connection(HOST, transport.port)
        try:
            await wait_until(lambda: transport.tcp_connection_count == 1)
            assert await asyncio.wait_for(reader.read(), WAIT) == b""
            await wait_until(lambda: transport.tcp_connection_count == 0)
        finally:
            writer.close()
            await transport.stop()

    run(body)


def test_tcp_connections_over_the_limit_are_refused() -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await started(inbox, max_tcp_connections=1)
        _, first = await asyncio.open_connection(HOST, transport.port)
        await wait_until(lambda: transport.tcp_connection_count == 1)
        second_reader, second = await asyncio.open_connection(HOST, transport.port)
        try:
            assert await asyncio.wait_for(second_reader.read(), WAIT) == b""
            assert transport.tcp_connections_refused == 1
            first.write(message(1))
            assert (await inbox.get())[0] == message(1)
        finally:
            first.close()
            second.close()
            await transport.stop()

    run(body)


def test_on_message_raising_does_not_break_the_next_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await started(inbox)
        peer_transport, _ = await udp_peer()
        _, writer = await asyncio.open_connection(HOST, transport.port)
        try:
            inbox.raise_next = 2
            peer_transport.sendto(message(1), (HOST, transport.port))
            writer.write(message(2))
            await wait_until(lambda: inbox.raise_next == 0)
            peer_transport.sendto(message(3), (HOST, transport.port))
            writer.write(message(4))
            got = {(await inbox.get())[0], (await inbox.get())[0]}
            assert got == {message(3), message(4)}
        finally:
            writer.close()
            peer_transport.close()
            await transport.stop()

    with caplog.at_level(logging.ERROR, logger="teleoffice.transport"):
        run(body)
    assert sum("on_message failed" in r.getMessage() for r in caplog.records) == 2


def test_send_opens_one_outbound_connection_and_reuses_it() -> None:
    async def body() -> None:
        inbox = Inbox()
        transport = await started(inbox)
        accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]]
        accepted = asyncio.Queue()

        async def on_peer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted.put_nowait((reader, writer))

        server = await asyncio.start_server(on_peer, HOST, 0)
        peer_port = server.sockets[0].getsockname()[1]
        dest = Address("TCP", HOST, peer_port)
        try:
            # Queued while the connection is being set up, then sent in order.
            transport.send(message(1), dest)
            transport.send(message(2), dest)
            reader, writer = await asyncio.wait_for(accepted.get(), WAIT)
            expected = message(1) + message(2)
            assert await asyncio.wait_for(reader.readexactly(len(expected)), WAIT) == expected

            # The peer answers over the same connection; its source is the address
            # we connected to, and a later send reuses the connection.
            writer.write(message(3))
            data, source = await inbox.get()
            assert (data, source) == (message(3), dest)
            transport.send(message(4), source)
            assert await asyncio.wait_for(reader.readexactly(len(message(4))), WAIT) == message(4)
            assert transport.tcp_connection_count == 1
            assert accepted.empty()
            writer.close()
        finally:
            server.close()
            await transport.stop()

    run(body)


def test_send_to_unreachable_tcp_peer_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body() -> None:
        transport = await started(Inbox())
        with socket.socket() as sock:
            sock.bind((HOST, 0))
            closed_port = sock.getsockname()[1]  # bound but not listening: refused
            try:
                dest = Address("TCP", HOST, closed_port)
                transport.send(message(1), dest)
                transport.send(message(2), dest)
                await wait_until(lambda: any("failed" in r.getMessage() for r in caplog.records))
                assert transport.tcp_connection_count == 0
            finally:
                await transport.stop()

    with caplog.at_level(logging.WARNING, logger="teleoffice.transport"):
        run(body)
    failures = [r for r in caplog.records if "TCP connection to" in r.getMessage()]
    assert len(failures) == 1


def test_send_after_stop_does_not_raise() -> None:
    async def body() -> None:
        transport = await started(Inbox())
        await transport.stop()
        transport.send(message(1), Address("UDP", HOST, 9))
        transport.send(message(1), Address("TCP", HOST, 9))

    run(body)
