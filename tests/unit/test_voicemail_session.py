"""Tests of server.voicemail_session: the menus run over real RTP on 127.0.0.1.

A fake caller (a UDP socket) talks to side "a" of a real `MediaSession`: it
hears what the driver plays (decoded and checked by frequency), sends G.711
audio and RFC 4733 key presses.  The voicemail store is an in-memory fake with
the interface of `store.voicemail.VoicemailStore`, writing real WAV files.  Each
test uses its own block of RTP ports in 42000-42399 (the media tests keep below).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
import wave
from array import array
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from teleoffice.calls.voicemail_menu import MenuSettings
from teleoffice.media.analysis import dominant_frequency, rms
from teleoffice.media.dtmf import dtmf_packets
from teleoffice.media.engine import MediaEngine
from teleoffice.media.g711 import ulaw_decode, ulaw_encode
from teleoffice.media.prompts import DEFAULT_PROMPT_DIR, PromptLibrary
from teleoffice.media.rtp import RtpPacket, parse_rtp
from teleoffice.media.session import MediaSession
from teleoffice.media.sources import FRAME_BYTES
from teleoffice.media.tones import Tone, ToneSource
from teleoffice.media.wavfile import WavWriter
from teleoffice.server.voicemail_session import (
    Caller,
    MailboxChange,
    SoundMeter,
    VoicemailMedia,
    VoicemailOutcome,
    VoicemailSession,
    VoicemailSettings,
    VoicemailStoreLike,
    deposit_session,
    retrieval_session,
)
from tests.unit.test_media_session import HOST, Phone, phone

if TYPE_CHECKING:
    from teleoffice.store.voicemail import PendingGreeting, PendingMessage, VoicemailStore

    def the_real_store_and_media_fit(store: VoicemailStore, media: MediaSession) -> None:
        """mypy checks that the real store and media session have what the driver uses."""
        fits: VoicemailStoreLike[PendingMessage, PendingGreeting] = store
        plays: VoicemailMedia = media
        print(fits, plays)


TIMEOUT = 15.0
CANDIDATES = (425, 600, 1000)
TEST_TONE = Tone("test", (600,), level_dbm0=-6.0)  # what the caller "says"
SILENT_FRAME = bytes(FRAME_BYTES)
# Quick settings: short silences and timeouts so the tests take seconds.
SETTINGS = VoicemailSettings(
    menu=MenuSettings(max_message_seconds=10, input_timeout=5, digit_timeout=3),
    silence_seconds=0.5,
    silence_window=0.2,
)


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def tone_pcm(seconds: float, freq: int = 600) -> bytes:
    count = round(8000 * seconds)
    return array(
        "h", (round(8000 * math.sin(2 * math.pi * freq * n / 8000)) for n in range(count))
    ).tobytes()


def read_wav(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 8000)
        return wav.readframes(wav.getnframes())


# -- a voicemail store in memory (with real files) ------------------------------------------


class FakePending:
    def __init__(self, writer: WavWriter) -> None:
        self.writer = writer


@dataclass
class FakeMessage:
    id: int
    caller_number: str
    caller_name: str | None
    duration: float
    heard: bool
    path: Path


@dataclass
class FakeStore:
    """`store.voicemail.VoicemailStore` for one user, with what the tests need to see."""

    root: Path
    pin: str = "1234"
    rows: dict[int, FakeMessage] = field(default_factory=dict)
    greeting: Path | None = None
    calls: list[str] = field(default_factory=list)
    threads: set[str] = field(default_factory=set)
    slow_open: float = 0.0  # seconds new_message_writer takes (a busy disk)
    _files: int = 0

    def _called(self, name: str) -> None:
        self.calls.append(name)
        self.threads.add(threading.current_thread().name)

    def _writer(self, stem: str) -> FakePending:
        self._files += 1
        return FakePending(WavWriter(self.root / f"{stem}{self._files}.wav"))

    def add_message(self, pcm: bytes, caller_number: str = "202", *, heard: bool = False) -> int:
        pending = self._writer("msg")
        pending.writer.write(pcm)
        path = pending.writer.commit()
        ident = max(self.rows, default=0) + 1
        self.rows[ident] = FakeMessage(ident, caller_number, None, len(pcm) / 16000, heard, path)
        return ident

    def verify_pin(self, username: str, pin: str) -> bool:
        self._called("verify_pin")
        return pin == self.pin

    def messages(self, username: str) -> list[FakeMessage]:
        self._called("messages")
        return sorted(self.rows.values(), key=lambda m: -m.id)

    def audio_path(self, username: str, message_id: int) -> Path:
        self._called("audio_path")
        return self.rows[message_id].path

    def mark_heard(self, username: str, message_id: int, heard: bool = True) -> FakeMessage:
        self._called("mark_heard")
        self.rows[message_id].heard = heard
        return self.rows[message_id]

    def delete_message(self, username: str, message_id: int) -> None:
        self._called("delete_message")
        self.rows.pop(message_id).path.unlink()

    def greeting_path(self, username: str) -> Path | None:
        self._called("greeting_path")
        return self.greeting

    def new_message_writer(self, username: str) -> FakePending:
        self._called("new_message_writer")
        time.sleep(self.slow_open)
        return self._writer("msg")

    def commit_message(
        self,
        pending: FakePending,
        *,
        caller_number: str,
        caller_name: str | None = None,
        min_duration: float = 1.0,
    ) -> FakeMessage | None:
        self._called("commit_message")
        if pending.writer.duration < min_duration:
            pending.writer.abort()
            return None
        duration = pending.writer.duration
        path = pending.writer.commit()
        ident = max(self.rows, default=0) + 1
        row = FakeMessage(ident, caller_number, caller_name, duration, False, path)
        self.rows[ident] = row
        return row

    def discard(self, pending: FakePending) -> None:
        self._called("discard")
        pending.writer.abort()

    def new_greeting_writer(self, username: str) -> FakePending:
        self._called("new_greeting_writer")
        return self._writer("greeting")

    def commit_greeting(self, pending: FakePending) -> bool:
        self._called("commit_greeting")
        self.greeting = pending.writer.commit()
        return True

    def files(self) -> list[str]:
        """Every file in the store's folder, temporary ones included."""
        return sorted(p.name for p in self.root.iterdir())


