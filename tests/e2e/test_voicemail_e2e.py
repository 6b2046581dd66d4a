"""Voicemail and message waiting (DESIGN.md T12) with real peers.

Bob (202) has a mailbox with the PIN 1234 and a no-answer time of 3 s; alice
(201) has a mailbox without a PIN and may telecommute from her home line 0611
(trunk "home", prefix 8).  Callers are baresip phones that send a tone of ours
(700 Hz) and record what they hear, or sipp replaying its own pcaps: speech
(g711a.pcap) and RFC 4733 key presses (dtmf_2833_*.pcap).  What a message holds
is checked on the audio the API serves (its frequency, or its loudness over
time against the speech that was sent), never by its size alone.

Leaving a message takes a caller about 11 s of greeting ("the person at
extension 2 0 2 is unavailable ... after the tone"); except where the greeting
is the point, callers press # to skip it, as the menu allows.  A message is
being recorded once its hidden temporary file exists in the mailbox folder
(the store writes `.NAME.*.part` and renames it when the message is committed).

Each test has a server of its own, copied from a module seed that already
holds the mailboxes, PINs, portal passwords and trunks.
"""

from __future__ import annotations

import math
import os
import struct
import time
import wave
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from teleoffice.bench.processes import LOOPBACK, free_port, wait_until
from tests.e2e.calls_kit import CallLab, Phone, SippProcess, analyse_wav, received
from tests.e2e.harness import Server, SipMessage, SippResult, write_tone
from tests.e2e.portal_kit import (
    WINDOW,
    EventStream,
    Portal,
    Portals,
    Site,
    describe,
    heard_for,
    home_phone,
    make_site,
    read_recording,
    sipp_received_at,
    spans,
    timeline,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE_PW = "alice-portal-pw"
BOB_PW = "bob-portal-pw"
BOB_PIN = "1234"
VOICEMAIL = "*17"
HOME_NUMBER = "0611"  # alice's home line, as the home trunk sends it
HOME = "8" + HOME_NUMBER  # as dialled from the desk
CALLER_TONE = 700.0  # what alice's phone says into the mailbox
BEEP = 1000.0  # "speak after the tone"
RINGBACK = 425.0
SIPP_PCAPS = Path("/usr/share/sip-tester")
SPEECH_PCAP = SIPP_PCAPS / "g711a.pcap"
GREETING_SECONDS = 11.3  # vm-theperson, 2 0 2, vm-isunavail, vm-intro

SEED = (
    ("user", "set", "alice", "--password", ALICE_PW, "--telecommuter", "--voicemail"),
    (
        "user", "set", "bob", "--password", BOB_PW, "--voicemail",
        "--voicemail-pin", BOB_PIN, "--no-answer-time", "3",
    ),
)  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, seeded_data: Path) -> Site:
    return make_site(tmp_path_factory.mktemp("vm-seed"), seeded_data, SEED)


# --- the mailbox as the API and the disk show it ------------------------------------------


def mailbox_dir(server: Server, user: str) -> Path:
    return server.data_dir / "voicemail" / user


def partial_files(server: Server, user: str) -> list[Path]:
    """Recordings in progress (or left by a crash) in the user's mailbox folder."""
    folder = mailbox_dir(server, user)
    return sorted(folder.glob(".*.part")) if folder.is_dir() else []


def wait_recording(server: Server, user: str, timeout: float) -> None:
    """Until a message for `user` is being recorded (the beep has been played)."""
    if not wait_until(lambda: bool(partial_files(server, user)), timeout, interval=0.05):
        folder = mailbox_dir(server, user)
        listing = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else "no folder"
        raise AssertionError(f"no recording for {user} began within {timeout} s: {listing}")


def messages(portal: Portal) -> list[dict[str, Any]]:
    return list(portal.call("GET", "/api/me/voicemail")["messages"])


