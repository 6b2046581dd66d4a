"""Tests of media.g711 against values that follow from ITU-T G.711."""

from __future__ import annotations

import struct
from array import array

import pytest

from teleoffice.media import g711


def pcm(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}h", *values)


def linear(data: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(data) // 2}h", data))


ALL_SAMPLES = array("h", range(-32768, 32768)).tobytes()


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (0, 0xFF),  # silence is all ones on the line
        (-1, 0x7E),  # the first negative step (14-bit -1)
        (32767, 0x80),  # positive overload
        (-32768, 0x00),  # negative overload
        (4, 0xFE),  # 14-bit +1 is still the first step (half-steps from the bias)
        (8, 0xFE),
        (120, 0xF0),  # top of segment 0
        (128, 0xEF),  # bottom of segment 1
        (30000, 0x82),
    ],
)
def test_ulaw_encode_reference_values(value: int, code: int) -> None:
    assert g711.ulaw_encode(pcm(value)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xFF, 0), (0x7F, 0), (0x80, 32124), (0x00, -32124), (0xFE, 8), (0xF0, 120), (0xEF, 132)],
)
def test_ulaw_decode_reference_values(code: int, value: int) -> None:
    assert linear(g711.ulaw_decode(bytes([code]))) == [value]


def test_ulaw_digital_milliwatt_is_a_0_dbm0_sine() -> None:
    # G.711 table 5: the eight octets 1E 0B 0B 1E 9E 8B 8B 9E repeated are a 1 kHz
    # sine at 0 dBm0; decoded, its peaks must be about 22 700 (see tones.DBM0_PEAK).
    decoded = linear(g711.ulaw_decode(bytes.fromhex("1e0b0b1e9e8b8b9e")))
    assert decoded == [-8828, -20860, -20860, -8828, 8828, 20860, 20860, 8828]


@pytest.mark.parametrize(
    ("value", "code"),
    [(0, 0xD5), (-1, 0x55), (32767, 0xAA), (-32768, 0x2A), (8, 0xD5), (16, 0xD4)],
)
def test_alaw_encode_reference_values(value: int, code: int) -> None:
    assert g711.alaw_encode(pcm(value)) == bytes([code])


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xD4, 24)],
)
def test_alaw_decode_reference_values(code: int, value: int) -> None:
    assert linear(g711.alaw_decode(bytes([code]))) == [value]


def test_every_ulaw_code_survives_decode_then_encode() -> None:
    codes = bytes(range(256))
    again = g711.ulaw_encode(g711.ulaw_decode(codes))
    # 0x7F is "negative zero": it decodes to 0, which encodes as 0xFF.
    assert [c for c, d in zip(codes, again, strict=True) if c != d] == [0x7F]
    assert again[0x7F] == 0xFF


def test_every_alaw_code_survives_decode_then_encode() -> None:
    codes = bytes(range(256))
    assert g711.alaw_encode(g711.alaw_decode(codes)) == codes


@pytest.mark.parametrize(
    ("encode", "decode"),
    [(g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)],
)
def test_round_trip_error_is_bounded_and_monotonic(encode: object, decode: object) -> None:
    assert callable(encode)
    assert callable(decode)
    decoded = linear(decode(encode(ALL_SAMPLES)))
    previous = -32768
    for value, back in zip(range(-32768, 32768), decoded, strict=True):
        # Logarithmic quantisation: the error grows with the magnitude, about
        # 1/32 of it at most (half a step of 16 per segment), plus the few low
        # bits G.711 does not carry; the overload region clips to the largest step.
        assert abs(back - value) <= abs(value) / 32 + 8
        assert back >= previous  # the characteristic never goes backwards
        previous = back


def test_lengths_and_odd_input() -> None:
    assert len(g711.ulaw_encode(bytes(320))) == 160
    assert len(g711.alaw_decode(bytes(160))) == 320
    assert g711.ulaw_encode(b"") == b""
    assert g711.ulaw_decode(b"") == b""
    with pytest.raises(ValueError, match="even"):
        g711.ulaw_encode(b"\x00")


def test_payload_type_dispatch() -> None:
    assert g711.PAYLOAD_TYPES == {0: "PCMU", 8: "PCMA"}
    assert g711.encode(0, pcm(0)) == b"\xff"
    assert g711.encode(8, pcm(0)) == b"\xd5"
    assert g711.decode(0, b"\xff") == pcm(0)
    assert g711.decode(8, b"\xd5") == pcm(8)
    with pytest.raises(ValueError, match=r"not G\.711"):
        g711.encode(18, pcm(0))
    with pytest.raises(ValueError, match=r"not G\.711"):
        g711.decode(9, b"\x00")
