"""SDP parsing and serializing (RFC 4566) and offer/answer (RFC 3264)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from teleoffice.sip.sdp import (
    MAX_LINES,
    MAX_MEDIA,
    MAX_SIZE,
    Codec,
    Connection,
    Direction,
    MediaDescription,
    Origin,
    SdpError,
    SessionDescription,
    build_answer,
    build_offer,
    bump_version,
    is_hold,
    negotiated_codecs,
    parse_sdp,
    with_connection,
)


def crlf(text: str) -> bytes:
    """Test bodies are written one line per source line; SDP wants CRLF."""
    return "".join(line + "\r\n" for line in text.strip().splitlines()).encode()


BARESIP_OFFER = crlf(
    """
v=0
o=- 2890844526 2890844526 IN IP4 192.0.2.10
s=-
c=IN IP4 192.0.2.10
t=0 0
a=tool:baresip 3.10.1
m=audio 10000 RTP/AVP 96 9 0 8 101
b=AS:128
a=rtpmap:96 opus/48000/2
a=fmtp:96 stereo=1;sprop-stereo=1
a=rtpmap:9 G722/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=sendrecv
a=label:1
a=ssrc:3166234712 cname:8f0d2c1e-4b9c
a=rtcp-rsize
"""
)

LINPHONE_OFFER = crlf(
    """
v=0
o=alice 3411 2072 IN IP4 198.51.100.7
s=Talk
c=IN IP4 198.51.100.7
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
a=record:off
m=audio 7078 RTP/AVP 112 97 98 96 0 8 18 110 101 100
a=rtpmap:112 OPUS/48000/2
a=fmtp:112 useinbandfec=1
a=rtpmap:97 speex/16000
a=fmtp:97 vbr=on
a=rtpmap:98 speex/8000
a=fmtp:98 vbr=on
a=rtpmap:96 SILK/16000
a=fmtp:18 annexb=no
a=rtpmap:110 telephone-event/48000
a=rtpmap:101 telephone-event/16000
a=rtpmap:100 telephone-event/8000
a=rtcp:7079
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
"""
)

VIDEO_OFFER = crlf(
    """
v=0
o=bob 8001 8001 IN IP6 2001:db8::5
s=Video call
i=A call with pictures
u=http://www.example.com/call
e=bob@example.com (Bob)
p=+1 617 555-6011
c=IN IP6 2001:db8::5
b=CT:2048
t=0 0
k=prompt
m=audio 49170 RTP/AVP 0 101
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-16
m=video 51372 RTP/AVP 99 31
i=Main camera
b=AS:1920
a=rtpmap:99 H264/90000
a=fmtp:99 profile-level-id=42e01f;packetization-mode=1
a=recvonly
"""
)

SENDONLY_OFFER = crlf(
    """
