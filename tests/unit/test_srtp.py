"""SRTP with SDES keys: the a=crypto syntax (sip.sdp), the key negotiation of one
leg (sip.sdes), the libsrtp wrapper (media.srtp) and a media session that
terminates SRTP on one side over real UDP sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import wave
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from teleoffice.media.analysis import dominant_frequency
from teleoffice.media.g711 import ulaw_encode
from teleoffice.media.rtp import RtpPacket, parse_rtp
from teleoffice.media.session import MediaSession
from teleoffice.media.srtp import (
    SrtpError,
    SrtpKeys,
    SrtpReceiver,
    SrtpSender,
    Suite,
    new_master_key,
)
from teleoffice.media.tones import ToneSet, ToneSource
from teleoffice.media.wavfile import WavWriter
from teleoffice.sip.sdes import (
    ACCEPTED_SUITES,
    MIN_KEY_LIFETIME,
    NoUsableCrypto,
    SdesOffer,
    accept_answer,
    answer_offer,
    make_offer,
    proto_for,
    unusable_reason,
)
from teleoffice.sip.sdp import (
    Codec,
    CryptoAttribute,
    CryptoKey,
    MediaDescription,
    SdpError,
    build_answer,
    crypto_attributes,
    parse_crypto,
    parse_sdp,
    with_crypto,
)
from tests.unit.test_media_session import HOST, Phone, call, phone

KEY30 = bytes(range(30))
KEY30_B64 = base64.b64encode(KEY30).decode()
OTHER30 = bytes(range(100, 130))


def counting_keys() -> Callable[[int], bytes]:
    """A deterministic key source: 1, 2, 3 ... repeated to the asked length."""
    counter = itertools.count(1)
    return lambda n: bytes([next(counter)]) * n


def media(proto: str, *crypto: str) -> MediaDescription:
    return MediaDescription(
        media="audio",
        port=4000,
        port_count=None,
        proto=proto,
        formats=("0",),
        attributes=tuple(("crypto", value) for value in crypto),
    )


# --- the a=crypto attribute (RFC 4568 section 9.1) ---------------------------------------


def test_parse_a_plain_crypto_attribute() -> None:
    attr = parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}")
    assert attr == CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", (CryptoKey(KEY30),))
    assert attr.to_value() == f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}"


def test_parse_lifetime_mki_and_session_parameters_and_write_them_back() -> None:
    value = f"7 AES_CM_128_HMAC_SHA1_32 inline:{KEY30_B64}|2^31|5:2 KDR=1 WSH=128"
    attr = parse_crypto(value)
    assert attr.tag == 7
    assert attr.keys == (CryptoKey(KEY30, lifetime=1 << 31, mki=(5, 2)),)
    assert attr.session_params == ("KDR=1", "WSH=128")
    assert parse_crypto(attr.to_value()) == attr
    assert attr.to_value() == value
    # A lifetime in decimal, an MKI without a lifetime, the method in capitals.
    assert parse_crypto(f"1 X INLINE:{KEY30_B64}|1000").keys[0].lifetime == 1000
    only_mki = parse_crypto(f"1 X inline:{KEY30_B64}|1:4").keys[0]
    assert (only_mki.lifetime, only_mki.mki) == (None, (1, 4))


def test_several_keys_and_unpadded_base64_parse() -> None:
    unpadded = base64.b64encode(bytes(28)).decode().rstrip("=")
    attr = parse_crypto(f"2 AEAD_AES_128_GCM inline:{unpadded}|1:1;inline:{KEY30_B64}|2:1")
    assert [key.key_salt for key in attr.keys] == [bytes(28), KEY30]


@pytest.mark.parametrize(
    "value",
    [
        "",
        "1 AES_CM_128_HMAC_SHA1_80",  # no key
        f"1234567890 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}",  # tag of 10 digits
        f"x AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}",
        f"1 AES-CM inline:{KEY30_B64}",  # not a token
        f"1 AES_CM_128_HMAC_SHA1_80 uri:{KEY30_B64}",  # not inline
        "1 AES_CM_128_HMAC_SHA1_80 inline:",
        "1 AES_CM_128_HMAC_SHA1_80 inline:not*base64",
        "1 AES_CM_128_HMAC_SHA1_80 inline:QUJD=x",  # padding in the middle
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|2^",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|2^99",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|0",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|-5",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|1:0",  # MKI length 0
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|1:129",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|256:1",  # value too big
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|1:1|2^20",  # lifetime after MKI
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|2^20|2^20",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|2^20|1:1|x",
        "1 AES_CM_128_HMAC_SHA1_80 inline:" + "A" * 400,  # far longer than any key
    ],
)
def test_malformed_crypto_attributes_are_refused(value: str) -> None:
    with pytest.raises(SdpError):
        parse_crypto(value)


def test_keys_stay_out_of_repr() -> None:
    attr = parse_crypto(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}")
    assert KEY30_B64 not in repr(attr)
    assert repr(KEY30) not in repr(attr)
    assert "AES_CM_128_HMAC_SHA1_80" in repr(attr)
    keys = SrtpKeys(Suite.AES_CM_128_HMAC_SHA1_80, KEY30, OTHER30)
    assert repr(KEY30) not in repr(keys)


def test_writing_refuses_what_would_not_parse_back() -> None:
    for bad in (
        CryptoAttribute(1, "AES CM", (CryptoKey(KEY30),)),
        CryptoAttribute(-1, "X", (CryptoKey(KEY30),)),
        CryptoAttribute(1, "X", ()),
        CryptoAttribute(1, "X", (CryptoKey(b""),)),
        CryptoAttribute(1, "X", (CryptoKey(KEY30, mki=(1, 0)),)),
        CryptoAttribute(1, "X", (CryptoKey(KEY30, lifetime=0),)),
        CryptoAttribute(1, "X", (CryptoKey(KEY30),), ("WSH=1\r\na=evil",)),
    ):
        with pytest.raises(SdpError):
            bad.to_value()


def test_crypto_attributes_skip_malformed_lines() -> None:
    m = media(
        "RTP/SAVP",
        "garbage",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}",
        "2 AES_CM_128_HMAC_SHA1_32 inline:%%%",
    )
    assert [a.tag for a in crypto_attributes(m)] == [1]


OFFER_WITH_KEYS = (
    "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
    "m=audio 4000 RTP/SAVP 0 101\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    "m=video 0 RTP/SAVP 96\r\n"
    f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}\r\n"
)


def test_with_crypto_replaces_every_key_and_sets_the_protocol() -> None:
    sdp = parse_sdp(OFFER_WITH_KEYS)
    ours = CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", (CryptoKey(OTHER30),))
    secured = with_crypto(sdp, "RTP/SAVP", [ours])
    text = secured.to_bytes().decode()
    assert KEY30_B64 not in text  # the writer's key never travels on
    assert text.count("a=crypto:") == 1
    assert secured.media[0].attribute_values("crypto") == [ours.to_value()]
    assert secured.media[1].proto == "RTP/SAVP"  # a rejected stream is left alone
    plain = with_crypto(sdp, "RTP/AVP", [])
    assert plain.media[0].proto == "RTP/AVP"
    assert "a=crypto" not in plain.to_bytes().decode()


def test_build_answer_takes_savp_only_when_told_it_is_secure() -> None:
    offer = parse_sdp(OFFER_WITH_KEYS)
    common: dict[str, Any] = {
        "address": "127.0.0.1",
        "port": 20000,
        "supported": [Codec("PCMU", 8000, 0)],
        "session_id": 1,
        "session_version": 1,
    }
    assert build_answer(offer, **common).media[0].port == 0
    answer = build_answer(offer, secure=True, **common)
    assert (answer.media[0].port, answer.media[0].proto) == (20000, "RTP/SAVP")
    assert answer.media[0].attribute_values("crypto") == []  # keys are the caller's job


# --- negotiation (RFC 4568 section 7) --------------------------------------------------


def test_answer_picks_the_first_usable_attribute_in_the_offerers_order() -> None:
    short = f"inline:{KEY30_B64}|2^{MIN_KEY_LIFETIME.bit_length() - 2}"
    offered = media(
        "RTP/SAVP",
        f"1 F8_128_HMAC_SHA1_80 inline:{KEY30_B64}",  # a suite we do not run
        f"2 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|1:4",  # an MKI
        f"3 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(bytes(16)).decode()}",
        f"4 AES_CM_128_HMAC_SHA1_80 {short}",  # a lifetime shorter than a call
        f"5 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64} KDR=2",
        f"6 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|1:1;inline:{KEY30_B64}|2:1",
        f"7 AES_CM_128_HMAC_SHA1_32 inline:{KEY30_B64}|2^31 WSH=64",
        f"8 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}",
    )
    sdes = answer_offer(offered, new_key=counting_keys())
    assert sdes is not None
    assert sdes.proto == "RTP/SAVP"
    assert (sdes.ours.tag, sdes.ours.suite, sdes.theirs.tag) == (7, "AES_CM_128_HMAC_SHA1_32", 7)
    assert sdes.send_key == bytes([1]) * 30
    assert sdes.receive_key == KEY30
    assert sdes.ours.keys[0].lifetime is None
    assert sdes.ours.keys[0].mki is None


def test_unusable_reasons_name_the_problem() -> None:
    def reason(value: str) -> str:
        found = unusable_reason(parse_crypto(value))
        assert found is not None
        return found

    assert "not supported" in reason(f"1 NULL_HMAC_SHA1_80 inline:{KEY30_B64}")
    assert "MKI" in reason(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|1:1")
    assert "30-octet" in reason("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA")
    assert "lifetime" in reason(f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|2^10")
    assert "UNENCRYPTED_SRTP" in reason(
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64} UNENCRYPTED_SRTP"
    )
    assert unusable_reason(parse_crypto(f"1 aes_cm_128_hmac_sha1_80 inline:{KEY30_B64}")) is None


def test_savp_offer_with_nothing_usable_is_refused_but_plain_rtp_is_not() -> None:
    with pytest.raises(NoUsableCrypto, match="MKI"):
        answer_offer(media("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|1:1"))
    with pytest.raises(NoUsableCrypto, match="no crypto attribute"):
        answer_offer(media("RTP/SAVP"))
    assert answer_offer(media("RTP/AVP")) is None
    assert answer_offer(media("RTP/AVP", "1 F8_128_HMAC_SHA1_80 inline:AAAA")) is None
    # "Best effort" SRTP: keys in an RTP/AVP offer are taken, and the answer
    # keeps the offer's protocol.
    best_effort = answer_offer(media("RTP/AVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}"))
    assert best_effort is not None
    assert best_effort.proto == "RTP/AVP"


def test_a_re_offer_keeps_our_key_unless_the_suite_changes() -> None:
    keys = counting_keys()
    first = answer_offer(
        media("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}"), new_key=keys
    )
    assert first is not None
    # The phone changes its key (and tag): ours stays.
    again = answer_offer(
        media("RTP/SAVP", f"3 AES_CM_128_HMAC_SHA1_80 inline:{base64.b64encode(OTHER30).decode()}"),
        first,
        new_key=keys,
    )
    assert again is not None
    assert (again.ours.tag, again.send_key, again.receive_key) == (3, first.send_key, OTHER30)
    other_suite = answer_offer(
        media("RTP/SAVP", f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY30_B64}"), first, new_key=keys
    )
    assert other_suite is not None
    assert other_suite.send_key != first.send_key


def test_offer_lists_our_suites_with_a_key_each_and_an_answer_picks_one() -> None:
    offer = make_offer(new_key=counting_keys())
    assert offer.proto == "RTP/SAVP"
    assert [(a.tag, a.suite) for a in offer.lines] == [
        (1, "AES_CM_128_HMAC_SHA1_80"),
        (2, "AES_CM_128_HMAC_SHA1_32"),
    ]
    assert offer.lines[0].keys[0].key_salt != offer.lines[1].keys[0].key_salt
    answered = accept_answer(
        offer, media("RTP/SAVP", f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY30_B64}")
    )
    assert answered.ours == offer.lines[1]
    assert answered.receive_key == KEY30
    # Offering again keeps what was agreed.
    assert make_offer(answered) == SdesOffer("RTP/SAVP", (offer.lines[1],))
    with pytest.raises(ValueError, match="suite"):
        make_offer(suites=())


@pytest.mark.parametrize(
    "crypto",
    [
        (),  # no key at all
        (f"3 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}",),  # a tag we did not offer
        (f"1 AES_CM_128_HMAC_SHA1_32 inline:{KEY30_B64}",),  # tag 1 was the 80-bit suite
        (f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}|1:1",),  # an MKI
        (
            f"1 AES_CM_128_HMAC_SHA1_80 inline:{KEY30_B64}",
            f"2 AES_CM_128_HMAC_SHA1_32 inline:{KEY30_B64}",
        ),
    ],
)
def test_answers_that_do_not_fit_the_offer_are_refused(crypto: tuple[str, ...]) -> None:
    with pytest.raises(SdpError):
        accept_answer(make_offer(), media("RTP/SAVP", *crypto))


def test_protocol_twins() -> None:
    assert proto_for("RTP/AVP", secure=True) == "RTP/SAVP"
    assert proto_for("rtp/savp", secure=False) == "RTP/AVP"
    assert proto_for("RTP/SAVPF", secure=False) == "RTP/AVPF"
    assert proto_for("RTP/AVPF", secure=True) == "RTP/SAVPF"
    assert proto_for("udptl", secure=True) == "udptl"


def test_the_negotiated_suites_are_the_ones_libsrtp_runs() -> None:
    for name, length in ACCEPTED_SUITES.items():
        suite = Suite.named(name)
        assert suite is not None
        assert suite.key_length == length
    assert Suite.named("aes_cm_128_hmac_sha1_80") is Suite.AES_CM_128_HMAC_SHA1_80
    assert Suite.named("NULL_HMAC_SHA1_80") is None


# --- protect and unprotect (media.srtp) -------------------------------------------------


def rtp(seq: int, *, ssrc: int = 0x1234, payload: bytes = b"\xd5" * 160, pt: int = 0) -> bytes:
    return RtpPacket(
        payload_type=pt, sequence=seq & 0xFFFF, timestamp=160 * seq, ssrc=ssrc, payload=payload
    ).to_bytes()


@pytest.mark.parametrize("suite", list(Suite))
def test_protect_unprotect_round_trip(suite: Suite) -> None:
    key = new_master_key(suite)
    assert len(key) == suite.key_length
    sender, receiver = SrtpSender(suite, key), SrtpReceiver(suite, key)
    for seq in range(5):
        packet = rtp(seq)
        protected = sender.protect(packet)
        assert protected != packet
        assert protected[:12] == packet[:12]  # the header stays in the clear
        assert len(protected) > len(packet)  # the authentication tag
        assert receiver.unprotect(protected) == packet


def test_unprotect_refuses_tampering_replays_and_other_keys() -> None:
    suite = Suite.AES_CM_128_HMAC_SHA1_80
    key = new_master_key(suite)
    sender, receiver = SrtpSender(suite, key), SrtpReceiver(suite, key)
    protected = sender.protect(rtp(1))
    tampered = bytearray(protected)
    tampered[20] ^= 1
    with pytest.raises(SrtpError):
        receiver.unprotect(bytes(tampered))
    assert receiver.unprotect(protected) == rtp(1)
    with pytest.raises(SrtpError):
        receiver.unprotect(protected)  # replayed
    with pytest.raises(SrtpError):
        SrtpReceiver(suite, new_master_key(suite)).unprotect(sender.protect(rtp(2)))
    with pytest.raises(SrtpError):
        receiver.unprotect(b"\x80\x00")  # not even a header


def test_a_sender_never_protects_the_same_packet_index_twice() -> None:
    # The same index under the same key would repeat the keystream (RFC 3711
    # section 9.1): the relay drops such a packet instead.
    sender = SrtpSender(Suite.AES_CM_128_HMAC_SHA1_80, KEY30)
    sender.protect(rtp(10))
    with pytest.raises(SrtpError):
        sender.protect(rtp(10))
    sender.protect(rtp(10, ssrc=99))  # another stream is fine


def test_a_receiver_accepts_the_old_key_until_the_new_one_works() -> None:
    suite = Suite.AES_CM_128_HMAC_SHA1_80
    old_sender = SrtpSender(suite, KEY30)
    new_sender = SrtpSender(suite, OTHER30)
    receiver = SrtpReceiver(suite, OTHER30, previous=SrtpReceiver(suite, KEY30))
    assert receiver.unprotect(old_sender.protect(rtp(1))) == rtp(1)
    assert receiver.unprotect(new_sender.protect(rtp(2))) == rtp(2)
    with pytest.raises(SrtpError):
        receiver.unprotect(old_sender.protect(rtp(3)))  # the old key is gone now


def test_keys_of_the_wrong_length_are_refused() -> None:
    with pytest.raises(ValueError, match="30-octet send key"):
        SrtpKeys(Suite.AES_CM_128_HMAC_SHA1_80, bytes(16), KEY30)
    with pytest.raises(ValueError, match="28-octet receive key"):
        SrtpKeys(Suite.AEAD_AES_128_GCM, bytes(28), KEY30)
    with pytest.raises(ValueError, match="30-octet key"):
        SrtpSender(Suite.AES_CM_128_HMAC_SHA1_32, bytes(10))
    with pytest.raises(ValueError, match="30-octet key"):
        SrtpReceiver(Suite.AES_CM_128_HMAC_SHA1_32, bytes(10))


# --- a media session terminating SRTP on side "a" ---------------------------------------

SUITE = Suite.AES_CM_128_HMAC_SHA1_80


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), 10.0))


@contextlib.asynccontextmanager
async def secure_call(block: int) -> AsyncIterator[tuple[MediaSession, Phone, Phone, SrtpKeys]]:
    """Side "a" is an SRTP leg, side "b" plain; ports 46000 and up (own block)."""
    async with call(block, base=46000) as (_engine, session, phone_a, phone_b):
        keys = SrtpKeys(SUITE, send=new_master_key(SUITE), receive=new_master_key(SUITE))
        session.set_srtp("a", keys)
        yield session, phone_a, phone_b, keys


async def until(condition: Callable[[], bool]) -> None:
    async def wait() -> None:
        while not condition():  # noqa: ASYNC110 - polling a plain counter
            await asyncio.sleep(0.005)

    await asyncio.wait_for(wait(), 2.0)


def test_an_srtp_leg_and_a_plain_leg_hear_each_other() -> None:
    async def main() -> None:
        async with secure_call(0) as (session, phone_a, phone_b, keys):
            assert session.is_secure("a")
            assert not session.is_secure("b")
            # Phone A encrypts with its key, which is our receive key.
            a_sender = SrtpSender(SUITE, keys.receive)
            sent = [rtp(n, ssrc=1, payload=bytes([n]) * 160) for n in range(20)]
            for packet in sent:
                phone_a.send(a_sender.protect(packet), session.local_port("a"))
            assert await phone_b.receive(20) == sent  # decrypted for the plain leg
            # What B sends reaches A encrypted with our key.
            a_receiver = SrtpReceiver(SUITE, keys.send)
            back = [rtp(n, ssrc=2, pt=8) for n in range(20)]
            for packet in back:
                phone_b.send(packet, session.local_port("b"))
            received = await phone_a.receive(20)
            assert all(packet not in received for packet in back)
            assert [a_receiver.unprotect(p) for p in received] == back
            stats = session.stats("a")
            assert (stats.packets_in, stats.packets_out, stats.dropped_unauthenticated) == (
                20,
                20,
                0,
            )

    run(main)


def test_packets_that_fail_authentication_are_dropped_and_do_not_move_the_latch() -> None:
    async def main() -> None:
        async with secure_call(1) as (session, phone_a, phone_b, keys):
            a_sender = SrtpSender(SUITE, keys.receive)
            phone_a.send(a_sender.protect(rtp(1)), session.local_port("a"))
            assert await phone_b.receive(1) == [rtp(1)]
            # An intruder on the phone's IP address, with plain RTP or a wrong key.
            intruder = await phone()
            intruder.send(rtp(2), session.local_port("a"))
            wrong = SrtpSender(SUITE, new_master_key(SUITE))
            intruder.send(wrong.protect(rtp(3)), session.local_port("a"))
            await until(lambda: session.stats("a").dropped_unauthenticated == 2)
            assert session.remote("a") == (HOST, phone_a.port)  # still the real phone
            assert phone_b.queue.empty()
            # A replay of a genuine packet is refused too.
            genuine = a_sender.protect(rtp(4))
            intruder.send(genuine, session.local_port("a"))
            intruder.send(genuine, session.local_port("a"))
            assert await phone_b.receive(1) == [rtp(4)]
            await until(lambda: session.stats("a").dropped_unauthenticated == 3)
            # The genuine packet, which authenticated, moved the latch.
            assert session.remote("a") == (HOST, intruder.port)
            assert intruder.transport is not None
            intruder.transport.close()

    run(main)


def test_tones_and_recording_work_on_an_srtp_leg(tmp_path: Path) -> None:
    async def main() -> None:
        async with secure_call(2) as (session, phone_a, _phone_b, keys):
            # A tone played to the SRTP side arrives encrypted and decrypts to
            # the tone's mu-law packets.
            session.play_tone("a", ToneSet.named().ringback, 0)
            received = await phone_a.receive(5)
            session.stop_play("a")
            a_receiver = SrtpReceiver(SUITE, keys.send)
            packets = [parse_rtp(a_receiver.unprotect(p)) for p in received]
            assert all(p.payload_type == 0 and len(p.payload) == 160 for p in packets)
            # What the SRTP leg sends is recorded decrypted.
            writer = WavWriter(tmp_path / "heard.wav")
            session.record("a", writer)
            a_sender = SrtpSender(SUITE, keys.receive)
            tone = ToneSource(ToneSet.named().dial)
            for n in range(25):
                frame = tone.next_frame()
                assert frame is not None
                packet = rtp(n, ssrc=7, payload=ulaw_encode(frame))
                phone_a.send(a_sender.protect(packet), session.local_port("a"))
            await until(lambda: session.stats("a").packets_in == 25)
            session.stop_record("a")
            writer.commit()

    run(main)
    with wave.open(str(tmp_path / "heard.wav"), "rb") as wav:
        audio = wav.readframes(wav.getnframes())
    assert dominant_frequency(audio, (350, 425, 440, 1000)) == 425


def test_changing_and_removing_keys() -> None:
    async def main() -> None:
        async with secure_call(3) as (session, phone_a, phone_b, keys):
            old_sender = SrtpSender(SUITE, keys.receive)
            phone_a.send(old_sender.protect(rtp(1)), session.local_port("a"))
            assert await phone_b.receive(1) == [rtp(1)]
            # The phone moves to a new key (a re-INVITE): packets still under the
            # old one are accepted until the new one is used.
            new_key = new_master_key(SUITE)
            session.set_srtp("a", SrtpKeys(SUITE, send=keys.send, receive=new_key))
            phone_a.send(old_sender.protect(rtp(2)), session.local_port("a"))
            assert await phone_b.receive(1) == [rtp(2)]
            phone_a.send(SrtpSender(SUITE, new_key).protect(rtp(3)), session.local_port("a"))
            assert await phone_b.receive(1) == [rtp(3)]
            # Plain RTP from then on.
            session.set_srtp("a", None)
            assert not session.is_secure("a")
            phone_a.send(rtp(4), session.local_port("a"))
            assert await phone_b.receive(1) == [rtp(4)]

    run(main)
