"""Tests of media.ports: the even-port pool and binding from it."""

from __future__ import annotations

import socket

import pytest

from teleoffice.media.ports import NoPortsAvailable, PortPool, bind_udp


def test_even_ports_round_robin() -> None:
    pool = PortPool(40001, 40010)
    assert pool.capacity == 4  # 40002, 40004, 40006, 40008 (40010 has no RTCP port)
    ports = [pool.acquire() for _ in range(4)]
    assert ports == [40002, 40004, 40006, 40008]
    assert pool.in_use == 4
    with pytest.raises(NoPortsAvailable):
        pool.acquire()
    pool.release(40004)
    pool.release(40002)
    assert pool.in_use == 2
    assert pool.acquire() == 40004  # the longest free first
    with pytest.raises(ValueError, match="not in use"):
        pool.release(40002)


def test_empty_ranges_are_refused() -> None:
    with pytest.raises(ValueError, match="range"):
        PortPool(40001, 40002)
    with pytest.raises(ValueError, match="range"):
        PortPool(50000, 40000)


def test_bind_skips_a_port_someone_else_holds() -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", 0))
    taken = squatter.getsockname()[1]
    low = taken - taken % 2
    pool = PortPool(low, low + 4)
    try:
        sock, port = bind_udp(pool, "127.0.0.1")
        if taken == low:
            assert port == low + 2  # the even port was taken: skipped
        assert sock.getsockname()[1] == port
        assert not sock.getblocking()
        assert pool.in_use == 1
        sock.close()
        pool.release(port)
    finally:
        squatter.close()


def test_bind_fails_cleanly_when_nothing_can_be_bound() -> None:
    squatter = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    squatter.bind(("127.0.0.1", 0))
    taken = squatter.getsockname()[1]
    try:
        if taken % 2 == 0:  # only an even port can be squatted on in a pool
            pool = PortPool(taken, taken + 1)
            with pytest.raises(NoPortsAvailable):
                bind_udp(pool, "127.0.0.1")
            assert pool.in_use == 0
        with pytest.raises(ValueError, match="IP address"):
            bind_udp(PortPool(40600, 40603), "localhost")
    finally:
        squatter.close()