v=0
o=carol 42 43 IN IP4 203.0.113.9
s=On hold
c=IN IP4 203.0.113.9
t=0 0
a=sendonly
m=audio 20000 RTP/AVP 8 0
m=audio 20002 RTP/AVP 0
a=sendrecv
"""
)

REALISTIC = [BARESIP_OFFER, LINPHONE_OFFER, VIDEO_OFFER, SENDONLY_OFFER]

PCMU = Codec("PCMU", 8000)
PCMA = Codec("PCMA", 8000)
DTMF = Codec("telephone-event", 8000)
OPUS = Codec("opus", 48000, channels=2)


# -- parsing ---------------------------------------------------------------------


@pytest.mark.parametrize("body", REALISTIC)
def test_realistic_bodies_round_trip_byte_for_byte(body: bytes) -> None:
    sdp = parse_sdp(body)
    assert sdp.to_bytes() == body
    assert parse_sdp(sdp.to_bytes()) == sdp


def test_baresip_offer_fields() -> None:
    sdp = parse_sdp(BARESIP_OFFER)
    assert sdp.origin == Origin("-", "2890844526", 2890844526, "IN", "IP4", "192.0.2.10")
    assert sdp.connection == Connection("IN", "IP4", "192.0.2.10")
    assert sdp.times == ((0, 0),)
    assert sdp.attributes == (("tool", "baresip 3.10.1"),)
    (audio,) = sdp.media
    assert (audio.media, audio.port, audio.port_count, audio.proto) == (
        "audio",
        10000,
        None,
        "RTP/AVP",
    )
    assert audio.formats == ("96", "9", "0", "8", "101")
    assert audio.bandwidths == (("AS", 128),)
    assert audio.rtpmap()["96"] == ("opus", 48000, "2")
    assert audio.fmtp("96") == "stereo=1;sprop-stereo=1"
    assert audio.fmtp(101) == "0-15"
    assert audio.fmtp(0) is None
    assert ("rtcp-rsize", None) in audio.attributes
    assert audio.attribute_values("ssrc") == ["3166234712 cname:8f0d2c1e-4b9c"]
    assert sdp.media_direction(0) is Direction.SENDRECV


def test_linphone_codecs_and_static_payload_types() -> None:
    audio = parse_sdp(LINPHONE_OFFER).media[0]
    assert audio.codec_names() == [
        "OPUS",
        "speex",
        "speex",
        "SILK",
        "PCMU",
        "PCMA",
        "G729",
        "telephone-event",
        "telephone-event",
        "telephone-event",
    ]
    codecs = audio.codecs()
    assert codecs[0] == Codec("OPUS", 48000, 112, 2)
    assert codecs[6] == Codec("G729", 8000, 18)
    assert audio.fmtp(18) == "annexb=no"


def test_video_body_keeps_rare_lines_and_media_level_lines() -> None:
    sdp = parse_sdp(VIDEO_OFFER)
    assert [kind for kind, _ in sdp.other_lines] == ["i", "u", "e", "p", "k"]
    assert sdp.bandwidths == (("CT", 2048),)
    video = sdp.media[1]
    assert video.other_lines == (("i", "Main camera"),)
    assert video.bandwidths == (("AS", 1920),)
    assert video.codec_names() == ["H264", "H261"]
    assert sdp.media_direction(1) is Direction.RECVONLY
    assert sdp.media_direction(0) is Direction.SENDRECV
    assert sdp.connection_for(1) == Connection("IN", "IP6", "2001:db8::5")


def test_session_level_direction_is_the_default_for_media() -> None:
    sdp = parse_sdp(SENDONLY_OFFER)
    assert sdp.session_direction() is Direction.SENDONLY
    assert sdp.media_direction(0) is Direction.SENDONLY
    assert sdp.media_direction(1) is Direction.SENDRECV
    assert is_hold(sdp, 0)
    assert not is_hold(sdp, 1)


def test_sloppy_but_clear_bodies_are_accepted() -> None:
    # Bare LF, trailing blanks, an empty s=, no t=, doubled spaces, blank lines,
    # lines out of order, an upper-case direction attribute.
    body = (
        b"v=0\n"
        b"o=-  1 1 IN IP4 192.0.2.1  \n"
        b"s=\n"
        b"a=X-custom:1 \n"
        b"c=IN IP4 192.0.2.1\t\n"
        b"\n"
        b"m=audio  4000  RTP/AVP 0\r\n"
        b"a=SendOnly\n"
        b"\n"
    )
    sdp = parse_sdp(body)
    assert sdp.session_name == ""
    assert sdp.times == ((0, 0),)
    assert sdp.origin.username == "-"
    assert sdp.attributes == (("X-custom", "1"),)
    assert sdp.media[0].formats == ("0",)
    assert sdp.media_direction(0) is Direction.SENDONLY
    out = sdp.to_bytes()
    assert b"s= \r\n" in out
    assert b"t=0 0\r\n" in out
    assert parse_sdp(out) == sdp
    assert parse_sdp(body.decode()) == sdp


def test_out_of_order_rare_lines_are_stored_in_canonical_order() -> None:
    body = crlf(
        """
