"""Tests of media.rtp: RFC 3550 section 5.1 header, RFC 5761 RTCP recognition."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from teleoffice.media.rtp import RtpError, RtpExtension, RtpPacket, is_rtcp, parse_rtp

# A PCMU packet as a phone sends it: V=2, no P/X/CC, M=1, PT=0, seq 0x1234,
# timestamp 0xDEADBEEF, SSRC 0x01020304, then four payload octets.
WIRE = bytes.fromhex("80801234deadbeef01020304") + b"\xff\xfe\x7f\x00"


def test_parse_a_plain_packet() -> None:
    packet = parse_rtp(WIRE)
    assert packet.version == 2
    assert packet.marker is True
    assert packet.payload_type == 0
    assert packet.sequence == 0x1234
    assert packet.timestamp == 0xDEADBEEF
    assert packet.ssrc == 0x01020304
    assert packet.csrcs == ()
    assert packet.extension is None
    assert packet.padding == 0
    assert packet.payload == b"\xff\xfe\x7f\x00"
    assert packet.to_bytes() == WIRE


def test_csrcs_extension_and_padding_round_trip() -> None:
    packet = RtpPacket(
        payload_type=101,
        sequence=65535,
        timestamp=0xFFFFFFFF,
        ssrc=7,
        csrcs=(1, 0xFFFFFFFF),
        extension=RtpExtension(0xBEDE, b"\x10\xaa\x00\x00"),
        payload=b"\x05\x0a\x00\xa0",
        padding=4,
    )
    wire = packet.to_bytes()
    assert wire[0] == 0x80 | 0x20 | 0x10 | 2
    assert wire[-4:] == b"\x00\x00\x00\x04"
    assert len(wire) == 12 + 8 + 4 + 4 + 4 + 4
    assert parse_rtp(wire) == packet


def test_payload_may_be_empty_with_all_padding() -> None:
    wire = bytes.fromhex("a0000001000000020000000300000004")
    packet = parse_rtp(wire)
    assert packet.payload == b""
    assert packet.padding == 4


@pytest.mark.parametrize(
    ("wire", "reason"),
    [
        (b"", "shorter"),
        (bytes.fromhex("8000000100000002000000"), "shorter"),  # 11 octets
        (bytes.fromhex("400000010000000200000003"), "version 1"),
        (bytes.fromhex("000000010000000200000003"), "version 0"),
        (bytes.fromhex("820000010000000200000003") + b"\0\0\0\1", "CSRC"),  # CC=2, one CSRC
        (bytes.fromhex("900000010000000200000003") + b"\xbe\xde", "extension"),
        (bytes.fromhex("90000001000000020000000300010002") + b"\0\0\0\0", "extension"),
        (bytes.fromhex("a00000010000000200000003") + b"\x01\x00", "padding"),  # count 0
        (bytes.fromhex("a00000010000000200000003") + b"\x01\x03", "padding"),  # count 3 > 2
        (bytes.fromhex("a00000010000000200000003"), "padding"),  # P set, nothing after
    ],
)
def test_malformed_packets_raise_rtp_error(wire: bytes, reason: str) -> None:
    with pytest.raises(RtpError):
        parse_rtp(wire)


def test_rtp_error_is_a_value_error() -> None:
    assert issubclass(RtpError, ValueError)


@pytest.mark.parametrize(
    "field",
    [
        {"payload_type": 128},
        {"sequence": 65536},
        {"timestamp": -1},
        {"ssrc": 1 << 32},
        {"csrcs": tuple(range(16))},
        {"padding": 256},
    ],
)
def test_out_of_range_fields_are_refused(field: dict[str, int]) -> None:
    args: dict[str, object] = {"payload_type": 0, "sequence": 0, "timestamp": 0, "ssrc": 0}
    args.update(field)
    with pytest.raises(ValueError, match=r"."):
        RtpPacket(**args)  # type: ignore[arg-type]


def test_extension_data_must_be_whole_words() -> None:
    with pytest.raises(ValueError, match="32-bit words"):
        RtpExtension(1, b"abc")


@pytest.mark.parametrize(
    ("packet_type", "expected"),
    [(200, True), (201, True), (202, True), (203, True), (204, True), (205, True), (192, True)],
)
def test_rtcp_packet_types_are_recognised(packet_type: int, expected: bool) -> None:
    # An RTCP receiver report header: V=2, RC=0, PT, length 1.
    assert is_rtcp(struct.pack("!BBH", 0x80, packet_type, 1) + bytes(4)) is expected


def test_rtp_is_not_rtcp() -> None:
    assert not is_rtcp(WIRE)  # PCMU with marker: second octet 0x80
    assert not is_rtcp(bytes.fromhex("80e5") + bytes(10))  # marker + PT 101
    assert not is_rtcp(bytes.fromhex("00c8") + bytes(10))  # version 0
    assert not is_rtcp(b"\x80\xc8")  # too short to be a header


@given(st.binary(max_size=80))
def test_parse_raises_only_rtp_error(data: bytes) -> None:
    try:
        packet = parse_rtp(data)
    except RtpError:
        return
    # Whatever parses serialises back to the same length (padding octets as zeros).
    assert len(packet.to_bytes()) == len(data)


@given(
    payload_type=st.integers(0, 127),
    marker=st.booleans(),
    sequence=st.integers(0, 0xFFFF),
    timestamp=st.integers(0, 0xFFFFFFFF),
    ssrc=st.integers(0, 0xFFFFFFFF),
    csrcs=st.lists(st.integers(0, 0xFFFFFFFF), max_size=15),
    extension=st.none() | st.builds(RtpExtension, st.integers(0, 0xFFFF), st.just(b"\1\2\3\4")),
    payload=st.binary(max_size=40),
    padding=st.integers(0, 255),
)
def test_serialise_then_parse_round_trips(
    payload_type: int,
    marker: bool,
    sequence: int,
    timestamp: int,
    ssrc: int,
    csrcs: list[int],
    extension: RtpExtension | None,
    payload: bytes,
    padding: int,
) -> None:
    packet = RtpPacket(
        payload_type=payload_type,
        marker=marker,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        csrcs=tuple(csrcs),
        extension=extension,
        payload=payload,
        padding=padding,
    )
    assert parse_rtp(packet.to_bytes()) == packet
