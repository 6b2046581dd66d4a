"""G.711 companding: μ-law (PCMU) and A-law (PCMA) for 16-bit linear PCM.

ITU-T G.711 maps 8000 samples per second of linear PCM to one octet each by a
piecewise-linear logarithm: eight segments per polarity, each twice as wide as the
one before it, with sixteen equal steps inside a segment.  The octet holds the
sign, the segment number (3 bits) and the step (4 bits).

* μ-law works on 14-bit samples.  Adding a bias of 33 to the magnitude makes the
  segment boundaries fall on powers of two (segment s covers biased magnitudes
  32·2^s to 64·2^s), so the segment is read off the position of the top bit.
  All bits of the result are inverted on the line, which is why silence is 0xFF.
* A-law works on 13-bit samples.  Segments 0 and 1 both have steps of 2; segment
  s >= 1 covers 16·2^s to 32·2^s.  Every even bit of the result is inverted on the
  line (XOR 0x55), so silence is 0xD5.

Decoding returns the middle of the quantisation step.  The linear side of this
module is 16-bit: the low 2 (μ-law) or 3 (A-law) bits are dropped when encoding
and come back as the midpoint when decoding.  RFC 3551 section 4.5.14 names the
payload types: PCMU is 0 and PCMA is 8, both at 8000 Hz.

Speed comes from tables built once at import: encoding looks every 16-bit sample
up in a 64 KiB table, decoding produces the low and high octets of each sample
with `bytes.translate` and interleaves them, all in C.
"""

from __future__ import annotations

import sys
from array import array

__all__ = [
    "PAYLOAD_TYPES",
    "PCMA",
    "PCMU",
    "alaw_decode",
    "alaw_encode",
    "decode",
    "encode",
    "ulaw_decode",
    "ulaw_encode",
]

PCMU = 0
PCMA = 8
PAYLOAD_TYPES: dict[int, str] = {PCMU: "PCMU", PCMA: "PCMA"}

_ULAW_BIAS = 33  # in 14-bit units
_ULAW_MAX_BIASED = 0x1FFF  # the top of segment 7
_ALAW_MAX = 0x0FFF  # the top of segment 7 in 13-bit magnitude


def _ulaw_encode_14(value: int) -> int:
    """μ-law octet for a 14-bit two's complement sample (-8192..8191)."""
    sign = 0x80 if value < 0 else 0
    biased = min(abs(value) + _ULAW_BIAS, _ULAW_MAX_BIASED)
    segment = biased.bit_length() - 6  # 32..63 is segment 0
    step = (biased >> (segment + 1)) & 0x0F
    return (sign | (segment << 4) | step) ^ 0xFF


def _ulaw_decode_16(code: int) -> int:
    bits = code ^ 0xFF
    segment = (bits >> 4) & 0x07
    step = bits & 0x0F
    # Middle of the step: (2·step + 1) half-steps above the biased segment start.
    magnitude = (((step << 1) + _ULAW_BIAS) << segment) - _ULAW_BIAS
    return -(magnitude << 2) if bits & 0x80 else magnitude << 2


def _alaw_encode_13(value: int) -> int:
    """A-law octet for a 13-bit two's complement sample (-4096..4095)."""
    if value >= 0:
        sign, magnitude = 0x80, value
    else:
        # A-law is symmetric around -1/2: -1 is the first negative step, like 0.
        sign, magnitude = 0, -value - 1
    magnitude = min(magnitude, _ALAW_MAX)
    if magnitude < 32:
        segment, step = 0, magnitude >> 1
    else:
        segment = magnitude.bit_length() - 5  # 32..63 is segment 1
        step = (magnitude >> segment) & 0x0F
    return (sign | (segment << 4) | step) ^ 0x55


