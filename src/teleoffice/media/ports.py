"""The RTP port range, and binding UDP sockets from it.

RFC 3550 section 11: RTP uses an even port and RTCP the odd port above it.  The
pool hands out even ports only and keeps the odd neighbour reserved with it, so
a phone that sends RTCP to port+1 never reaches another call's RTP socket.

Ports are handed out round-robin: a port that was just released goes to the back
of the queue, so late packets of a call that ended do not land in the next one,
and the socket of the last call has time to close.  A port that another program
holds is skipped when binding fails (`bind_udp`), and comes back into the queue
for a later try.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque

__all__ = ["NoPortsAvailable", "PortPool", "bind_udp"]


class NoPortsAvailable(RuntimeError):
    """Every port of the range is in use (or could not be bound)."""


class PortPool:
    """Even ports from `low` to `high` (both inclusive), each with its odd neighbour."""

    def __init__(self, low: int, high: int) -> None:
        first = low + (low % 2)
        if not 0 < first < high <= 65535:
            raise ValueError(f"port range {low}-{high} holds no even/odd pair")
        self.low = low
        self.high = high
        self._free: deque[int] = deque(range(first, high, 2))
        self._used: set[int] = set()
        self.capacity = len(self._free)

    @property
    def in_use(self) -> int:
        return len(self._used)

    def acquire(self) -> int:
        """An even port nobody in this process uses; raises `NoPortsAvailable`."""
        if not self._free:
            raise NoPortsAvailable(
                f"all {self.capacity} RTP ports of {self.low}-{self.high} are in use"
            )
        port = self._free.popleft()
        self._used.add(port)
        return port

    def release(self, port: int) -> None:
        """Give a port back; releasing a port that is not in use is an error."""
        try:
            self._used.remove(port)
        except KeyError:
            raise ValueError(f"port {port} is not in use") from None
        self._free.append(port)


def _family(host: str) -> socket.AddressFamily:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"media address {host!r} must be an IP address") from None
    return socket.AF_INET6 if address.version == 6 else socket.AF_INET


def bind_udp(pool: PortPool, host: str) -> tuple[socket.socket, int]:
    """A non-blocking UDP socket bound on `host` to a port from `pool`, and the port.

    A port that cannot be bound (another program has it) is given back and the
    next one tried, until every port of the pool has been tried once.  The port
    stays acquired until the caller releases it.
    """
    family = _family(host)
    last_error: OSError | None = None
    for _ in range(pool.capacity):
        port = pool.acquire()
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            pool.release(port)
            last_error = exc
            continue
        return sock, port
    raise NoPortsAvailable(f"no RTP port of {pool.low}-{pool.high} could be bound") from last_error
