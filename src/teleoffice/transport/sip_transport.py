"""The SIP transport layer on asyncio: UDP and TCP on one host and port, TLS on another.

Theory of operation
-------------------
This layer only moves bytes.  A datagram, or a message cut from a TCP stream by
`sip.framing.StreamFramer`, goes to `on_message(data, source)`; whatever the SIP
core wants sent comes back through `send(data, dest)`.  It does no parsing beyond
framing and keeps no SIP state, so everything it does is about sockets:

* UDP and TCP listen on the same port, as RFC 3261 section 18.2.1 expects of a
  server ("for any port and interface that a server listens on for UDP, it MUST
  listen on that same port and interface for TCP").
* TLS (RFC 3261 section 26.2.1), when `enable_tls` gave it a port and a
  certificate, listens on a port of its own (5061 beside 5060 by convention,
  RFC 3261 section 19.1.2).  A TLS connection is a TCP connection with the
  record layer below the framer: everything else, framing, limits and reuse, is
  the same code, and messages from it carry the transport name "TLS", so the
  layers above (Via, the registrar's binding) know to answer the same way.
* A response to a request that came over TCP or TLS must go back over that
  connection (RFC 3261 section 18.2.2), and a request to a registered phone
  should use the connection the phone keeps open (RFC 5626): a phone behind NAT
  or without a server certificate can be reached no other way.  So `send`
  looks connections up by transport and peer address, whoever opened them, and
  opens one only when none exists (for TLS, verifying the peer's certificate).
* Everything that comes from the network may be hostile or broken: a connection
  whose stream cannot be framed is closed, idle connections are reaped, the number
  of inbound connections is capped, and an exception raised by `on_message` is
  logged and forgotten so one bad message never takes the transport down.

Destinations are IP literals: name resolution (RFC 3263) belongs to the layer
above, and a blocking lookup here would stall the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import ssl
from collections.abc import Callable
from typing import Any, cast

from teleoffice.sip.framing import FramingError, KeepAlivePing, StreamFramer
from teleoffice.sip.transaction import Address

__all__ = ["MessageHandler", "SipTransport"]

MessageHandler = Callable[[bytes, Address], None]

UDP = "UDP"
TCP = "TCP"
TLS = "TLS"

# How long an outbound TCP connection may take to set up.  RFC 3261 section 17.1.1.2
# gives an INVITE transaction 64*T1 = 32 s in total; a connection that takes longer
# than a third of that is as good as failed.
CONNECT_TIMEOUT = 10.0
# Messages held for a connection that is still being set up.  A handful covers a
# request and its retransmissions; more means the peer is unreachable anyway.
MAX_QUEUED_MESSAGES = 64
# A peer that stops reading while we keep writing would make the write buffer grow
# without bound; past this many unsent octets the connection is dropped.
MAX_WRITE_BUFFER = 1 << 20
# How many times to look for an ephemeral port free for both UDP and TCP.
PORT_ATTEMPTS = 8
# The idle reaper wakes up a few times per timeout, but never more than every 30 s.
REAPER_MAX_INTERVAL = 30.0
# A TLS handshake that has not finished by then is abandoned.  asyncio's default
# is 60 s; a scanner opening connections and sending nothing would hold each that
# long, and a phone on loopback or a LAN completes in milliseconds.
TLS_HANDSHAKE_TIMEOUT = 10.0

# (transport, host, port): a TCP and a TLS connection from the same peer address
# are different flows.
_ConnectionKey = tuple[str, str, int]


def _normalize_host(host: str) -> str:
    """One spelling per IP address, so "::1" and "0:0::1" find the same connection."""
    try:
        return ipaddress.ip_address(host.strip("[]")).compressed
    except ValueError:
        return host.lower()


def _peer_key(kind: str, peername: Any) -> _ConnectionKey | None:
    # IPv4 gives (host, port), IPv6 (host, port, flowinfo, scope_id).
    if isinstance(peername, tuple) and len(peername) >= 2:
        return kind, _normalize_host(str(peername[0])), int(peername[1])
    return None


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport) -> None:
        self._owner = owner

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._owner._datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors for earlier sendto() calls (port unreachable and the like) land
        # here.  The transaction layer notices the silence through its timers.
        self._owner._log.debug("UDP error: %s", exc)


class _TcpConnection(asyncio.Protocol):
    """One TCP or TLS connection, inbound or outbound, with its own framer.

    For TLS, asyncio runs the record layer and calls `connection_made` only once
    the handshake is done, so this class sees plaintext either way.
    """

    def __init__(self, owner: SipTransport, *, inbound: bool, kind: str = TCP) -> None:
        self._owner = owner
        self.inbound = inbound
        self.kind = kind
        self.framer = StreamFramer(owner.max_message_size)
        self.transport: asyncio.Transport | None = None
        self.source: Address | None = None
        self.keys: list[_ConnectionKey] = []
        self.last_activity = 0.0
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports implement the
        # interface without deriving from asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)
        self.last_activity = self._owner._now()
        self.transport.set_write_buffer_limits(high=MAX_WRITE_BUFFER)
        self._owner._connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self.closed or self.source is None:
            return
        self.last_activity = self._owner._now()
        try:
            events = self.framer.feed(data)
        except FramingError as exc:
            # The stream cannot be resynchronised: drop this connection, and only it.
            self._owner.framing_errors += 1
            self._owner._log.info("closing %s connection from %s: %s", self.kind, self.source, exc)
            self.close()
            return
        for event in events:
            if not self.usable:
                # A write overflowed and dropped the connection mid-batch.
                return
            if isinstance(event, KeepAlivePing):
                # RFC 5626 section 4.4.1: answer a double-CRLF ping with a CRLF pong.
                self.write(b"\r\n")
            else:
                self._owner._deliver(event.data, self.source)

    def eof_received(self) -> bool | None:
        # The peer half-closed: nothing more will arrive; close our side too.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._owner._connection_lost(self)

    @property
    def usable(self) -> bool:
        """Still open for writing (not lost, not being closed)."""
        return not self.closed and self.transport is not None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        transport = self.transport
        if not self.usable or transport is None:
            return
        if transport.get_write_buffer_size() + len(data) > MAX_WRITE_BUFFER:
            self._owner._log.warning("%s peer %s is not reading; closing", self.kind, self.source)
            self.abort()
            return
        self.last_activity = self._owner._now()
        transport.write(data)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abort()


class _PendingConnection:
    """An outbound connection being set up, and the messages waiting for it."""

    def __init__(self, dest: Address) -> None:
        self.dest = dest
        self.queue: list[bytes] = []
        self.task: asyncio.Task[None] | None = None


class SipTransport:
    """Listens for SIP on UDP and TCP on one host:port (and TLS on another) and
    sends to peers."""

    def __init__(
        self,
        host: str,
        port: int,
        on_message: MessageHandler,
        *,
        max_message_size: int = 65535,
        tcp_idle_timeout: float = 600.0,
        max_tcp_connections: int = 1024,
        log: logging.Logger | None = None,
    ) -> None:
        self._host = host
        self._requested_port = port
        self._port = port
        self._on_message = on_message
        self.max_message_size = max_message_size
        self.tcp_idle_timeout = tcp_idle_timeout
        self.max_tcp_connections = max_tcp_connections
        self._log = log or logging.getLogger("teleoffice.transport")

        self._loop: asyncio.AbstractEventLoop | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._server: asyncio.Server | None = None
        # TLS: off until `enable_tls`.  The client context verifies peers we
        # connect to ourselves (None: such connections are not attempted).
        self._tls_requested_port: int | None = None
        self._tls_port: int | None = None
        self._tls_server_context: ssl.SSLContext | None = None
        self._tls_client_context: ssl.SSLContext | None = None
        self._tls_server: asyncio.Server | None = None
        self._reaper: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False
        # Live connections by peer address (and, for outbound ones, by the address
        # they were opened to); one connection may sit under two keys.
        self._connections: dict[_ConnectionKey, _TcpConnection] = {}
        self._all_connections: set[_TcpConnection] = set()
        self._pending: dict[_ConnectionKey, _PendingConnection] = {}

        # Plain counters for the metrics layer.
        self.datagrams_in = 0
        self.datagrams_dropped_oversize = 0
        self.tcp_connections_refused = 0
        self.framing_errors = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (the ephemeral one chosen when 0 was asked for)."""
        return self._port

    @property
    def tls_port(self) -> int | None:
        """The bound TLS port, or None when TLS is off (or not started yet)."""
        return self._tls_port

    @property
    def tcp_connection_count(self) -> int:
        """Stream connections of either kind (TCP and TLS): they share one cap."""
        return len(self._all_connections)

    @property
    def tls_connection_count(self) -> int:
        return sum(1 for conn in self._all_connections if conn.kind == TLS)

    def enable_tls(
        self,
        port: int,
        server_context: ssl.SSLContext,
        client_context: ssl.SSLContext | None = None,
    ) -> None:
        """Also listen for SIP over TLS on `port` (0: any free port) once started.

        `server_context` holds our certificate (`transport.tls.server_context`);
        `client_context` verifies the peers we open TLS connections to, which
        happens only when no connection to a destination exists.
        """
        if self._started:
            raise RuntimeError("enable_tls must come before start")
        if not 0 <= port <= 65535:
            raise ValueError(f"TLS port {port} out of range")
        self._tls_requested_port = port
        self._tls_server_context = server_context
        self._tls_client_context = client_context

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("SipTransport already started")
        self._started = True
        self._loop = asyncio.get_running_loop()
        if self._requested_port == 0:
            await self._bind_ephemeral()
        else:
            await self._bind(self._requested_port)
        if self._tls_requested_port is not None:
            try:
                await self._bind_tls(self._tls_requested_port)
            except BaseException:
                self._started = False
                self._close_listeners()
                raise
        self._reaper = self._loop.create_task(self._reap_idle())
        if self._tls_port is None:
            self._log.info("SIP listening on %s:%d (UDP and TCP)", self._host, self._port)
        else:
            self._log.info(
                "SIP listening on %s:%d (UDP and TCP) and %s:%d (TLS)",
                self._host,
                self._port,
                self._host,
                self._tls_port,
            )

    async def _bind_tls(self, port: int) -> None:
        loop = self._loop
        assert loop is not None
        server = await loop.create_server(
            lambda: _TcpConnection(self, inbound=True, kind=TLS),
            self._host,
            port,
            ssl=self._tls_server_context,
            ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
        )
        self._tls_server = server
        self._tls_port = int(server.sockets[0].getsockname()[1])

    def _close_listeners(self) -> None:
        if self._udp is not None:
            self._udp.close()
        for server in (self._server, self._tls_server):
            if server is not None:
                server.close()

    async def _bind_ephemeral(self) -> None:
        # The kernel picks a free UDP port; TCP must then get the same number, which
        # another process may hold.  Try again with a new UDP port when it does.
        for attempt in range(PORT_ATTEMPTS):
            try:
                await self._bind(0)
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE or attempt == PORT_ATTEMPTS - 1:
                    raise
                self._log.debug("TCP port %d taken, trying another", self._port)
            else:
                return

    async def _bind(self, port: int) -> None:
        loop = self._loop
        assert loop is not None
        udp, _ = await loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(self._host, port)
        )
        self._port = int(udp.get_extra_info("sockname")[1])
        try:
            self._server = await loop.create_server(
                lambda: _TcpConnection(self, inbound=True), self._host, self._port
            )
        except BaseException:
            udp.close()
            raise
        self._udp = udp

    async def stop(self) -> None:
        """Close the sockets, every connection and every pending send.  Idempotent."""
        if self._stopped or not self._started:
            return
        self._stopped = True
        tasks: list[asyncio.Task[None]] = []
        if self._reaper is not None:
            self._reaper.cancel()
            tasks.append(self._reaper)
        for pending in self._pending.values():
            if pending.task is not None:
                pending.task.cancel()
                tasks.append(pending.task)
        self._pending.clear()
        self._close_listeners()
        for conn in list(self._all_connections):
            conn.abort()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for server in (self._server, self._tls_server):
            if server is None:
                continue
            # On Python 3.12+ wait_closed also waits for the connections, which were
            # aborted above; bound it anyway so stop() can never hang.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        self._connections.clear()
        self._all_connections.clear()

    # ------------------------------------------------------------------ sending

    def send(self, data: bytes, dest: Address) -> None:
        """Send one message.  Failures are logged and the message dropped, never raised.

        SIP recovers from loss through retransmissions and transaction timeouts
        (RFC 3261 section 17), so a failed send is for the transaction layer's
        timers to notice, not for an exception to unwind the caller.
        """
        if not self._started or self._stopped:
            self._log.warning("transport not running; dropping message to %s", dest)
            return
        transport = dest.transport.upper()
        if transport == UDP:
            self._send_udp(data, dest)
        elif transport in (TCP, TLS):
            self._send_stream(data, dest, transport)
        else:
            self._log.warning("unsupported transport %s; dropping message to %s", transport, dest)

    def _send_udp(self, data: bytes, dest: Address) -> None:
        assert self._udp is not None
        try:
            self._udp.sendto(data, (dest.host, dest.port))
        except (OSError, ValueError) as exc:
            self._log.warning("UDP send to %s failed: %s", dest, exc)

    def _send_stream(self, data: bytes, dest: Address, kind: str) -> None:
        key = (kind, _normalize_host(dest.host), dest.port)
        conn = self._connections.get(key)
        if conn is not None and conn.usable:
            conn.write(data)
            return
        if kind == TLS and (self._tls_client_context is None or self._tls_server_context is None):
            # With TLS off we have no business opening TLS connections; without a
            # client context we could not verify whom we would be talking to.
            self._log.warning("no TLS connection to %s and TLS is off; dropping message", dest)
            return
        pending = self._pending.get(key)
        if pending is None:
            pending = _PendingConnection(dest)
            self._pending[key] = pending
            assert self._loop is not None
            pending.task = self._loop.create_task(self._connect(key, pending))
        if len(pending.queue) >= MAX_QUEUED_MESSAGES:
            self._log.warning("too many messages waiting for %s; dropping one", dest)
            return
        pending.queue.append(data)

    async def _connect(self, key: _ConnectionKey, pending: _PendingConnection) -> None:
        loop = self._loop
        assert loop is not None
        dest = pending.dest
        kind = key[0]
        conn = _TcpConnection(self, inbound=False, kind=kind)
        try:
            if kind == TLS:
                # The certificate must name the destination: its host name, or
                # its IP address in a subjectAltName (RFC 5922 section 7.1).
                connecting = loop.create_connection(
                    lambda: conn,
                    dest.host,
                    dest.port,
                    ssl=self._tls_client_context,
                    server_hostname=dest.host.strip("[]"),
                    ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT,
                )
            else:
                connecting = loop.create_connection(lambda: conn, dest.host, dest.port)
            await asyncio.wait_for(connecting, CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            # One log line per failed attempt, however many messages were waiting
            # (ssl.SSLError, a failed handshake or certificate check, is an OSError).
            self._log.warning(
                "%s connection to %s failed (%s); dropping %d message(s)",
                kind,
                dest,
                str(exc) or type(exc).__name__,
                len(pending.queue),
            )
            return
        finally:
            if self._pending.get(key) is pending:
                del self._pending[key]
        if not conn.usable:
            # Refused or closed by the peer the moment it opened.
            self._log.warning("%s connection to %s closed at once; dropping messages", kind, dest)
            return
        # Known under the address it was opened to as well as under its peer name,
        # so the next send to the same destination finds it.
        if key not in conn.keys:
            conn.keys.append(key)
            self._connections[key] = conn
        for data in pending.queue:
            conn.write(data)

    # ------------------------------------------------------------------ receiving

    def _now(self) -> float:
        assert self._loop is not None
        return self._loop.time()

    def _deliver(self, data: bytes, source: Address) -> None:
        try:
            self._on_message(data, source)
        except Exception:
            # One bad message must never take the transport down with it.
            self._log.exception("on_message failed for a message from %s", source)

    def _datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self.datagrams_in += 1
        if len(data) > self.max_message_size:
            self.datagrams_dropped_oversize += 1
            return
        if len(data) <= 8 and not data.strip(b"\r\n"):
            # A bare CRLF keepalive.  RFC 5626 section 4.4.2 keeps UDP flows alive
            # with STUN instead, but many phones send CRLFs anyway; on a datagram
            # there is no pong to send, so there is nothing to do.
            return
        self._deliver(data, Address(UDP, str(addr[0]), int(addr[1])))

    def _connection_made(self, conn: _TcpConnection) -> None:
        assert conn.transport is not None
        if self._stopped:
            conn.abort()
            return
        # Only connections peers open are refused: the ones we open follow from our
        # own decisions (answers and requests to registered phones) and refusing
        # them would only lose messages.  Both kinds count towards the cap.
        if conn.inbound and self.tcp_connection_count >= self.max_tcp_connections:
            self.tcp_connections_refused += 1
            self._log.warning("too many TCP and TLS connections; refusing one")
            conn.abort()
            return
        key = _peer_key(conn.kind, conn.transport.get_extra_info("peername"))
        if key is None:
            conn.abort()
            return
        conn.source = Address(conn.kind, key[1], key[2])
        conn.keys.append(key)
        # The newest connection from a peer wins: an older one is usually half dead.
        self._connections[key] = conn
        self._all_connections.add(conn)

    def _connection_lost(self, conn: _TcpConnection) -> None:
        self._all_connections.discard(conn)
        for key in conn.keys:
            if self._connections.get(key) is conn:
                del self._connections[key]

    async def _reap_idle(self) -> None:
        # One periodic sweep instead of a timer per connection or per read: cheap,
        # and an idle timeout has no need of precision.
        interval = min(max(self.tcp_idle_timeout / 4, 0.01), REAPER_MAX_INTERVAL)
        while True:
            await asyncio.sleep(interval)
            deadline = self._now() - self.tcp_idle_timeout
            for conn in list(self._all_connections):
                if conn.last_activity < deadline:
                    # Abort rather than close: after this long with nothing sent or
                    # received there is nothing worth flushing, and a peer that
                    # stopped reading would hold a graceful close open forever.
                    self._log.debug("closing idle %s connection %s", conn.kind, conn.source)
                    conn.abort()