v=0
o=- 1 1 IN IP4 192.0.2.1
s=x
k=clear:abc
e=a@example.com
t=0 0
t=10 20
i=info
r=604800 3600 0 90000
z=2882844526 -1h
X=unknown
m=audio 0 RTP/AVP
k=prompt
Y=something
i=media info
"""
    )
    sdp = parse_sdp(body)
    assert [k for k, _ in sdp.other_lines] == ["i", "e", "r", "z", "k", "X"]
    assert sdp.times == ((0, 0), (10, 20))
    assert sdp.media[0].other_lines == (("i", "media info"), ("k", "prompt"), ("Y", "something"))
    assert sdp.media[0].formats == ()
    assert parse_sdp(sdp.to_bytes()) == sdp


def test_attribute_values_keep_colons_and_empty_values() -> None:
    body = BARESIP_OFFER + b"a=fingerprint:sha-256 AB:CD:EF\r\na=empty:\r\n"
    audio = parse_sdp(body).media[0]
    assert audio.attribute_values("fingerprint") == ["sha-256 AB:CD:EF"]
    assert audio.attribute_values("empty") == [""]


def test_malformed_rtpmap_lines_are_ignored_not_fatal() -> None:
    body = crlf(
        """
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
m=audio 4000 RTP/AVP 96 97 98 0
a=rtpmap:96 opus
a=rtpmap:97 foo/fast
a=rtpmap
a=rtpmap:98 L16/8000/
a=rtpmap:98 L16/16000
"""
    )
    audio = parse_sdp(body).media[0]
    assert audio.rtpmap() == {"98": ("L16", 8000, None)}
    assert audio.codec_names() == [None, None, "L16", "PCMU"]


def test_non_rtp_formats_are_their_own_names() -> None:
    body = crlf(
        """
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
m=image 6000 udptl t38
m=audio 4000/2 RTP/AVP 0
"""
    )
    sdp = parse_sdp(body)
    assert sdp.media[0].codec_names() == ["t38"]
    assert sdp.media[0].codecs() == []
    assert sdp.media[1].port_count == 2


def test_invalid_utf8_is_carried_through() -> None:
    body = BARESIP_OFFER.replace(b"s=-", b"s=Caf\xe9")
    sdp = parse_sdp(body)
    assert sdp.to_bytes() == body


MINIMAL = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"


@pytest.mark.parametrize(
    ("body", "line", "fragment"),
    [
        ("", None, "empty"),
        ("\r\n\r\n", None, "empty"),
        ("o=- 1 1 IN IP4 192.0.2.1\r\nv=0\r\n", 1, "first line must be v="),
        ("v=zero\r\n", 1, "version"),
        ("v=0\r\ns=-\r\n", None, "missing o="),
        ("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n", None, "missing s="),
        (MINIMAL + "v=0\r\n", 6, "more than one v="),
        (MINIMAL + "o=- 1 1 IN IP4 192.0.2.1\r\n", 6, "more than one o="),
        (MINIMAL + "s=again\r\n", 6, "more than one s="),
        (MINIMAL + "c=IN IP4 192.0.2.2\r\n", 6, "session-level c="),
        ("v=0\r\no=- 1 IN IP4 192.0.2.1\r\ns=-\r\n", 2, "6 fields"),
        ("v=0\r\no=- 1 x IN IP4 192.0.2.1\r\ns=-\r\n", 2, "session version"),
        (MINIMAL + "m=audio 1 RTP/AVP 0\r\nc=IN IP4\r\n", 7, "3 fields"),
        (MINIMAL + "b=AS\r\n", 6, "b="),
        (MINIMAL + "b=:64\r\n", 6, "b="),
        (MINIMAL + "b=AS:lots\r\n", 6, "bandwidth"),
        (MINIMAL + "t=0\r\n", 6, "2 fields"),
        (MINIMAL + "t=0 -1\r\n", 6, "stop time"),
        (MINIMAL + "a=\r\n", 6, "empty name"),
        (MINIMAL + "a=:x\r\n", 6, "empty name"),
        (MINIMAL + "m=audio RTP/AVP\r\n", 6, "m= needs"),
        (MINIMAL + "m=audio x RTP/AVP 0\r\n", 6, "port 'x'"),
        (MINIMAL + "m=audio +5 RTP/AVP 0\r\n", 6, "port"),
        (MINIMAL + "m=audio 65536 RTP/AVP 0\r\n", 6, "out of range"),
        (MINIMAL + "m=audio 4000/x RTP/AVP 0\r\n", 6, "port count"),
        (MINIMAL + "m=audio 4000/0 RTP/AVP 0\r\n", 6, "at least 1"),
        (MINIMAL + "m=audio 1 RTP/AVP 0\r\nc=IN IP4 a\r\nc=IN IP4 b\r\n", 8, "more than one c="),
        (MINIMAL + "m=audio 1 RTP/AVP 0\r\nt=0 0\r\n", 7, "not allowed in a media section"),
        (MINIMAL + "m=audio 1 RTP/AVP 0\r\no=x\r\n", 7, "not allowed in a media section"),
        (MINIMAL + "a=x\ry\r\n", 6, "CR or NUL"),
        (MINIMAL + "a=x\0\r\n", 6, "CR or NUL"),
        (MINIMAL + "garbage\r\n", 6, "<letter>=<value>"),
        (MINIMAL + "x\r\n", 6, "<letter>=<value>"),
        (MINIMAL + "1=2\r\n", 6, "<letter>=<value>"),
        (MINIMAL + "é=2\r\n", 6, "<letter>=<value>"),
        (MINIMAL + " a=x\r\n", 6, "<letter>=<value>"),
    ],
)
def test_malformed_bodies_raise_sdp_error_naming_the_line(
    body: str, line: int | None, fragment: str
) -> None:
    with pytest.raises(SdpError, match=None) as info:
        parse_sdp(body.encode())
    assert info.value.line == line
    assert fragment in str(info.value)
    if line is not None:
        assert str(info.value).startswith(f"SDP line {line}: ")


def test_size_limits() -> None:
    too_many_media = MINIMAL + "m=audio 0 RTP/AVP 0\r\n" * (MAX_MEDIA + 1)
    with pytest.raises(SdpError, match="media sections"):
        parse_sdp(too_many_media)
    assert len(parse_sdp(MINIMAL + "m=audio 0 RTP/AVP 0\r\n" * MAX_MEDIA).media) == MAX_MEDIA
    too_many_lines = MINIMAL + "a=x\r\n" * MAX_LINES
    with pytest.raises(SdpError, match="lines"):
        parse_sdp(too_many_lines)
    with pytest.raises(SdpError, match="byte limit"):
        parse_sdp(MINIMAL + "a=" + "x" * MAX_SIZE + "\r\n")


def test_unencodable_text_is_an_sdp_error() -> None:
    with pytest.raises(SdpError, match="cannot be encoded"):
        parse_sdp(MINIMAL + "s=\ud800\r\n")


def test_sdp_error_is_a_value_error() -> None:
    assert issubclass(SdpError, ValueError)


# -- serializing -------------------------------------------------------------------


def _session(**changes: object) -> SessionDescription:
    return replace(parse_sdp(MINIMAL + "m=audio 4000 RTP/AVP 0\r\n"), **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "sdp",
    [
        _session(origin=Origin("a b", "1", 1, "IN", "IP4", "x")),
        _session(origin=Origin("-", "1", -1, "IN", "IP4", "x")),
        _session(origin=Origin("-", "1", 1, "IN", "IP4", "")),
        _session(session_name="evil\r\na=injected"),
        _session(connection=Connection("IN", "IP4", "192.0.2.1\r\nm=video")),
        _session(bandwidths=(("A:S", 1),)),
        _session(bandwidths=(("AS", -1),)),
        _session(times=((-1, 0),)),
        _session(attributes=(("a:b", None),)),
        _session(attributes=(("", "x"),)),
        _session(attributes=(("x", "1\n2"),)),
        _session(other_lines=(("m", "audio 1 RTP/AVP 0"),)),
        _session(other_lines=(("ii", "x"),)),
        _session(media=(MediaDescription("audio", 70000, None, "RTP/AVP", ("0",)),)),
        _session(media=(MediaDescription("audio", 1, 0, "RTP/AVP", ("0",)),)),
        _session(media=(MediaDescription("audio", 1, None, "RTP/AVP", ("0 8",)),)),
        _session(
            media=(
                MediaDescription("audio", 1, None, "RTP/AVP", ("0",), other_lines=(("t", "0 0"),)),
            )
        ),
    ],
)
def test_to_bytes_refuses_fields_that_would_not_parse_back(sdp: SessionDescription) -> None:
    with pytest.raises(SdpError):
        sdp.to_bytes()


def test_to_bytes_line_order() -> None:
    sdp = SessionDescription(
        version=0,
        origin=Origin("-", "1", 2, "IN", "IP4", "192.0.2.1"),
        session_name="x",
        connection=Connection("IN", "IP4", "192.0.2.1"),
        bandwidths=(("AS", 64),),
        times=(),
        attributes=(("recvonly", None),),
        media=(
            MediaDescription(
                "audio",
                4000,
                None,
                "RTP/AVP",
                ("0",),
                connection=Connection("IN", "IP4", "192.0.2.2"),
                bandwidths=(("AS", 64),),
                attributes=(("ptime", "20"),),
                other_lines=(("k", "prompt"), ("i", "voice")),
            ),
        ),
        other_lines=(("z", "0 0"), ("i", "info"), ("r", "1 2 3")),
    )
    kinds = [line[:1] for line in sdp.to_bytes().decode().split("\r\n") if line]
    assert kinds == list("vosicbtrzam") + list("icbka")


# -- offer/answer -------------------------------------------------------------------


def test_build_offer() -> None:
    offer = build_offer(
        address="192.0.2.50",
        port=30000,
        codecs=[PCMA, OPUS, PCMU, Codec("G722", 8000), Codec("speex", 16000, 99), DTMF],
        session_id=77,
        session_version=1,
    )
    assert offer.to_bytes() == crlf(
        """