# -- the caller's side -------------------------------------------------------------------------


@dataclass
class Line:
    """The caller's phone on side "a" of a media session."""

    engine: MediaEngine
    session: MediaSession
    phone: Phone
    seq: int = 0
    timestamp: int = 0
    ssrc: int = 0x5EED

    @property
    def port(self) -> int:
        return self.session.local_port("a")

    def _packet(self, payload_type: int, payload: bytes, *, marker: bool = False) -> bytes:
        packet = RtpPacket(
            payload_type=payload_type,
            sequence=self.seq & 0xFFFF,
            timestamp=self.timestamp & 0xFFFFFFFF,
            ssrc=self.ssrc,
            payload=payload,
            marker=marker,
        )
        self.seq += 1
        return packet.to_bytes()

    async def say(self, seconds: float, *, silent: bool = False) -> None:
        """Send `seconds` of the test tone (or of silence), paced like a phone."""
        tone = ToneSource(TEST_TONE)
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(round(seconds / 0.02)):
            frame = SILENT_FRAME if silent else tone.next_frame()
            assert frame is not None
            self.phone.send(self._packet(0, ulaw_encode(frame)), self.port)
            self.timestamp += 160
            await asyncio.sleep(max(0.0, start + 0.02 * (n + 1) - loop.time()))

    async def press(self, keys: str, payload_type: int = 101) -> None:
        """Key presses as RFC 4733 events, 100 ms each."""
        for key in keys:
            for packet in dtmf_packets(
                key,
                start_seq=self.seq,
                timestamp=self.timestamp & 0xFFFFFFFF,
                ssrc=self.ssrc,
                payload_type=payload_type,
            ):
                self.phone.send(packet.to_bytes(), self.port)
                self.seq += 1
            self.timestamp += 1600
            await asyncio.sleep(0.03)

    def drain(self) -> None:
        while not self.phone.queue.empty():
            self.phone.queue.get_nowait()

    async def frame(self, within: float = 3.0) -> bytes:
        """The next frame played to the caller, decoded."""
        data, _ = await asyncio.wait_for(self.phone.queue.get(), within)
        packet = parse_rtp(data)
        assert packet.payload_type == 0
        return ulaw_decode(packet.payload)

    async def hear(self, freq: int, *, frames: int = 5, within: float = 5.0) -> bytes:
        """Wait until `frames` frames in a row carry `freq`; returns them."""
        run: list[bytes] = []

        async def listen() -> None:
            while len(run) < frames:
                frame = await self.frame()
                if rms(frame) > 300 and dominant_frequency(frame, CANDIDATES) == freq:
                    run.append(frame)
                else:
                    run.clear()

        await asyncio.wait_for(listen(), within)
        return b"".join(run)

    async def hear_speech(self, *, frames: int = 10, within: float = 5.0) -> None:
        """Wait for `frames` frames that are not silence (a spoken prompt)."""
        loud = 0
        while loud < frames:
            frame = await self.frame(within)
            loud += rms(frame) > 200

    async def quiet(self, *, frames: int = 3) -> None:
        """Wait until `frames` silent frames in a row arrive (a play ended)."""
        silent = 0
        while silent < frames:
            frame = await self.frame()
            silent = silent + 1 if rms(frame) < 50 else 0


