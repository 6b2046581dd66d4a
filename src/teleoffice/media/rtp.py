"""RTP packets (RFC 3550 section 5.1) and telling RTP from RTCP (RFC 5761 section 4).

The relay never builds an `RtpPacket` for a packet it merely forwards: it looks at
one octet and hands the datagram on (see `session`).  This module is for the
places that need the whole header: generated streams, DTMF and recording.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "RTP_HEADER_SIZE",
    "RTP_VERSION",
    "RtpError",
    "RtpExtension",
    "RtpPacket",
    "is_rtcp",
    "parse_rtp",
]

RTP_VERSION = 2
RTP_HEADER_SIZE = 12

_HEADER = struct.Struct("!BBHII")
_EXTENSION_HEADER = struct.Struct("!HH")


class RtpError(ValueError):
    """A datagram is not a well-formed RTP packet."""


@dataclass(frozen=True, slots=True)
class RtpExtension:
    """The one header extension RFC 3550 section 5.3.1 allows.

    `profile` is the 16-bit value the profile defines (e.g. 0xBEDE for RFC 8285
    one-byte headers); `data` is the extension body, a whole number of 32-bit words.
    """

    profile: int
    data: bytes = b""

    def __post_init__(self) -> None:
        if not 0 <= self.profile <= 0xFFFF:
            raise ValueError(f"extension profile {self.profile} is not a 16-bit value")
        if len(self.data) % 4 or len(self.data) > 4 * 0xFFFF:
            raise ValueError("extension data must be a whole number of 32-bit words")


@dataclass(frozen=True, slots=True, kw_only=True)
class RtpPacket:
    """One RTP data packet.

    `padding` is the number of padding octets at the end of the packet, counting
    the last octet that holds the count (RFC 3550 section 5.1, field P); 0 means the
    P bit is clear.  Padding octets are written as zeros.
    """

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    padding: int = 0
    csrcs: tuple[int, ...] = ()
    extension: RtpExtension | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type {self.payload_type} is not a 7-bit value")
        if not 0 <= self.sequence <= 0xFFFF:
            raise ValueError(f"sequence number {self.sequence} is not a 16-bit value")
        if not 0 <= self.timestamp <= 0xFFFFFFFF:
            raise ValueError(f"timestamp {self.timestamp} is not a 32-bit value")
        if not 0 <= self.ssrc <= 0xFFFFFFFF:
            raise ValueError(f"SSRC {self.ssrc} is not a 32-bit value")
        if len(self.csrcs) > 15 or not all(0 <= c <= 0xFFFFFFFF for c in self.csrcs):
            raise ValueError("at most 15 CSRCs of 32 bits each")
        if not 0 <= self.padding <= 255:
            raise ValueError(f"padding of {self.padding} octets does not fit the count octet")

    @property
    def version(self) -> int:
        return RTP_VERSION

    def to_bytes(self) -> bytes:
        first = (
            (RTP_VERSION << 6)
            | (0x20 if self.padding else 0)
            | (0x10 if self.extension is not None else 0)
            | len(self.csrcs)
        )
        second = (0x80 if self.marker else 0) | self.payload_type
        parts = [_HEADER.pack(first, second, self.sequence, self.timestamp, self.ssrc)]
        if self.csrcs:
            parts.append(struct.pack(f"!{len(self.csrcs)}I", *self.csrcs))
        if self.extension is not None:
            ext = self.extension
            parts.append(_EXTENSION_HEADER.pack(ext.profile, len(ext.data) // 4))
            parts.append(ext.data)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes((self.padding,)))
        return b"".join(parts)


def parse_rtp(data: bytes) -> RtpPacket:
    """Parse one RTP packet; raise `RtpError` if it is malformed.

    The checks are those of RFC 3550 appendix A.1 that need no state: version 2,
    room for the CSRC list and the extension, and a padding count that is neither
    zero nor longer than what follows the header.
    """
    if len(data) < RTP_HEADER_SIZE:
        raise RtpError(f"{len(data)} octets is shorter than the RTP fixed header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != RTP_VERSION:
        raise RtpError(f"RTP version {first >> 6}, expected 2")
    offset = RTP_HEADER_SIZE
    csrc_count = first & 0x0F
    end_of_csrcs = offset + 4 * csrc_count
    if len(data) < end_of_csrcs:
        raise RtpError("packet truncated inside the CSRC list")
    csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset) if csrc_count else ()
    offset = end_of_csrcs
    extension = None
    if first & 0x10:
        if len(data) < offset + 4:
            raise RtpError("packet truncated inside the header extension")
        profile, words = _EXTENSION_HEADER.unpack_from(data, offset)
        offset += 4
        if len(data) < offset + 4 * words:
            raise RtpError("header extension longer than the packet")
        extension = RtpExtension(profile, bytes(data[offset : offset + 4 * words]))
        offset += 4 * words
    end = len(data)
    padding = 0
    if first & 0x20:
        # The last octet counts the padding, itself included (RFC 3550 section 5.1).
        padding = data[-1]
        if padding == 0 or padding > end - offset:
            raise RtpError(f"padding count {padding} does not fit the packet")
        end -= padding
    return RtpPacket(
        payload_type=second & 0x7F,
        marker=bool(second & 0x80),
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        csrcs=tuple(csrcs),
        extension=extension,
        payload=bytes(data[offset:end]),
        padding=padding,
    )


def is_rtcp(data: bytes) -> bool:
    """Whether a datagram that arrived on an RTP port is really RTCP.

    RFC 5761 section 4: the RTCP packet type sits where RTP keeps the marker bit
    and payload type, and the RTCP types 192-223 (SR 200, RR 201, SDES 202, BYE
    203, APP 204, feedback 205/206, XR 207) read as marker set with payload types
    64-95, which is why RTP must not use those payload types (72-76 collide with
    the original five).  A compound RTCP packet also always starts with a 4-octet
    header of version 2.
    """
    return len(data) >= 4 and data[0] >> 6 == RTP_VERSION and 192 <= data[1] <= 223