v=0
o=teleoffice 77 1 IN IP4 192.0.2.50
s=-
c=IN IP4 192.0.2.50
t=0 0
m=audio 30000 RTP/AVP 8 96 0 9 99 97
a=rtpmap:8 PCMA/8000
a=rtpmap:96 opus/48000/2
a=rtpmap:0 PCMU/8000
a=rtpmap:9 G722/8000
a=rtpmap:99 speex/16000
a=rtpmap:97 telephone-event/8000
a=fmtp:97 0-16
a=ptime:20
a=sendrecv
"""
    )
    assert parse_sdp(offer.to_bytes()) == offer


def test_build_offer_explicit_numbers_win_over_static_ones() -> None:
    offer = build_offer(
        address="192.0.2.1",
        port=4000,
        codecs=[PCMU, Codec("PCMA", 8000, 0)],
        session_id=1,
        session_version=1,
    )
    assert offer.media[0].codec_names() == ["PCMU", "PCMA"]
    assert offer.media[0].formats == ("96", "0")


def test_build_offer_options_and_ipv6() -> None:
    offer = build_offer(
        address="2001:db8::1",
        port=4000,
        codecs=[PCMU],
        session_id=1,
        session_version=5,
        direction=Direction.INACTIVE,
        username="pbx",
        ptime=0,
    )
    assert offer.origin == Origin("pbx", "1", 5, "IN", "IP6", "2001:db8::1")
    assert offer.media[0].attributes == (("rtpmap", "0 PCMU/8000"), ("inactive", None))
    assert is_hold(offer)


@pytest.mark.parametrize(
    ("codecs", "port", "address"),
    [
        ([], 4000, "192.0.2.1"),
        ([PCMU], 70000, "192.0.2.1"),
        ([Codec("PCMU", 8000, 0), Codec("PCMA", 8000, 0)], 4000, "192.0.2.1"),
        ([Codec("x", 8000, 128)], 4000, "192.0.2.1"),
        ([Codec(f"c{i}", 8000) for i in range(33)], 4000, "192.0.2.1"),
        ([PCMU], 4000, "192.0.2.1 evil"),
    ],
)
def test_build_offer_rejects_impossible_requests(
    codecs: list[Codec], port: int, address: str
) -> None:
    with pytest.raises(SdpError):
        build_offer(address=address, port=port, codecs=codecs, session_id=1, session_version=1)


def answer(
    offer: bytes | SessionDescription, supported: list[Codec], *, hold: bool = False
) -> SessionDescription:
    parsed = parse_sdp(offer) if isinstance(offer, bytes) else offer
    return build_answer(
        parsed,
        address="192.0.2.50",
        port=30000,
        supported=supported,
        session_id=9,
        session_version=1,
        hold=hold,
    )


def test_answer_keeps_offer_order_and_offerer_payload_numbers() -> None:
    # Linphone offers OPUS as 112 and three telephone-event rates; we know opus
    # under another name case and number, and only telephone-event/8000.
    ours = [PCMA, Codec("opus", 48000, 96, 2), PCMU, DTMF]
    ans = answer(LINPHONE_OFFER, ours)
    audio = ans.media[0]
    assert audio.port == 30000
    assert audio.formats == ("112", "0", "8", "100")
    assert audio.attributes == (
        ("rtpmap", "112 OPUS/48000/2"),
        ("rtpmap", "0 PCMU/8000"),
        ("rtpmap", "8 PCMA/8000"),
        ("rtpmap", "100 telephone-event/8000"),
        ("fmtp", "112 useinbandfec=1"),
        ("fmtp", "100 0-16"),
        ("sendrecv", None),
    )
    assert ans.connection == Connection("IN", "IP4", "192.0.2.50")
    assert ans.origin == Origin("teleoffice", "9", 1, "IN", "IP4", "192.0.2.50")
    assert parse_sdp(ans.to_bytes()) == ans
    assert negotiated_codecs(parse_sdp(LINPHONE_OFFER), ans) == [
        Codec("OPUS", 48000, 112, 2),
        Codec("PCMU", 8000, 0),
        Codec("PCMA", 8000, 8),
        Codec("telephone-event", 8000, 100),
    ]


def test_answer_copies_ptime_and_times() -> None:
    offer = build_offer(
        address="192.0.2.1", port=4000, codecs=[PCMU], session_id=1, session_version=1, ptime=30
    )
    offer = replace(offer, times=((5, 6),))
    ans = answer(offer, [PCMU])
    assert ans.times == ((5, 6),)
    assert ans.media[0].attribute_values("ptime") == ["30"]


def test_telephone_event_only_if_offered() -> None:
    ans = answer(SENDONLY_OFFER, [PCMU, DTMF])
    assert ans.media[0].formats == ("0",)
    assert ans.media[0].codec_names() == ["PCMU"]


def test_no_common_codec_rejects_the_stream_keeping_offered_formats() -> None:
    ans = answer(BARESIP_OFFER, [Codec("G729", 8000), DTMF])
    (audio,) = ans.media
    assert (audio.port, audio.formats, audio.attributes) == (0, ("96", "9", "0", "8", "101"), ())
    assert audio.connection is None
    assert negotiated_codecs(parse_sdp(BARESIP_OFFER), ans) == []


def test_clock_rate_must_match() -> None:
    ans = answer(LINPHONE_OFFER, [Codec("speex", 32000), Codec("SILK", 8000)])
    assert ans.media[0].port == 0


def test_video_is_rejected_audio_accepted() -> None:
    ans = answer(VIDEO_OFFER, [PCMU, DTMF])
    audio, video = ans.media
    assert audio.port == 30000
    assert audio.formats == ("0", "101")
    assert (video.media, video.port, video.proto, video.formats) == (
        "video",
        0,
        "RTP/AVP",
        ("99", "31"),
    )
    assert len(ans.media) == len(parse_sdp(VIDEO_OFFER).media)
    assert negotiated_codecs(parse_sdp(VIDEO_OFFER), ans, 1) == []


def test_only_the_first_usable_audio_stream_is_accepted() -> None:
    ans = answer(SENDONLY_OFFER, [PCMU])
    assert [m.port for m in ans.media] == [30000, 0]


def test_offered_port_zero_stays_zero_and_non_avp_is_rejected() -> None:
    body = crlf(
        """