def wait_messages(portal: Portal, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
    """The mailbox's messages once there are `count` of them."""
    found: list[dict[str, Any]] = []

    def enough() -> bool:
        nonlocal found
        found = messages(portal)
        return len(found) >= count

    assert wait_until(enough, timeout, interval=0.2), f"mailbox of {portal.username}: {found}"
    return found


def save_audio(portal: Portal, message_id: int, path: Path) -> Path:
    """Download a message (the whole file) and check it is a 16-bit mono 8 kHz WAV."""
    reply = portal.request("GET", f"/api/me/voicemail/{message_id}/audio")
    assert reply.status_code == 200, f"{reply.status_code} {reply.text[:200]}"
    assert reply.headers["content-type"] == "audio/wav", reply.headers
    path.write_bytes(reply.content)
    with wave.open(str(path), "rb") as wav:
        shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        frames = wav.getnframes()
    assert shape == (1, 2, 8000), f"{path.name}: channels, width, rate = {shape}"
    assert frames * 2 + 44 <= len(reply.content), f"{path.name}: header says {frames} frames"
    return path


def wav_pcm(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        return wav.readframes(wav.getnframes())


def assert_holds_tone(path: Path, freq: float, *, at_least: float) -> None:
    """The recording is `freq` (loud, and nearly all its power) for `at_least` seconds."""
    report = analyse_wav(path, (freq, RINGBACK, BEEP), skip=0.0)
    assert report.seconds >= at_least, str(report)
    assert report.rms > 2000, str(report)
    assert report.dominant == freq, str(report)
    assert report.share(freq) > 0.8, str(report)


# --- callers -----------------------------------------------------------------------------


def tone_source(tmp_path: Path, freq: float, seconds: float = 40.0) -> Path:
    return write_tone(tmp_path / f"{freq:g}Hz.wav", freq, seconds, amplitude=8000)


def caller_phone(lab: CallLab, server: Server, tmp_path: Path, *, record: bool = False) -> Phone:
    """Alice's desk phone (201), sending the caller tone."""
    phone = lab.phone(audio_source=tone_source(tmp_path, CALLER_TONE), record=record)
    phone.register("201", "secret201", server.sip_port)
    return phone


def leave_message(
    phone: Phone,
    server: Server,
    *,
    to: str = "202",
    mailbox: str = "bob",
    talk: float = 2.0,
    skip_greeting: bool = True,
    answered_within: float = 10.0,
) -> float:
    """Call `to`, reach `mailbox`, say `talk` seconds of the phone's audio, hang up;
    the seconds the call took to be answered."""
    mark = phone.mark()
    dialled_at = time.monotonic()
    phone.dial(to, server.sip_port)
    established = phone.wait_for(("CALL_ESTABLISHED", "CALL_CLOSED"), answered_within, after=mark)
    assert established is not None, phone.call_events()
    assert established["type"] == "CALL_ESTABLISHED", established
    answered_after = time.monotonic() - dialled_at
    if skip_greeting:
        time.sleep(0.3)
        reply = phone.command("sndcode", "#")  # RFC 4733, as baresip sends keys
        assert reply.get("ok"), reply
    wait_recording(server, mailbox, 5.0 if skip_greeting else GREETING_SECONDS + 5.0)
    time.sleep(talk)
    phone.command("hangup")
    assert phone.wait_for("CALL_CLOSED", 5, after=mark) is not None, phone.call_events()
    return answered_after


def with_pcaps(run: SippProcess) -> SippProcess:
    """sipp finds `play_pcap_audio="pcap/..."` files in its working directory."""
    os.symlink(SIPP_PCAPS, run.rundir / "pcap")
    return run


# --- what came over the wire -------------------------------------------------------------


def voicemail_route(stream: EventStream, after: int, timeout: float = 5.0) -> dict[str, Any]:
    """The call.ended of the call that reached the mailbox, as its owner's portal saw it."""
    ended = stream.wait_for(
        "call.ended",
        timeout,
        after=after,
        where=lambda m: "voicemail" in str(m["call"].get("route")),
    )
    assert ended is not None, [(m.get("type"), m.get("call")) for m in stream.messages()[after:]]
    return dict(ended["call"])


def summary_of(notify: SipMessage) -> dict[str, str]:
    """The fields of an application/simple-message-summary body (RFC 3842)."""
    fields: dict[str, str] = {}
    for line in notify.body.decode(errors="replace").splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields[name.strip().lower()] = value.strip()
    return fields


def alaw_to_linear(octet: int) -> int:
    """One G.711 A-law octet as a 16-bit sample (ITU-T G.711, independent of teleoffice)."""
    octet ^= 0x55
    exponent = (octet >> 4) & 0x07
    mantissa = octet & 0x0F
    magnitude = (
        (mantissa << 4) + 8 if exponent == 0 else ((mantissa << 4) + 0x108) << (exponent - 1)
    )
    return magnitude if octet & 0x80 else -magnitude


def pcap_speech(path: Path) -> list[int]:
    """The samples of a pcap of A-law RTP over UDP/IPv4 on Ethernet (sipp's g711a.pcap)."""
    data = path.read_bytes()
    samples: list[int] = []
    offset = 24  # the global header
    while offset + 16 <= len(data):
        captured = struct.unpack_from("<I", data, offset + 8)[0]
        frame = data[offset + 16 : offset + 16 + captured]
        offset += 16 + captured
        ip = frame[14:]
        rtp = ip[(ip[0] & 0x0F) * 4 + 8 :]
        if len(rtp) > 12 and rtp[1] & 0x7F == 8:
            samples += [alaw_to_linear(octet) for octet in rtp[12:]]
    return samples


def envelope(samples: Sequence[int], step: int = 800) -> list[float]:
    """Loudness over time: the RMS of each 100 ms."""
    return [
        math.sqrt(sum(v * v for v in samples[i : i + step]) / step)
        for i in range(0, len(samples) - step + 1, step)
    ]


def best_correlation(sent: Sequence[float], got: Sequence[float]) -> float:
    """The highest Pearson correlation of `sent` against any stretch of `got`."""
    best = -1.0
    n = len(sent)
    for lag in range(0, max(1, len(got) - n + 1)):
        window = got[lag : lag + n]
        if len(window) < n:
            break
        ma, mb = sum(sent) / n, sum(window) / n
        cov = sum((a - ma) * (b - mb) for a, b in zip(sent, window, strict=True))
        va = math.sqrt(sum((a - ma) ** 2 for a in sent))
        vb = math.sqrt(sum((b - mb) ** 2 for b in window))
        if va and vb:
            best = max(best, cov / (va * vb))
    return best


# --- T12: calls nobody takes reach the mailbox ----------------------------------------------


def test_unanswered_call_leaves_the_callers_audio_in_the_mailbox(
    site_lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    server = site_lab.server()
    desk = site_lab.phone()
    desk.register("202", "secret202", server.sip_port, answermode="manual")
    alice = caller_phone(site_lab, server, tmp_path, record=True)
    bob = portals.login(server, "bob", BOB_PW)
    stream = bob.events()
    mark = stream.mark()

    started = time.monotonic()
    answered_after = leave_message(alice, server, skip_greeting=False, talk=2.5)
    # Bob's phone rang for his no-answer time (3 s), then stopped, and the
    # mailbox answered.
    assert 2.5 <= answered_after <= 5.0, f"answered after {answered_after:.1f} s"
    assert desk.call_events() == ["CALL_INCOMING", "CALL_CLOSED"], desk.call_events()
    [established] = alice.events("CALL_ESTABLISHED")
    assert "sip:202@" in str(established.get("peeruri")), established

    # The portal is told at once, with who called.
    new = stream.wait_for("voicemail.new", 10, after=mark)
    assert new is not None, stream.types(mark)
    assert (new["new"], new["old"]) == (1, 0), new
    assert new["message"]["from"] == {"number": "201", "name": "Alice"}, new
    assert new["message"]["heard"] is False, new
    changed = stream.wait_for("voicemail.changed", 5, after=mark)
    assert changed is not None, stream.types(mark)
    assert (changed["new"], changed["old"]) == (1, 0), changed
    call = voicemail_route(stream, mark)
    assert (call["from"]["number"], call["to"]["number"]) == ("201", "202"), call
    assert call["outcome"] == "answered", call  # answered by the mailbox

    # Listed, new, from 201, about as long as alice spoke.
    [message] = messages(bob)
    assert message["id"] == new["message"]["id"], message
    assert message["from"] == {"number": "201", "name": "Alice"}, message
    assert message["heard"] is False, message
    assert 1.5 <= message["duration"] <= 4.5, message
    assert time.monotonic() - started < 30
    mine = bob.call("GET", "/api/me/voicemail")
    assert (mine["new"], mine["old"], mine["enabled"], mine["has_pin"]) == (1, 0, True, True), mine

    # The file the API serves holds what alice's phone sent: 700 Hz.
    path = save_audio(bob, message["id"], tmp_path / "message.wav")
    assert_holds_tone(path, CALLER_TONE, at_least=1.5)
    # Nothing of the greeting or the beep went into it.
    assert analyse_wav(path, (BEEP,), skip=0.0).share(BEEP) < 0.01

    # Alice heard the system greeting (speech: loud, no tone of ours), then the beep.
    heard = timeline(read_recording(alice), (CALLER_TONE, BEEP, RINGBACK))
    beeps = spans(heard, BEEP, at_least=0.15)
    assert len(beeps) == 1, describe(heard)
    assert 0.15 <= beeps[0].seconds <= 0.4, describe(heard)
    before = heard[: int(beeps[0].start / WINDOW)]
    assert sum(s is not None for s in before) * WINDOW >= 6.0, describe(heard)
    assert heard_for(heard, CALLER_TONE) < 0.2, describe(heard)
    site_lab.assert_idle(server)


def test_busy_phone_sends_the_caller_to_voicemail(
    site_lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    """Bob's phone refuses the call as busy (486); the caller speaks into his
    mailbox instead: sipp replaying its recording of speech."""
    server = site_lab.server()
    phone_port = free_port()
    site_lab.register_sipp(server, phone_port, "202", "secret202")
    busy = site_lab.sipp("call_uas_busy", server, port=phone_port, service="202").start()
    bob = portals.login(server, "bob", BOB_PW)
    stream = bob.events()
    mark = stream.mark()

    caller = with_pcaps(
        site_lab.sipp(
            "vm_deposit_speech",
            server,
            service="201",
            auth=("201", "secret201"),
            keys={"callee": "202"},
        )
    )
    outcome = caller.start().wait(40)
    assert outcome.returncode == 0, outcome.describe()
    refused = busy.wait(10)
    assert refused.returncode == 0, refused.describe()
    assert len(received(refused, "INVITE ")) >= 1, refused.describe()

    [message] = wait_messages(bob, 1)
    assert message["from"]["number"] == "201", message
    call = voicemail_route(stream, mark)
    assert call["to"]["number"] == "202", call
    # The message is the speech sipp sent: 7 s whose loudness rises and falls
    # as the recording's does.
    path = save_audio(bob, message["id"], tmp_path / "message.wav")
    pcm = wav_pcm(path)
    got = envelope(struct.unpack(f"<{len(pcm) // 2}h", pcm))
    sent = envelope(pcap_speech(SPEECH_PCAP))
    assert len(got) >= len(sent) - 10, (
        f"{len(got) / 10:.1f} s recorded, {len(sent) / 10:.1f} s sent"
    )
    similarity = best_correlation(sent[5:-5], got)
    assert similarity > 0.9, f"loudness over time matches the speech sent at {similarity:.2f}"
    site_lab.assert_idle(server)


def test_do_not_disturb_sends_calls_to_voicemail(
    site_lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    server = site_lab.server(setup=[("user", "set", "bob", "--dnd")])
    desk = site_lab.phone()
    desk.register("202", "secret202", server.sip_port, answermode="manual")
    alice = caller_phone(site_lab, server, tmp_path)
    bob = portals.login(server, "bob", BOB_PW)
    stream = bob.events()
    mark = stream.mark()

    leave_message(alice, server, answered_within=3.0)
    [message] = wait_messages(bob, 1)
    assert message["from"]["number"] == "201", message
    assert "do not disturb" in str(voicemail_route(stream, mark)["route"])
    # Do not disturb: bob's phone never rang.
    assert desk.call_events() == [], desk.call_events()
    assert_holds_tone(save_audio(bob, message["id"], tmp_path / "m.wav"), CALLER_TONE, at_least=1.5)
    site_lab.assert_idle(server)


def test_logged_out_user_still_gets_messages(
    site_lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    server = site_lab.server()
    desk = site_lab.phone()
    desk.register("202", "secret202", server.sip_port, answermode="manual")
    alice = caller_phone(site_lab, server, tmp_path)
    bob = portals.login(server, "bob", BOB_PW)
    stream = bob.events()
    where = bob.call("DELETE", "/api/me/location")
    assert where["kind"] == "logged-out", where
    mark = stream.mark()

    leave_message(alice, server, answered_within=3.0)
    [message] = wait_messages(bob, 1)
    assert message["from"]["number"] == "201", message
    assert "logged out" in str(voicemail_route(stream, mark)["route"])
    # His phone is no longer his: it did not ring.
    assert desk.call_events() == [], desk.call_events()
    assert_holds_tone(save_audio(bob, message["id"], tmp_path / "m.wav"), CALLER_TONE, at_least=1.5)
    site_lab.assert_idle(server)


# --- RFC 3842: the message-waiting lamp ---------------------------------------------------


def test_message_waiting_notify_follows_the_mailbox(
    site_lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    server = site_lab.server()
    alice = caller_phone(site_lab, server, tmp_path)
    bob = portals.login(server, "bob", BOB_PW)
    watcher = site_lab.sipp(
        "vm_mwi_watch", server, service="202", auth=("202", "secret202"), keys={"expires": "600"}
    ).start()
    # The first NOTIFY (the mailbox as it is) before anything changes.
    assert wait_until(
        lambda: (
            "Voice-Message" in watcher.trace_file.read_text(errors="replace")
            if watcher.trace_file.exists()
            else False
        ),
        10,
        interval=0.1,
    ), watcher.log_tail()

    # Bob has no phone online: the call goes straight to his mailbox.
    leave_message(alice, server, answered_within=3.0)
    [message] = wait_messages(bob, 1)
    # The lamp is on; then bob deletes the message in the portal and it goes off.
    assert wait_until(
        lambda: "Voice-Message: 1/0" in watcher.trace_file.read_text(errors="replace"),
        10,
        interval=0.1,
    ), watcher.log_tail()
    bob.call("DELETE", f"/api/me/voicemail/{message['id']}", expect=204)
    result = watcher.wait(20)
    assert result.returncode == 0, result.describe()

    notifies = [
        t.message
        for t in result.trace
        if t.direction == "received" and t.message.start_line.startswith("NOTIFY ")
    ]
    bodies = [summary_of(notify) for notify in notifies]
    assert len(bodies) == 4, result.describe()
    initial, left, deleted, final = bodies
    account = f"sip:202@{LOOPBACK}"
    assert initial == {
        "messages-waiting": "no",
        "message-account": account,
        "voice-message": "0/0",
    }, result.describe()
    assert left == {
        "messages-waiting": "yes",
        "message-account": account,
        "voice-message": "1/0",
    }, result.describe()
    assert deleted["messages-waiting"] == "no", result.describe()
    assert deleted["voice-message"] == "0/0", result.describe()
    assert final["voice-message"] == "0/0", result.describe()
    for notify in notifies:
        assert notify.header("event") == "message-summary", notify.text()
        assert notify.header("content-type") == "application/simple-message-summary", notify.text()
    site_lab.assert_idle(server)


# --- by phone: PIN and keys, RFC 4733 and SIP INFO ------------------------------------------


def once_each(result: SippResult, direction: str, start: str) -> list[SipMessage]:
    """The messages sipp sent or received whose start line begins with `start`,
    retransmissions left out (one per CSeq)."""
    seen: dict[str, SipMessage] = {}
    for traced in result.trace:
        message = traced.message
        if traced.direction == direction and message.start_line.startswith(start):
            seen.setdefault(message.header("cseq") or "", message)
    return list(seen.values())


def info_keys(result: SippResult) -> list[str]:
    """The keys of the SIP INFOs sipp sent (application/dtmf-relay), in order."""
    return [
        message.body.decode().split("Signal=", 1)[1].split()[0]
        for message in once_each(result, "sent", "INFO ")
    ]


def info_statuses(result: SippResult) -> list[int]:
    """teleoffice's answers to them, in order."""
    answers = [
        message
        for message in once_each(result, "received", "SIP/2.0 ")
        if (message.header("cseq") or "").endswith("INFO")
    ]
    return [message.status for message in answers]


def test_retrieval_by_phone_needs_the_pin_and_deletes_by_key(
    site_lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    server = site_lab.server()
    alice = caller_phone(site_lab, server, tmp_path)
    bob = portals.login(server, "bob", BOB_PW)
    stream = bob.events()
    leave_message(alice, server, answered_within=3.0)
    [message] = wait_messages(bob, 1)
    assert stream.wait_for("voicemail.changed", 5) is not None, stream.types()

    # Three wrong PINs (SIP INFO): "Login incorrect. Goodbye.", and teleoffice hangs up.
    mark = stream.mark()
    wrong = site_lab.sipp(
        "vm_wrong_pin", server, service="202", auth=("202", "secret202"), keys={"callee": VOICEMAIL}
    ).start()
    outcome = wrong.wait(40)
    assert outcome.returncode == 0, outcome.describe()
    assert info_keys(outcome) == list("4321#" * 3), outcome.describe()
    assert info_statuses(outcome) == [200] * 15, outcome.describe()
    # The BYE followed the third PIN, not a menu left waiting (that takes 30 s).
    [last_ok] = sipp_received_at(wrong.trace_file, "SIP/2.0 200")[-1:]
    [bye_at] = sipp_received_at(wrong.trace_file, "BYE ")
    assert 0 < bye_at - last_ok < 6, f"BYE {bye_at - last_ok:.1f} s after the last key"
    # Nothing changed: the message is still there, still new.
    assert messages(bob) == [message], messages(bob)
    assert stream.of_type("voicemail.changed", "voicemail.new", after=mark) == []

    # The right PIN as RFC 4733 events (sipp's pcaps), then 1 (play) and 7
    # (delete) and # (goodbye) as SIP INFO.
    mark = stream.mark()
    session = with_pcaps(
        site_lab.sipp(
            "vm_retrieve_delete",
            server,
            service="202",
            auth=("202", "secret202"),
            keys={"callee": VOICEMAIL},
        )
    )
    outcome = session.start().wait(40)
    assert outcome.returncode == 0, outcome.describe()
    # teleoffice answered with RFC 4733 events in its SDP.
    answer = next(r for r in outcome.responses if r.status == 200)
    assert "telephone-event/8000" in answer.body.decode(), answer.text()
    assert info_keys(outcome) == ["1", "7", "#"], outcome.describe()
    assert info_statuses(outcome) == [200] * 3, outcome.describe()
    assert len(received(outcome, "BYE ")) == 1, outcome.describe()

    # Playing it marked it heard, then 7 deleted it: gone from the API and the disk.
    assert messages(bob) == []
    counts = [(m["new"], m["old"]) for m in stream.of_type("voicemail.changed", after=mark)]
    assert counts == [(0, 1), (0, 0)], counts
    reply = bob.request("GET", f"/api/me/voicemail/{message['id']}/audio")
    assert reply.status_code == 404, reply.text
    assert [p.name for p in mailbox_dir(server, "bob").iterdir()] == []
    site_lab.assert_idle(server)


def test_owner_hears_the_message_on_the_phone(
    site_lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    """Bob's baresip dials the voicemail number and types the PIN and the keys
    (RFC 4733, as the phone sends them); it hears alice's message and saves it."""
    server = site_lab.server()
    alice = caller_phone(site_lab, server, tmp_path)
    bob = portals.login(server, "bob", BOB_PW)
    leave_message(alice, server, answered_within=3.0, talk=2.0)
    [message] = wait_messages(bob, 1)
    desk = site_lab.phone(record=True)
    desk.register("202", "secret202", server.sip_port)

    desk.dial(VOICEMAIL, server.sip_port)
    assert desk.wait_for("CALL_ESTABLISHED", 5) is not None, desk.call_events()
    time.sleep(0.5)  # "password"
    assert desk.command("sndcode", BOB_PIN + "#").get("ok")
    time.sleep(1.5)  # "you have 1 new message ..."
    assert desk.command("sndcode", "1").get("ok")
    # "First message from phone number 2 0 1" (about 6 s), then the message (2 s).
    time.sleep(9.5)
    assert desk.command("sndcode", "9").get("ok")  # save: "message saved, no more messages"
    time.sleep(1.0)
    assert desk.command("sndcode", "#").get("ok")
    assert desk.wait_for("CALL_CLOSED", 5) is not None, desk.call_events()

    heard = timeline(read_recording(desk), (CALLER_TONE, BEEP, RINGBACK))
    played = spans(heard, CALLER_TONE, at_least=1.0)
    assert len(played) == 1, describe(heard)
    assert 1.5 <= played[0].seconds <= 2.5, describe(heard)
    # Prompts before it (the PIN prompt, the count, the message's header).
    before = heard[: int(played[0].start / WINDOW)]
    assert sum(s is not None for s in before) * WINDOW >= 3.0, describe(heard)
    [saved] = messages(bob)
    assert (saved["id"], saved["heard"]) == (message["id"], True), saved
    view = bob.call("GET", "/api/me/voicemail")
    assert (view["new"], view["old"]) == (0, 1), view
    site_lab.assert_idle(server)


# --- the API: nobody reads another user's messages; downloads by range ------------------------


def test_nobody_reads_another_users_messages_and_downloads_take_ranges(
    site_lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    server = site_lab.server()
    alice_phone = caller_phone(site_lab, server, tmp_path)
    bob = portals.login(server, "bob", BOB_PW)
    alice = portals.login(server, "alice", ALICE_PW)
    leave_message(alice_phone, server, answered_within=3.0)
    [message] = wait_messages(bob, 1)
    ident = message["id"]
    whole = bob.request("GET", f"/api/me/voicemail/{ident}/audio")
    assert whole.status_code == 200, whole.text
    size = len(whole.content)
    assert whole.headers["accept-ranges"] == "bytes", whole.headers

    # Alice sees none of it: her list is her own, and bob's message is a 404 for
    # every verb, exactly like a message nobody has.
    assert messages(alice) == []
    for method, path, body in (
        ("GET", f"/api/me/voicemail/{ident}/audio", None),
        ("PATCH", f"/api/me/voicemail/{ident}", {"heard": True}),
        ("DELETE", f"/api/me/voicemail/{ident}", None),
    ):
        refused = alice.refused(method, path, body, status=404)
        unknown = ident + 1000
        nobodys = alice.refused(method, path.replace(str(ident), str(unknown)), body, status=404)
        # Word for word the answer about an id nobody has: nothing tells it exists.
        assert refused["code"] == nobodys["code"], (refused, nobodys)
        assert refused["message"].replace(str(ident), "N") == nobodys["message"].replace(
            str(unknown), "N"
        ), (refused, nobodys)
    # Without a login: 401.
    with httpx.Client(base_url=bob.base_url, timeout=5.0, trust_env=False) as nobody:
        anonymous = nobody.get(f"/api/me/voicemail/{ident}/audio")
    assert anonymous.status_code == 401, anonymous.headers
    # Bob's message is untouched.
    assert messages(bob) == [message], messages(bob)

    # Byte ranges (RFC 9110 section 14): the header, the rest, a suffix; they add up.
    head = bob.http.get(f"/api/me/voicemail/{ident}/audio", headers={"Range": "bytes=0-43"})
    assert head.status_code == 206, head.text
    assert head.headers["content-range"] == f"bytes 0-43/{size}", head.headers
    assert head.content[:4] == b"RIFF", head.content
    assert head.content[8:12] == b"WAVE", head.content
    rest = bob.http.get(f"/api/me/voicemail/{ident}/audio", headers={"Range": "bytes=44-"})
    assert rest.status_code == 206, rest.text
    assert rest.headers["content-range"] == f"bytes 44-{size - 1}/{size}", rest.headers
    assert head.content + rest.content == whole.content
    tail = bob.http.get(f"/api/me/voicemail/{ident}/audio", headers={"Range": "bytes=-1000"})
    assert tail.status_code == 206, tail.headers
    assert tail.content == whole.content[-1000:]
    beyond = bob.http.get(f"/api/me/voicemail/{ident}/audio", headers={"Range": f"bytes={size}-"})
    assert beyond.status_code == 416, beyond.text
    assert beyond.headers["content-range"] == f"bytes */{size}", beyond.headers
    downloaded = tmp_path / "whole.wav"
    downloaded.write_bytes(whole.content)
    assert_holds_tone(downloaded, CALLER_TONE, at_least=1.5)

    # Bob marks it heard, then deletes it; then it is a 404 for him too.
    marked = bob.call("PATCH", f"/api/me/voicemail/{ident}", {"heard": True})
    assert marked["heard"] is True, marked
    view = bob.call("GET", "/api/me/voicemail")
    assert (view["new"], view["old"]) == (0, 1), view
    bob.call("DELETE", f"/api/me/voicemail/{ident}", expect=204)
    bob.refused("GET", f"/api/me/voicemail/{ident}/audio", status=404)
    assert messages(bob) == []
    site_lab.assert_idle(server)


# --- T4, T12: a telecommuter reaches the mailbox through the callback -------------------------


def test_telecommuter_reaches_the_mailbox_through_the_callback(
    site: Site, site_lab: CallLab, portals: Portals
) -> None:
    home = home_phone(site_lab, HOME_NUMBER, record=True, sip_port=site.home_port)
    server = site_lab.server()
    alice = portals.login(server, "alice", ALICE_PW)
    stream = alice.events()
    view = alice.start_telecommuter(HOME)
    assert view["active"] is True, view

    mark = stream.mark()
    call_id = alice.place_call(VOICEMAIL)
    # The home phone rings first (and answers at once).
    assert home.wait_for("CALL_ESTABLISHED", 10) is not None, home.call_events()
    answered = stream.wait_call("call.answered", call_id, 5, after=mark)
    assert answered is not None, stream.types(mark)
    # The menu talks: "You have no messages. Press 0 for mailbox options ..."
    time.sleep(4.0)
    assert "CALL_CLOSED" not in home.call_events(), home.call_events()
    alice.hang_up(call_id)
    assert home.wait_for("CALL_CLOSED", 5) is not None, home.call_events()
    ended = stream.wait_call("call.ended", call_id, 5, after=mark)
    assert ended is not None, stream.types(mark)
    assert "voicemail" in str(ended["call"]["route"]), ended

    heard = timeline(read_recording(home), (CALLER_TONE, BEEP, RINGBACK))
    sound = sum(s is not None for s in heard) * WINDOW
    assert sound >= 2.0, describe(heard)
    # Speech, not a tone: no ringback or busy was what it heard.
    assert heard_for(heard, RINGBACK) < 0.5, describe(heard)
    site_lab.assert_idle(server)