def _alaw_decode_16(code: int) -> int:
    bits = code ^ 0x55
    segment = (bits >> 4) & 0x07
    step = bits & 0x0F
    # 13-bit units; segments 0 and 1 share the step size.
    magnitude = (step << 1) + 1 if segment == 0 else ((step << 1) + 33) << (segment - 1)
    return magnitude << 3 if bits & 0x80 else -(magnitude << 3)


def _encode_table(encode_narrow: object, drop_bits: int) -> bytes:
    """Table indexed by the unsigned 16-bit form of a sample.

    Only the top 16 - drop_bits bits matter, so the narrow table is computed once
    per narrow value and spread over the 2^drop_bits entries that share it.
    """
    assert callable(encode_narrow)
    width = 16 - drop_bits
    half = 1 << (width - 1)
    narrow = bytes(encode_narrow(n - (1 << width) if n >= half else n) for n in range(1 << width))
    table = bytearray(1 << 16)
    for low in range(1 << drop_bits):
        table[low :: 1 << drop_bits] = narrow
    return bytes(table)


def _decode_tables(decode: object) -> tuple[bytes, bytes]:
    """Two 256-octet translation tables: low and high octet of each decoded sample."""
    assert callable(decode)
    values = [decode(code) & 0xFFFF for code in range(256)]
    return bytes(v & 0xFF for v in values), bytes(v >> 8 for v in values)


_ULAW_ENCODE = _encode_table(_ulaw_encode_14, 2)
_ALAW_ENCODE = _encode_table(_alaw_encode_13, 3)
_ULAW_LOW, _ULAW_HIGH = _decode_tables(_ulaw_decode_16)
_ALAW_LOW, _ALAW_HIGH = _decode_tables(_alaw_decode_16)
_BIG_ENDIAN = sys.byteorder == "big"


def _samples(pcm: bytes) -> array[int]:
    if len(pcm) % 2:
        raise ValueError("16-bit PCM must have an even number of octets")
    samples = array("H")
    samples.frombytes(pcm)
    if _BIG_ENDIAN:  # pragma: no cover - the wire format is little-endian
        samples.byteswap()
    return samples


def _encode(pcm: bytes, table: bytes) -> bytes:
    return bytes(map(table.__getitem__, _samples(pcm)))


def _decode(codes: bytes, low: bytes, high: bytes) -> bytes:
    out = bytearray(2 * len(codes))
    out[0::2] = codes.translate(low)
    out[1::2] = codes.translate(high)
    return bytes(out)


def ulaw_encode(pcm: bytes) -> bytes:
    """Little-endian signed 16-bit PCM to μ-law, one octet per sample."""
    return _encode(pcm, _ULAW_ENCODE)


def ulaw_decode(codes: bytes) -> bytes:
    """μ-law octets to little-endian signed 16-bit PCM."""
    return _decode(codes, _ULAW_LOW, _ULAW_HIGH)


def alaw_encode(pcm: bytes) -> bytes:
    """Little-endian signed 16-bit PCM to A-law, one octet per sample."""
    return _encode(pcm, _ALAW_ENCODE)


def alaw_decode(codes: bytes) -> bytes:
    """A-law octets to little-endian signed 16-bit PCM."""
    return _decode(codes, _ALAW_LOW, _ALAW_HIGH)


def encode(payload_type: int, pcm: bytes) -> bytes:
    """Encode for RTP payload type 0 (PCMU) or 8 (PCMA); ValueError for any other."""
    if payload_type == PCMU:
        return ulaw_encode(pcm)
    if payload_type == PCMA:
        return alaw_encode(pcm)
    raise ValueError(f"payload type {payload_type} is not G.711")


def decode(payload_type: int, payload: bytes) -> bytes:
    """Decode an RTP payload of type 0 (PCMU) or 8 (PCMA); ValueError for any other."""
    if payload_type == PCMU:
        return ulaw_decode(payload)
    if payload_type == PCMA:
        return alaw_decode(payload)
    raise ValueError(f"payload type {payload_type} is not G.711")