v=0
o=- 1 1 IN IP4 192.0.2.1
s=-
c=IN IP4 192.0.2.1
t=0 0
m=audio 0 RTP/AVP 0
m=audio 4000 RTP/SAVP 0
m=image 4002 udptl t38
m=audio 4004 RTP/AVP 0
"""
    )
    ans = answer(body, [PCMU])
    assert [m.port for m in ans.media] == [0, 0, 0, 30000]
    assert ans.media[2].formats == ("t38",)


@pytest.mark.parametrize(
    ("offered", "hold", "expected"),
    [
        ("sendrecv", False, Direction.SENDRECV),
        ("sendrecv", True, Direction.SENDONLY),
        ("sendonly", False, Direction.RECVONLY),
        ("sendonly", True, Direction.INACTIVE),
        ("recvonly", False, Direction.SENDONLY),
        ("recvonly", True, Direction.SENDONLY),
        ("inactive", False, Direction.INACTIVE),
        ("inactive", True, Direction.INACTIVE),
    ],
)
def test_answer_direction_complements_the_offer(
    offered: str, hold: bool, expected: Direction
) -> None:
    offer = build_offer(
        address="192.0.2.1",
        port=4000,
        codecs=[PCMU],
        session_id=1,
        session_version=1,
        direction=Direction(offered),
    )
    ans = answer(offer, [PCMU], hold=hold)
    assert ans.media_direction(0) is expected
    assert is_hold(ans) is (expected in (Direction.SENDONLY, Direction.INACTIVE))


def test_hold_and_unhold_round() -> None:
    first = build_offer(
        address="192.0.2.1", port=4000, codecs=[PCMU], session_id=1, session_version=1
    )
    held = bump_version(
        replace(
            first,
            media=(
                replace(first.media[0], attributes=(("rtpmap", "0 PCMU/8000"), ("sendonly", None))),
            ),
        )
    )
    assert held.origin.session_version == 2
    assert is_hold(held)
    assert answer(held, [PCMU]).media_direction(0) is Direction.RECVONLY
    resumed = bump_version(replace(held, media=first.media))
    assert resumed.origin.session_version == 3
    assert not is_hold(resumed)
    assert answer(resumed, [PCMU]).media_direction(0) is Direction.SENDRECV


def test_rfc2543_hold_with_zero_address() -> None:
    offer = replace(
        build_offer(address="192.0.2.1", port=4000, codecs=[PCMU], session_id=1, session_version=1),
        connection=Connection("IN", "IP4", "0.0.0.0"),
    )
    assert is_hold(offer)
    # The offerer wants nothing sent to it, so we may only receive.
    assert answer(offer, [PCMU]).media_direction(0) is Direction.RECVONLY


def test_session_level_direction_in_offer_is_honoured() -> None:
    ans = answer(SENDONLY_OFFER, [PCMA, PCMU])
    assert ans.media[0].formats == ("8", "0")
    assert ans.media_direction(0) is Direction.RECVONLY


def test_offer_without_connection_is_unusable() -> None:
    offer = parse_sdp(
        b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n"
    )
    with pytest.raises(SdpError, match="no connection address"):
        answer(offer, [PCMU])


def test_offer_without_media_gets_an_answer_without_media() -> None:
    ans = answer(MINIMAL.encode(), [PCMU])
    assert ans.media == ()


def test_build_answer_checks_local_fields() -> None:
    offer = parse_sdp(BARESIP_OFFER)
    with pytest.raises(SdpError):
        build_answer(
            offer, address="192.0.2.1", port=-1, supported=[PCMU], session_id=1, session_version=1
        )
    with pytest.raises(SdpError):
        build_answer(offer, address="", port=1, supported=[PCMU], session_id=1, session_version=1)


# -- helpers -------------------------------------------------------------------------


def test_with_connection_anchors_media() -> None:
    offer = parse_sdp(VIDEO_OFFER)
    offer = replace(
        offer,
        media=(
            replace(offer.media[0], connection=Connection("IN", "IP6", "2001:db8::9")),
            replace(offer.media[1], port=0),
        ),
    )
    anchored = with_connection(offer, "192.0.2.50", [40000, 40002], 12)
    ours = Connection("IN", "IP4", "192.0.2.50")
    assert anchored.connection == ours
    assert anchored.media[0].connection == ours
    assert [m.port for m in anchored.media] == [40000, 0]
    assert anchored.origin == replace(offer.origin, session_version=12)
    assert anchored.media[0].attributes == offer.media[0].attributes
    assert parse_sdp(anchored.to_bytes()) == anchored


def test_with_connection_keeps_rfc2543_hold_address() -> None:
    held = parse_sdp(BARESIP_OFFER.replace(b"c=IN IP4 192.0.2.10", b"c=IN IP4 0.0.0.0"))
    anchored = with_connection(held, "192.0.2.50", [40000], 2)
    assert anchored.connection == Connection("IN", "IP4", "0.0.0.0")
    assert is_hold(anchored)


@pytest.mark.parametrize(
    ("address", "ports"),
    [("192.0.2.50", []), ("192.0.2.50", [1, 2]), ("192.0.2.50", [70000]), ("a b", [1])],
)
def test_with_connection_rejects_bad_arguments(address: str, ports: list[int]) -> None:
    with pytest.raises(SdpError):
        with_connection(parse_sdp(BARESIP_OFFER), address, ports, 2)


def test_direction_enum() -> None:
    assert Direction.SENDONLY.reversed() is Direction.RECVONLY
    assert Direction.INACTIVE.reversed() is Direction.INACTIVE
    assert Direction.SENDRECV.sends
    assert Direction.SENDRECV.receives
    assert not Direction.RECVONLY.sends
    assert Direction.from_flags(send=False, recv=True) is Direction.RECVONLY


def test_is_hold_indexes_media() -> None:
    sdp = parse_sdp(SENDONLY_OFFER)
    with pytest.raises(IndexError):
        is_hold(sdp, 2)


# -- properties ------------------------------------------------------------------------

_SDP_LETTERS = "vosicbtrzkamuepx"
_sdpish_line = st.tuples(
    st.sampled_from(_SDP_LETTERS),
    st.sampled_from(["=", "=", "=", ":", ""]),
    st.text(alphabet=st.sampled_from(list(" 0123456789/:-.abIPNV4\t\r")), max_size=20),
).map("".join)


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        st.lists(_sdpish_line, max_size=20).map(lambda ls: "v=0\n" + "\n".join(ls)),
    )
)
def test_parse_raises_only_sdp_error(data: str | bytes) -> None:
    try:
        sdp = parse_sdp(data)
    except SdpError:
        return
    assert parse_sdp(sdp.to_bytes()) == sdp


_token = st.text(alphabet="abcdefXYZ0123456789-._+", min_size=1, max_size=8)
_text = st.text(
    alphabet=st.characters(
        exclude_characters="\r\n\0", categories=["L", "M", "N", "P", "S", "Z", "Cc", "Cf"]
    ),
    max_size=12,
).map(lambda s: s.rstrip(" \t"))
_uint = st.integers(min_value=0, max_value=2**40)
_connection = st.builds(Connection, _token, _token, _token)
_attributes = st.lists(st.tuples(_token, st.none() | _text), max_size=4).map(tuple)
_bandwidths = st.lists(st.tuples(_token, _uint), max_size=2).map(tuple)
_SESSION_ORDER = "iuep" + "rzk"


def _canonical(lines: list[tuple[str, str]], order: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(lines, key=lambda kv: order.index(kv[0])))


_media = st.builds(
    MediaDescription,
    media=_token,
    port=st.integers(0, 65535),
    port_count=st.none() | st.integers(1, 8),
    proto=_token,
    formats=st.lists(_token, max_size=5).map(tuple),
    connection=st.none() | _connection,
    bandwidths=_bandwidths,
    attributes=_attributes,
    other_lines=st.lists(st.tuples(st.sampled_from("ik"), _text), max_size=3).map(
        lambda ls: _canonical(ls, "ik")
    ),
)
_session_strategy = st.builds(
    SessionDescription,
    version=_uint,
    origin=st.builds(Origin, _token, _token, _uint, _token, _token, _token),
    session_name=_text,
    connection=st.none() | _connection,
    bandwidths=_bandwidths,
    times=st.lists(st.tuples(_uint, _uint), min_size=1, max_size=3).map(tuple),
    attributes=_attributes,
    media=st.lists(_media, max_size=3).map(tuple),
    other_lines=st.lists(st.tuples(st.sampled_from(_SESSION_ORDER), _text), max_size=4).map(
        lambda ls: _canonical(ls, _SESSION_ORDER)
    ),
)


@settings(max_examples=150, deadline=None)
@given(_session_strategy)
def test_generated_sessions_round_trip(sdp: SessionDescription) -> None:
    assert parse_sdp(sdp.to_bytes()) == sdp
