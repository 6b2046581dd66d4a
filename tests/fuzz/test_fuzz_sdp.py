"""Fuzzing SDP (RFC 4566) and what the B2BUA does with an offer or answer from
the network: parse it, answer it (RFC 3264), anchor its media, read its SDES
keys (RFC 4568), and write the result back out.

The property: `SdpError` is the only exception any of these raise on hostile
input, within the per-example deadline; a body that parses serializes to bytes
that parse back to the same description.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from teleoffice.sip.sdp import (
    Codec,
    SdpError,
    SessionDescription,
    build_answer,
    crypto_attributes,
    is_hold,
    negotiated_codecs,
    parse_crypto,
    parse_sdp,
    with_connection,
)
from tests.fuzz.mutate import fuzzing, mutants, text_mutants

SEEDS = [
    # A desk phone's offer: two codecs and DTMF events.
    b"v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n"
    b"c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\n"
    b"a=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    b"a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=ptime:20\r\na=sendrecv\r\n",
    # A softphone with video, bandwidth, an IPv6 address and per-media c= lines.
    b"v=0\no=- 3724394400 3724394401 IN IP6 2001:db8::10\ns=baresip\n"
    b"b=AS:2000\nt=0 0\na=tool:baresip\nm=audio 10000 RTP/AVP 96 0 8 97\n"
    b"c=IN IP6 2001:db8::10\nb=TIAS:64000\na=rtpmap:96 opus/48000/2\n"
    b"a=fmtp:96 stereo=1;sprop-stereo=1\na=rtpmap:97 telephone-event/8000\n"
    b"a=rtcp-mux\na=sendonly\nm=video 10002 RTP/AVP 100\nc=IN IP6 2001:db8::10\n"
    b"a=rtpmap:100 H264/90000\na=inactive\n",
    # An SRTP offer with two keys (RFC 4568).
    b"v=0\r\no=bob 1 1 IN IP4 198.51.100.7\r\ns=call\r\nc=IN IP4 198.51.100.7\r\n"
    b"t=0 0\r\nm=audio 20000 RTP/SAVP 8 0\r\n"
    b"a=crypto:1 AES_CM_128_HMAC_SHA1_80 "
    b"inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4\r\n"
    b"a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj\r\n",
    # RFC 2543 hold, a rejected stream, rare lines and an unknown letter.
    b"v=0\r\no=carol 28908 28909 IN IP4 0.0.0.0\r\ns= \r\ni=info\r\nu=http://x/\r\n"
    b"e=a@b\r\np=+1 555\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nr=7d 1h 0 25h\r\nz=0 -1h\r\n"
    b"k=prompt\r\nx=unknown\r\nm=audio 0 RTP/AVP 0\r\nm=image 9000 udptl t38\r\n"
    b"a=T38FaxVersion:0\r\nm=audio 30000/2 RTP/AVP 18 4 3\r\na=recvonly\r\n",
]
SDP_TOKENS = (
    b"\r\nm=audio 1 RTP/AVP 0",
    b"\r\nc=IN IP4 ",
    b"\r\nc=",
    b"\r\na=rtpmap:",
    b"\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:",
    b"|2^",
    b"\r\na=sendonly",
    b"\r\nv=0",
    b"\r\no=",
    b"\r\ns=",
    b"\r\nt=",
    b"\r\nb=AS:",
    b"/",
    b"RTP/SAVP",
    b"65536",
    b"telephone-event/8000",
)
CRYPTO_SEEDS = [
    "1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz|2^20|1:4",
    "2 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj;"
    "inline:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNk|1048576 KDR=1 UNENCRYPTED_SRTCP",
]
SUPPORTED = [Codec("PCMU", 8000, 0), Codec("PCMA", 8000, 8), Codec("telephone-event", 8000, 101)]


def check_description(sdp: SessionDescription) -> None:
    """Everything the B2BUA does with a description from the network."""
    assert parse_sdp(sdp.to_bytes()) == sdp
    for index, media in enumerate(sdp.media):
        media.codecs()
        media.codec_names()
        media.fmtp(101)
        sdp.media_direction(index)
        is_hold(sdp, index)
        crypto_attributes(media)
    for secure in (False, True):
        try:
            answer = build_answer(
                sdp,
                address="203.0.113.1",
                port=40000,
                supported=SUPPORTED,
                session_id=1,
                session_version=1,
                secure=secure,
            )
        except SdpError:
            continue
        assert parse_sdp(answer.to_bytes()) == answer
        for index in range(len(sdp.media)):
            negotiated_codecs(sdp, answer, index)
    try:
        anchored = with_connection(sdp, "203.0.113.1", [40002] * len(sdp.media), 2)
        anchored.to_bytes()
    except SdpError:
        pass


def check_body(data: bytes) -> None:
    try:
        sdp = parse_sdp(data)
    except SdpError:
        return
    check_description(sdp)


@fuzzing(scale=2)
@given(mutants(SEEDS, SDP_TOKENS, max_steps=5))
def test_sdp_returns_or_raises_sdp_error_on_mutated_bodies(data: bytes) -> None:
    check_body(data)


@fuzzing(scale=0.5)
@given(st.binary(max_size=1000))
def test_sdp_returns_or_raises_sdp_error_on_noise(data: bytes) -> None:
    check_body(data)


@fuzzing()
@given(text_mutants(CRYPTO_SEEDS, (b"|", b";", b"inline:", b"2^", b":", b"="), max_steps=4))
def test_crypto_attribute_returns_or_raises_sdp_error(value: str) -> None:
    # Attribute values come out of parse_sdp, which refuses NUL in any line.
    value = value.replace("\0", "")
    try:
        attribute = parse_crypto(value)
    except SdpError:
        return
    # What we parsed we can write again, and it reads back the same.
    assert parse_crypto(attribute.to_value()) == attribute