@contextlib.asynccontextmanager
async def line(block: int) -> AsyncIterator[Line]:
    low = 42000 + 40 * block
    engine = MediaEngine(HOST, low, low + 39)
    session = await engine.create_session()
    caller = await phone()
    session.set_remote("a", HOST, caller.port)
    try:
        yield Line(engine, session, caller)
    finally:
        assert caller.transport is not None
        caller.transport.close()
        engine.close()
        assert engine.ports_in_use == 0


def deposit(
    ln: Line,
    store: FakeStore,
    prompts: PromptLibrary | None = None,
    settings: VoicemailSettings = SETTINGS,
    changes: list[MailboxChange] | None = None,
    **options: Any,
) -> VoicemailSession[FakePending, FakePending]:
    return deposit_session(
        ln.session,
        "a",
        0,
        store,
        "bob",
        Caller("201", "Alice"),
        prompts,
        extension="202",
        settings=settings,
        on_change=None if changes is None else changes.append,
        **options,
    )


async def leave_message_after_the_beep(ln: Line) -> None:
    await ln.hear(1000)  # the beep
    await ln.quiet(frames=2)  # the beep is over: recording from now on


# -- leaving messages ---------------------------------------------------------------------------


def test_deposit_records_what_the_caller_says_until_silence(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    changes: list[MailboxChange] = []

    async def main() -> None:
        async with line(0) as ln:
            task = asyncio.create_task(deposit(ln, store, changes=changes).run())
            await leave_message_after_the_beep(ln)
            await ln.say(1.2)
            pause = asyncio.create_task(ln.say(2.0, silent=True))
            outcome = await asyncio.wait_for(task, 1.0)  # after 0.5 s of silence
            pause.cancel()
            assert not ln.session.is_playing("a")
            assert outcome.message is not None
            assert outcome.changes == (
                MailboxChange("bob", "message", outcome.message.id, outcome.message),
            )

    run(main)
    assert changes[0].kind == "message"
    (message,) = store.rows.values()
    assert (message.caller_number, message.caller_name, message.heard) == ("201", "Alice", False)
    audio = read_wav(message.path)
    assert 1.2 <= len(audio) / 16000 <= 2.2  # the tone and half a second of silence or so
    assert dominant_frequency(audio, CANDIDATES) == 600
    assert rms(audio[:16000]) > 1000
    assert store.files() == [message.path.name]  # nothing temporary left behind
    assert threading.main_thread().name not in store.threads  # the store ran in threads


def test_deposit_stops_at_the_maximum_length(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    settings = VoicemailSettings(menu=MenuSettings(max_message_seconds=1.5), silence_seconds=None)

    async def main() -> None:
        async with line(1) as ln:
            task = asyncio.create_task(deposit(ln, store, settings=settings).run())
            await leave_message_after_the_beep(ln)
            talking = asyncio.create_task(ln.say(3.0))
            outcome = await asyncio.wait_for(task, 2.5)
            assert outcome.message is not None
            talking.cancel()

    run(main)
    (message,) = store.rows.values()
    assert message.duration == pytest.approx(1.5, abs=0.1)
    assert dominant_frequency(read_wav(message.path), CANDIDATES) == 600


def test_deposit_a_phone_that_stops_sending_is_silent_too(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    async def main() -> None:
        async with line(2) as ln:
            task = asyncio.create_task(deposit(ln, store).run())
            await leave_message_after_the_beep(ln)
            await ln.say(1.2)
            # No more RTP at all (voice activity detection): silence all the same.
            outcome = await asyncio.wait_for(task, 1.5)
            assert outcome.message is not None

    run(main)
    (message,) = store.rows.values()
    assert message.duration == pytest.approx(1.2, abs=0.15)


def test_deposit_only_silence_is_no_message(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    async def main() -> None:
        async with line(3) as ln:
            task = asyncio.create_task(deposit(ln, store).run())
            await leave_message_after_the_beep(ln)
            pause = asyncio.create_task(ln.say(1.5, silent=True))
            outcome = await asyncio.wait_for(task, 1.5)
            pause.cancel()
            assert outcome == VoicemailOutcome()

    run(main)
    assert store.rows == {}
    assert store.files() == []
    assert "commit_message" not in store.calls


def test_deposit_pound_ends_the_message_and_skips_the_greeting(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    store.greeting = tmp_path / "own-greeting.wav"
    with wave.open(str(store.greeting), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(tone_pcm(5.0, 425))  # long: the caller skips it

    async def main() -> None:
        async with line(4) as ln:
            task = asyncio.create_task(deposit(ln, store).run())
            await ln.hear(425)  # the owner's greeting
            await ln.press("#")
            await ln.hear(1000)  # the beep, long before the greeting would have ended
            await ln.quiet(frames=2)
            await ln.say(1.5)
            await ln.press("#")
            outcome = await asyncio.wait_for(task, 1.0)
            assert outcome.message is not None

    run(main)
    (message,) = store.rows.values()
    assert 1.3 <= message.duration <= 1.8


def test_hanging_up_keeps_a_message_of_a_second_or_more(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    changes: list[MailboxChange] = []

    async def main() -> None:
        async with line(5) as ln:
            session = deposit(ln, store, changes=changes)
            task = asyncio.create_task(session.run())
            await leave_message_after_the_beep(ln)
            talking = asyncio.create_task(ln.say(5.0))
            await asyncio.sleep(1.5)
            task.cancel()  # the caller hung up
            with pytest.raises(asyncio.CancelledError):
                await task
            talking.cancel()
            assert not ln.session.is_playing("a")
            assert ln.session.stop_record("a") == 0.0  # no longer recording

    run(main)
    (message,) = store.rows.values()
    assert message.duration == pytest.approx(1.5, abs=0.25)
    assert dominant_frequency(read_wav(message.path), CANDIDATES) == 600
    assert [c.kind for c in changes] == ["message"]
    assert store.files() == [message.path.name]


def test_hanging_up_drops_a_message_under_a_second(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    async def main() -> None:
        async with line(6) as ln:
            task = asyncio.create_task(deposit(ln, store).run())
            await leave_message_after_the_beep(ln)
            talking = asyncio.create_task(ln.say(5.0))
            await asyncio.sleep(0.5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            talking.cancel()

    run(main)
    assert store.rows == {}
    assert store.files() == []


def test_hanging_up_during_the_greeting_records_nothing(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    async def main() -> None:
        async with line(7) as ln:
            task = asyncio.create_task(
                deposit_session(
                    ln.session, "a", 0, store, "bob", Caller("201"), None, extension="202"
                ).run()
            )
            await ln.hear(1000)  # tones only: straight to the beep
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main)
    assert "new_message_writer" not in store.calls
    assert store.files() == []


def test_hanging_up_while_the_file_is_being_opened_leaves_no_file(tmp_path: Path) -> None:
    store = FakeStore(tmp_path, slow_open=0.6)

    async def main() -> None:
        async with line(16) as ln:
            task = asyncio.create_task(deposit(ln, store).run())
            await ln.hear(1000)
            await asyncio.sleep(0.4)  # the beep is over; the file is being opened
            assert store.calls == ["greeting_path", "new_message_writer"]
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.6)

    run(main)
    assert store.calls[-1] == "discard"
    assert store.files() == []


def test_closing_the_media_ends_the_menu_and_keeps_the_message(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    async def main() -> None:
        async with line(8) as ln:
            task = asyncio.create_task(deposit(ln, store).run())
            await leave_message_after_the_beep(ln)
            await ln.say(1.3)
            ln.engine.release(ln.session)  # the call ended under the menu's feet
            # The driver notices at its next wake-up (silence after 0.5 s).
            outcome = await asyncio.wait_for(task, 2.0)
            assert outcome.message is not None

    run(main)
    assert len(store.rows) == 1


@pytest.mark.skipif(
    not (DEFAULT_PROMPT_DIR / "vm-theperson.wav").is_file(),
    reason="asterisk-core-sounds-en-wav is not installed (scripts/system-deps.sh run)",
)
def test_deposit_with_asterisk_prompts(tmp_path: Path) -> None:
    store = FakeStore(tmp_path / "box")
    store.root.mkdir()
    prompts = PromptLibrary(DEFAULT_PROMPT_DIR, tmp_path / "cache", espeak=None)

    async def main() -> None:
        async with line(9) as ln:
            task = asyncio.create_task(deposit(ln, store, prompts).run())
            await ln.hear_speech()  # "The person at extension..."
            await ln.press("#")
            await ln.hear(1000)
            await ln.quiet(frames=2)
            await ln.say(1.3)
            await ln.press("#")
            await ln.hear_speech()  # "Your message has been saved. Goodbye."
            assert len(store.rows) == 1
            task.cancel()  # the caller need not wait for the end
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main)
    (message,) = store.rows.values()
    assert dominant_frequency(read_wav(message.path), CANDIDATES) == 600


# -- listening ----------------------------------------------------------------------------------


def test_retrieval_with_rfc4733_keys_plays_marks_and_deletes(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    first = store.add_message(tone_pcm(1.0, 600), "203")
    changes: list[MailboxChange] = []

    async def main() -> None:
        async with line(10) as ln:
            task = asyncio.create_task(
                retrieval_session(
                    ln.session,
                    "a",
                    0,
                    store,
                    "bob",
                    None,
                    authenticated=False,
                    settings=SETTINGS,
                    on_change=changes.append,
                ).run()
            )
            await ln.press("1234#")
            await ln.press("1")  # play the first message
            played = await ln.hear(600, frames=40)
            assert dominant_frequency(played, CANDIDATES) == 600
            assert store.rows[first].heard
            await ln.press("7")  # delete it
            await ln.press("#")
            outcome = await asyncio.wait_for(task, 2.0)
            assert [c.kind for c in outcome.changes] == ["heard", "deleted"]

    run(main)
    assert store.rows == {}
    assert store.calls.count("verify_pin") == 1
    assert [c.kind for c in changes] == ["heard", "deleted"]
    assert threading.main_thread().name not in store.threads


def test_retrieval_with_sip_info_keys_and_three_wrong_pins(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    store.add_message(tone_pcm(1.0))

    async def main() -> None:
        async with line(11) as ln:
            session = retrieval_session(
                ln.session,
                "a",
                0,
                store,
                "bob",
                None,
                authenticated=False,
                settings=SETTINGS,
                dtmf_payload_type=None,
            )
            task = asyncio.create_task(session.run())
            await ln.press("1234#")  # RFC 4733 is not listened to here
            await asyncio.sleep(0.2)
            assert "verify_pin" not in store.calls
            for key in "99#8#7#":
                session.feed_digit(key)
            outcome = await asyncio.wait_for(task, 2.0)
            assert outcome == VoicemailOutcome()
            with pytest.raises(ValueError, match="DTMF"):
                session.feed_digit("x")

    run(main)
    assert store.calls.count("verify_pin") == 3
    assert "messages" not in store.calls
    assert not any(row.heard for row in store.rows.values())


def test_recording_a_greeting_listening_to_it_and_keeping_it(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    changes: list[MailboxChange] = []

    async def main() -> None:
        async with line(12) as ln:
            session = retrieval_session(
                ln.session,
                "a",
                0,
                store,
                "bob",
                None,
                authenticated=True,
                settings=SETTINGS,
                on_change=changes.append,
            )
            task = asyncio.create_task(session.run())
            session.feed_digit("0")  # mailbox options
            session.feed_digit("1")  # record a greeting
            await leave_message_after_the_beep(ln)
            await ln.say(1.5)
            session.feed_digit("#")
            await asyncio.sleep(0.2)
            ln.drain()
            session.feed_digit("2")  # listen to it
            heard = await ln.hear(600, frames=30)
            assert dominant_frequency(heard, CANDIDATES) == 600
            assert store.greeting is None  # not before it is accepted
            session.feed_digit("1")  # accept
            session.feed_digit("#")
            await asyncio.wait_for(task, 2.0)

    run(main)
    assert store.greeting is not None
    audio = read_wav(store.greeting)
    assert dominant_frequency(audio, CANDIDATES) == 600
    assert 1.3 <= len(audio) / 16000 <= 1.8
    assert [c.kind for c in changes] == ["greeting"]
    assert store.files() == [store.greeting.name]


def test_hanging_up_during_the_review_drops_the_greeting(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    async def main() -> None:
        async with line(13) as ln:
            session = retrieval_session(
                ln.session, "a", 0, store, "bob", None, authenticated=True, settings=SETTINGS
            )
            task = asyncio.create_task(session.run())
            session.feed_digit("0")
            session.feed_digit("1")
            await leave_message_after_the_beep(ln)
            await ln.say(1.2)
            session.feed_digit("#")
            await asyncio.sleep(0.3)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main)
    assert store.greeting is None
    assert store.files() == []
    assert "discard" in store.calls


def test_star_during_the_greeting_leads_to_the_owners_menu(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)
    message = store.add_message(tone_pcm(0.6, 425))

    async def main() -> None:
        async with line(14) as ln:
            session = deposit(ln, store)
            task = asyncio.create_task(session.run())
            session.feed_digit("*")
            for key in "1234#1":
                session.feed_digit(key)
            await ln.hear(425, frames=20)  # the message
            session.feed_digit("#")
            outcome = await asyncio.wait_for(task, 2.0)
            assert outcome.message is None

    run(main)
    assert store.rows[message].heard
    assert "new_message_writer" not in store.calls


def test_a_session_runs_once(tmp_path: Path) -> None:
    store = FakeStore(tmp_path)

    async def main() -> None:
        async with line(15) as ln:
            session = deposit(ln, store)
            task = asyncio.create_task(session.run())
            await asyncio.sleep(0)
            with pytest.raises(RuntimeError, match="once"):
                await session.run()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

    run(main)


# -- the sound meter ----------------------------------------------------------------------------


def test_sound_meter_windows_and_remembers_sound() -> None:
    meter = SoundMeter(threshold=200, window=0.1, start=5.0)
    assert meter.rms == 0.0
    assert meter.silent_for(7.0) == pytest.approx(2.0)
    meter.feed(b"", 7.0)
    assert (meter.heard_sound, meter.last_sound) == (False, 5.0)
    meter.feed(tone_pcm(0.02), 7.0)
    assert meter.heard_sound
    assert meter.last_sound == 7.0
    assert meter.rms == pytest.approx(8000 / math.sqrt(2), rel=0.01)
    # Silence fills the window bit by bit; the tone still counts until it has left it.
    for n in range(4):
        meter.feed(bytes(320), 7.02 + 0.02 * n)
    assert meter.last_sound == pytest.approx(7.08)  # 20 ms of tone in 100 ms: still sound
    meter.feed(bytes(320), 7.1)
    assert meter.rms == 0.0
    assert meter.last_sound == pytest.approx(7.08)
    assert meter.silent_for(8.08) == pytest.approx(1.0)


def test_sound_meter_threshold() -> None:
    quiet = array("h", [100, -100] * 400).tobytes()  # RMS 100
    meter = SoundMeter(threshold=200, window=0.1)
    meter.feed(quiet, 1.0)
    assert not meter.heard_sound
    assert meter.rms == pytest.approx(100)
    louder = SoundMeter(threshold=100, window=0.1)
    louder.feed(quiet, 1.0)
    assert louder.heard_sound


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="silence_seconds"):
        VoicemailSettings(silence_seconds=0)
    with pytest.raises(ValueError, match="silence_window"):
        VoicemailSettings(silence_window=0)
