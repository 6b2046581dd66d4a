"""Runs a voicemail menu against one side of a call's media.

`calls.voicemail_menu` decides; this module does what the menu asks on a media
session (anything with `MediaSession`'s play/record/DTMF methods) and a
voicemail store (the interface of `store.voicemail.VoicemailStore`, every call
made through `asyncio.to_thread` since the store blocks), and tells the menu
what happened.

Theory of operation
-------------------
One task per call runs `VoicemailSession.run()`: it takes the next event from
a queue (keys from RFC 4733 through `media.on_dtmf`, keys from SIP INFO through
`feed_digit`, the end of a play), or wakes up at the menu's deadline or when the
caller has been silent long enough, hands the event to the menu with the loop's
time, and carries out the actions it returns.  Actions that ask a question
(`CheckPin`, `LoadMailbox`, `StopRecording`) are answered at once, before the
next queued event, so a key pressed meanwhile waits its turn.

Playing.  Each `Play` becomes one frame source (prompts, the beep, message
files; built in a thread, since it reads files) followed by endless silence.
The end of the real audio is reported as `PlayDone`, tagged with the play's
number so that the end of a play already replaced is ignored.  The silence
keeps RTP flowing while the menu waits or records: many phones, gateways and
NATs give up on a call whose media stops.

Recording.  `MediaSession.record` writes the caller's decoded audio into the
store's `WavWriter` through a tap that also measures it: a sliding window of
`silence_window` seconds whose RMS reaches `silence_threshold` is sound, and the
caller is silent once no sound has been heard for `silence_seconds`, measured on
the loop's clock.  The clock matters: a phone that sends no RTP at all during
silence (voice activity detection, RFC 3551 section 4.1) writes nothing, and is
silent all the same.  A message that ends in silence without any sound having
been heard is nobody speaking, and is thrown away.

Hanging up.  The call's owner cancels the task when the caller hangs up.  The
menu is then told `HungUp`; a message being recorded is committed (the store
drops it if it is under `min_message_seconds`), a greeting not yet accepted is
thrown away, and play, recording and the DTMF callback are removed.  The commit
runs shielded in a thread and reports its change even if the task is cancelled
again meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import operator
from collections import deque
from collections.abc import Callable, Iterable
from collections.abc import Sequence as SequenceOf
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, Literal, Protocol, TypeVar, cast

from teleoffice.calls.voicemail_menu import (
    Action,
    Beep,
    CheckPin,
    DeleteMessage,
    DepositMenu,
    Digit,
    DiscardGreeting,
    Event,
    Greeting,
    Hangup,
    HungUp,
    LoadMailbox,
    Login,
    MailboxLoaded,
    MarkHeard,
    MenuSettings,
    MessageAudio,
    MessageInfo,
    PinChecked,
    Play,
    PlayDone,
    PlayItem,
    Prompt,
    RecordedGreeting,
    RecordingKind,
    RecordingStopped,
    RetrievalMenu,
    SaveGreeting,
    SilenceDetected,
    StartRecording,
    StopPlay,
    StopRecording,
    Timeout,
)
from teleoffice.media.analysis import samples
from teleoffice.media.prompts import PromptLibrary
from teleoffice.media.session import Side
from teleoffice.media.sources import (
    FRAME_BYTES,
    SAMPLE_RATE,
    FrameSource,
    PcmSource,
    Sequence,
    WavFormatError,
    WavSource,
)
from teleoffice.media.tones import ToneSet, ToneSource
from teleoffice.media.wavfile import WavWriter

__all__ = [
    "Caller",
    "MailboxChange",
    "SoundMeter",
    "VoicemailMedia",
    "VoicemailOutcome",
    "VoicemailSession",
    "VoicemailSettings",
    "VoicemailStoreLike",
    "deposit_session",
    "retrieval_session",
]

log = logging.getLogger(__name__)

_SILENT_FRAME = bytes(FRAME_BYTES)


# -- what the driver works with -------------------------------------------------------


class VoicemailMedia(Protocol):
    """The parts of `media.session.MediaSession` a voicemail menu uses."""

    @property
    def closed(self) -> bool: ...

    def play(
        self,
        side: Side,
        source: FrameSource,
        *,
        payload_type: int,
        on_done: Callable[[], None] | None = None,
    ) -> None: ...

    def stop_play(self, side: Side) -> None: ...

    def record(self, side: Side, writer: WavWriter) -> None: ...

    def stop_record(self, side: Side) -> float: ...

    def on_dtmf(
        self, side: Side, callback: Callable[[str], None] | None, *, payload_type: int = 101
    ) -> None: ...


class PendingLike(Protocol):
    """A recording the store handed out (`store.voicemail.PendingRecording`)."""

    @property
    def writer(self) -> WavWriter: ...


class StoredMessage(Protocol):
    """What the driver reads of a message record (`store.voicemail.MessageRecord`)."""

    @property
    def id(self) -> int: ...

    @property
    def heard(self) -> bool: ...

    @property
    def caller_number(self) -> str: ...


M = TypeVar("M", bound=PendingLike)  # the store's pending message
G = TypeVar("G", bound=PendingLike)  # the store's pending greeting


class VoicemailStoreLike(Protocol[M, G]):
    """The parts of `store.voicemail.VoicemailStore` a voicemail menu uses (all blocking)."""

    def verify_pin(self, username: str, pin: str, /) -> bool: ...

    def messages(self, username: str, /) -> SequenceOf[StoredMessage]: ...

    def audio_path(self, username: str, message_id: int, /) -> Path: ...

    def mark_heard(self, username: str, message_id: int, /) -> object: ...

    def delete_message(self, username: str, message_id: int, /) -> object: ...

    def greeting_path(self, username: str, /) -> Path | None: ...

    def new_message_writer(self, username: str, /) -> M: ...

    def commit_message(
        self, pending: M, /, *, caller_number: str, caller_name: str | None, min_duration: float
    ) -> StoredMessage | None: ...

    def discard(self, pending: M | G, /) -> object: ...

    def new_greeting_writer(self, username: str, /) -> G: ...

    def commit_greeting(self, pending: G, /) -> object: ...


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is leaving a message, as the call presented them."""

    number: str
    name: str | None = None


@dataclass(frozen=True, slots=True)
class MailboxChange:
    """Something a menu changed in a mailbox (for message waiting and the portal)."""

    username: str
    kind: Literal["message", "heard", "deleted", "greeting"]
    message_id: int | None = None
    message: StoredMessage | None = None  # the new message, for "message"


@dataclass(frozen=True, slots=True)
class VoicemailOutcome:
    """How a menu ended when it ended by itself (a cancelled run returns nothing)."""

    message: StoredMessage | None = None  # the message left, if any
    changes: tuple[MailboxChange, ...] = ()


@dataclass(frozen=True, slots=True)
class VoicemailSettings:
    """The menus' times and the recording's silence detection.

    `silence_seconds` None turns silence detection off.  `silence_threshold` is an
    RMS in 16-bit sample units: 200 is about -38 dBm0, well under speech (around
    -20 dBm0) and well over a quiet line.
    """

    menu: MenuSettings = field(default_factory=MenuSettings)
    silence_seconds: float | None = 5.0
    silence_threshold: float = 200.0
    silence_window: float = 0.5
    min_message_seconds: float = 1.0
    min_greeting_seconds: float = 1.0

    def __post_init__(self) -> None:
        if self.silence_seconds is not None and self.silence_seconds <= 0:
            raise ValueError("silence_seconds must be positive (or None: no detection)")
        if self.silence_window <= 0 or self.silence_threshold < 0:
            raise ValueError("silence_window must be positive, silence_threshold not negative")


# -- measuring what is recorded ---------------------------------------------------------


class SoundMeter:
    """RMS over a sliding window of recent audio; remembers when it last heard sound.

    `feed(pcm, now)` with each chunk as it arrives; the window is `window`
    seconds of audio (the latest chunks that fill it).  Sound is a window whose
    RMS is at least `threshold`.
    """

    def __init__(self, threshold: float, window: float = 0.5, *, start: float = 0.0) -> None:
        self.threshold = threshold
        self._window_samples = max(1, round(window * SAMPLE_RATE))
        self._chunks: deque[tuple[float, int]] = deque()  # (sum of squares, samples)
        self._energy = 0.0
        self._count = 0
        self.heard_sound = False
        self.last_sound = start  # or when listening started

    @property
    def rms(self) -> float:
        """RMS of the current window (0 before any audio)."""
        return math.sqrt(max(self._energy, 0.0) / self._count) if self._count else 0.0

    def feed(self, pcm: bytes, now: float) -> None:
        values = samples(pcm)
        if not values:
            return
        self._chunks.append((float(sum(map(operator.mul, values, values))), len(values)))
        self._energy += self._chunks[-1][0]
        self._count += len(values)
        while len(self._chunks) > 1 and self._count - self._chunks[0][1] >= self._window_samples:
            energy, count = self._chunks.popleft()
            self._energy -= energy
            self._count -= count
        if self.rms >= self.threshold:
            self.heard_sound = True
            self.last_sound = now

    def silent_for(self, now: float) -> float:
        """Seconds since sound was last heard (or since `start`)."""
        return now - self.last_sound


class _Tap:
    """What `MediaSession.record` writes into: the store's writer, measured on the way.

    `MediaSession.record` is typed for a `WavWriter` but only calls `write()`
    and reads `duration`, which this provides.
    """

    def __init__(
        self,
        writer: WavWriter,
        meter: SoundMeter,
        clock: Callable[[], float],
        *,
        keep_pcm: bool,
    ) -> None:
        self.writer = writer
        self.meter = meter
        self._clock = clock
        self.pcm: bytearray | None = bytearray() if keep_pcm else None

    @property
    def duration(self) -> float:
        return self.writer.duration

    def write(self, pcm: bytes) -> None:
        self.writer.write(pcm)
        self.meter.feed(pcm, self._clock())
        if self.pcm is not None:
            self.pcm += pcm


class _ThenSilence:
    """`source`, then `on_end()` once, then silence for ever."""

    def __init__(self, source: FrameSource, on_end: Callable[[], None]) -> None:
        self._source: FrameSource | None = source
        self._on_end = on_end

    def next_frame(self) -> bytes | None:
        if self._source is not None:
            try:
                frame = self._source.next_frame()
            except Exception:  # an unreadable file: carry on as if it had ended
                log.exception("a voicemail prompt failed while playing")
                frame = None
            if frame is not None:
                return frame
            self._source = None
            self._on_end()
        return _SILENT_FRAME


# -- the driver -----------------------------------------------------------------------------

_NOT_A_PLAY = -1


@dataclass(slots=True)
class _Recording(Generic[M, G]):
    kind: RecordingKind
    pending: M | G
    tap: _Tap


class VoicemailSession(Generic[M, G]):
    """One menu (deposit or retrieval) run against `side` of `media`.

    `payload_type` is the G.711 type prompts are sent with (0 or 8);
    `dtmf_payload_type` the telephone-event type the side negotiated (None: none,
    keys come only through `feed_digit`).  `prompts` None plays tones only.
    `on_change` hears of every change made to the mailbox, in the event loop.
    """

    def __init__(  # noqa: PLR0917 - the same order as deposit_session/retrieval_session
        self,
        media: VoicemailMedia,
        side: Side,
        payload_type: int,
        store: VoicemailStoreLike[M, G],
        username: str,
        prompts: PromptLibrary | None,
        menu: DepositMenu | RetrievalMenu,
        *,
        caller: Caller | None = None,
        dtmf_payload_type: int | None = 101,
        settings: VoicemailSettings | None = None,
        tones: ToneSet | None = None,
        on_change: Callable[[MailboxChange], None] | None = None,
    ) -> None:
        self.media = media
        self.side = side
        self.payload_type = payload_type
        self.store = store
        self.username = username
        self.prompts = prompts
        self.menu = menu
        self.caller = caller or Caller("")
        self.dtmf_payload_type = dtmf_payload_type
        self.settings = settings or VoicemailSettings()
        self.tones = tones or ToneSet.named()
        self._on_change = on_change
        self._queue: asyncio.Queue[tuple[Event, int]] = asyncio.Queue()
        self._serial = 0  # of the current play
        self._recording: _Recording[M, G] | None = None
        self._review: tuple[G, bytes] | None = None  # a greeting awaiting SaveGreeting
        self._silence_reported = False
        self._message: StoredMessage | None = None
        self._changes: list[MailboxChange] = []
        self._running = False

    # -- input ------------------------------------------------------------------------

    def feed_digit(self, digit: str) -> None:
        """A key that came another way than RFC 4733 (SIP INFO); ValueError if not a key."""
        self._queue.put_nowait((Digit(digit.upper()), _NOT_A_PLAY))

    def _rtp_digit(self, digit: str) -> None:
        self._queue.put_nowait((Digit(digit), _NOT_A_PLAY))

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> VoicemailOutcome:
        """Run the menu until it hangs up (or the task is cancelled: the caller hung up)."""
        if self._running:
            raise RuntimeError("a voicemail session runs once")
        self._running = True
        loop = asyncio.get_running_loop()
        if self.dtmf_payload_type is not None:
            self.media.on_dtmf(self.side, self._rtp_digit, payload_type=self.dtmf_payload_type)
        try:
            await self._apply(self.menu.start(loop.time()))
            while not self.menu.finished:
                event = await self._next_event()
                await self._apply(self.menu.handle(event, loop.time()))
        except asyncio.CancelledError:
            await self._apply(self.menu.handle(HungUp(), loop.time()))
            raise
        finally:
            self._tidy_up()
        return VoicemailOutcome(message=self._message, changes=tuple(self._changes))

    async def _next_event(self) -> Event:
        loop = asyncio.get_running_loop()
        while True:
            if self.media.closed:
                return HungUp()
            due = self.menu.deadline
            silence_due = self._silence_due()
            if silence_due is not None:
                due = silence_due if due is None else min(due, silence_due)
            try:
                async with asyncio.timeout(None if due is None else max(0.0, due - loop.time())):
                    event, serial = await self._queue.get()
            except TimeoutError:
                silence_due = self._silence_due()
                if silence_due is not None and loop.time() >= silence_due:
                    self._silence_reported = True
                    return SilenceDetected()
                return Timeout()
            if isinstance(event, PlayDone) and serial != self._serial:
                continue  # the end of a play that was replaced or stopped
            return event

    def _silence_due(self) -> float | None:
        seconds = self.settings.silence_seconds
        if self._recording is None or seconds is None or self._silence_reported:
            return None
        return self._recording.tap.meter.last_sound + seconds

    async def _apply(self, actions: Iterable[Action]) -> None:
        todo = list(actions)
        while todo:
            answer = await self._do(todo.pop(0))
            if answer is not None:
                todo += self.menu.handle(answer, asyncio.get_running_loop().time())

    async def _do(self, action: Action) -> Event | None:
        """Carry out one action; returns the menu's answer to it, if it expects one."""
        if isinstance(action, Play):
            source = await asyncio.to_thread(self._build, action.items, self._review_pcm())
            self._play(source)
        elif isinstance(action, StopPlay):
            self._play(None)
        elif isinstance(action, StartRecording):
            await self._start_recording(action.kind)
        elif isinstance(action, StopRecording):
            return await self._stop_recording(keep=action.keep)
        elif isinstance(action, CheckPin):
            ok = await asyncio.to_thread(self.store.verify_pin, self.username, action.pin)
            return PinChecked(ok=bool(ok))
        elif isinstance(action, LoadMailbox):
            found = await asyncio.to_thread(self.store.messages, self.username)
            return MailboxLoaded(
                tuple(MessageInfo(m.id, m.heard, m.caller_number or "") for m in found)
            )
        elif isinstance(action, MarkHeard):
            if await self._try(self.store.mark_heard, self.username, action.message_id):
                self._changed(MailboxChange(self.username, "heard", action.message_id))
        elif isinstance(action, DeleteMessage):
            if await self._try(self.store.delete_message, self.username, action.message_id):
                self._changed(MailboxChange(self.username, "deleted", action.message_id))
        elif isinstance(action, SaveGreeting | DiscardGreeting):
            await self._finish_review(save=isinstance(action, SaveGreeting))
        elif isinstance(action, Hangup):
            self._play(None)
        elif isinstance(action, Login):
            log.info("voicemail of %s: the caller logs in from the greeting", self.username)
            self.menu = RetrievalMenu(authenticated=False, settings=self.settings.menu)
            await self._apply(self.menu.start(asyncio.get_running_loop().time()))
        return None

    async def _try(self, method: Callable[[str, int], object], username: str, ident: int) -> bool:
        """A store change that may fail harmlessly (the message was deleted in the portal)."""
        try:
            await asyncio.to_thread(method, username, ident)
        except Exception:
            log.warning(
                "voicemail of %s: message %d: store call failed", username, ident, exc_info=True
            )
            return False
        return True

    def _changed(self, change: MailboxChange) -> None:
        self._changes.append(change)
        if self._on_change is not None:
            try:
                self._on_change(change)
            except Exception:
                log.exception("voicemail change callback failed")

    # -- playing ------------------------------------------------------------------------

    def _play(self, source: FrameSource | None) -> None:
        """Play `source` then silence (None: silence alone, e.g. after StopPlay)."""
        self._serial += 1
        serial = self._serial

        def ended() -> None:
            self._queue.put_nowait((PlayDone(), serial))

        frames: FrameSource = _ThenSilence(source, ended) if source is not None else _Silence()
        if self.media.closed:
            return  # _next_event notices and reports the hang-up
        try:
            self.media.play(self.side, frames, payload_type=self.payload_type)
        except RuntimeError:  # closed in the meantime
            log.debug("voicemail of %s: the media session is closed", self.username)

    def _review_pcm(self) -> bytes | None:
        return None if self._review is None else self._review[1]

    def _build(self, items: tuple[PlayItem, ...], review_pcm: bytes | None) -> FrameSource:
        """The frame source of a Play (runs in a thread: it reads files)."""
        parts: list[FrameSource] = []
        for item in items:
            if isinstance(item, Prompt):
                parts += self._prompt_sources([item.name])
            elif isinstance(item, Beep):
                parts.append(ToneSource(self.tones.beep))
            elif isinstance(item, MessageAudio):
                try:
                    parts.append(WavSource(self.store.audio_path(self.username, item.message_id)))
                except (WavFormatError, OSError):
                    log.warning(
                        "voicemail of %s: message %d cannot be played",
                        self.username,
                        item.message_id,
                        exc_info=True,
                    )
                except Exception:  # the store's NotFound: deleted in the portal meanwhile
                    log.warning(
                        "voicemail of %s: message %d is gone", self.username, item.message_id
                    )
            elif isinstance(item, Greeting):
                greeting = self._greeting_source()
                parts += [greeting] if greeting is not None else self._prompt_sources(item.fallback)
            elif isinstance(item, RecordedGreeting) and review_pcm:
                parts.append(PcmSource(review_pcm))
        return Sequence(*parts)

    def _prompt_sources(self, names: Iterable[str]) -> list[FrameSource]:
        if self.prompts is None:
            return []
        return [s for s in map(self.prompts.source, names) if s is not None]

    def _greeting_source(self) -> FrameSource | None:
        try:
            path = self.store.greeting_path(self.username)
            return None if path is None else WavSource(path)
        except Exception:
            log.warning(
                "voicemail of %s: the greeting cannot be played", self.username, exc_info=True
            )
            return None

    # -- recording ------------------------------------------------------------------------

    async def _start_recording(self, kind: RecordingKind) -> None:
        loop = asyncio.get_running_loop()
        factory: Callable[[str], M | G] = (
            self.store.new_message_writer
            if kind is RecordingKind.MESSAGE
            else self.store.new_greeting_writer
        )
        opening = asyncio.ensure_future(asyncio.to_thread(factory, self.username))
        try:
            pending = await asyncio.shield(opening)
        except asyncio.CancelledError:
            # Hung up while the file was being created: throw it away once it is.
            opening.add_done_callback(self._discard_opened)
            raise
        meter = SoundMeter(
            self.settings.silence_threshold, self.settings.silence_window, start=loop.time()
        )
        tap = _Tap(pending.writer, meter, loop.time, keep_pcm=kind is RecordingKind.GREETING)
        self._recording = _Recording(kind, pending, tap)
        self._silence_reported = False
        try:
            self.media.record(self.side, cast(WavWriter, tap))
        except RuntimeError:  # the media session closed meanwhile
            log.debug("voicemail of %s: cannot record, the media is closed", self.username)

    def _discard_opened(self, opened: asyncio.Future[M | G]) -> None:
        if not opened.cancelled() and opened.exception() is None:
            with contextlib.suppress(Exception):
                self.store.discard(opened.result())

    async def _stop_recording(self, *, keep: bool) -> RecordingStopped:
        recording, self._recording = self._recording, None
        if recording is None:
            return RecordingStopped(kept=False)
        self.media.stop_record(self.side)
        tap = recording.tap
        silent = self._silence_reported and not tap.meter.heard_sound
        if recording.kind is RecordingKind.MESSAGE:
            pending = cast(M, recording.pending)
            if not keep or silent:
                if silent:
                    log.info("voicemail for %s: only silence, not kept", self.username)
                await asyncio.to_thread(self.store.discard, pending)
                return RecordingStopped(kept=False)
            message = await self._commit_message(pending)
            return RecordingStopped(kept=message is not None)
        greeting = cast(G, recording.pending)
        if keep and not silent and tap.duration >= self.settings.min_greeting_seconds:
            self._review = (greeting, bytes(tap.pcm or b""))
            return RecordingStopped(kept=True)
        await asyncio.to_thread(self.store.discard, greeting)
        return RecordingStopped(kept=False)

    async def _commit_message(self, pending: M) -> StoredMessage | None:
        """Commit in a thread that finishes (and reports) even if this task is cancelled."""
        commit = asyncio.ensure_future(
            asyncio.to_thread(
                self.store.commit_message,
                pending,
                caller_number=self.caller.number,
                caller_name=self.caller.name,
                min_duration=self.settings.min_message_seconds,
            )
        )

        def report(done: asyncio.Future[StoredMessage | None]) -> None:
            if done.cancelled() or done.exception() is not None:
                log.error(
                    "voicemail for %s could not be stored",
                    self.username,
                    exc_info=None if done.cancelled() else done.exception(),
                )
                return
            message = done.result()
            if message is not None:
                self._message = message
                self._changed(MailboxChange(self.username, "message", message.id, message))

        commit.add_done_callback(report)
        try:
            return await asyncio.shield(commit)
        except asyncio.CancelledError:
            raise
        except Exception:
            return None  # logged by report()

    async def _finish_review(self, *, save: bool) -> None:
        review, self._review = self._review, None
        if review is None:
            return
        greeting = review[0]
        if save:
            try:
                await asyncio.to_thread(self.store.commit_greeting, greeting)
            except Exception:
                log.exception("voicemail of %s: the greeting could not be stored", self.username)
                return
            self._changed(MailboxChange(self.username, "greeting"))
        else:
            await asyncio.to_thread(self.store.discard, greeting)

    def _tidy_up(self) -> None:
        """Leave the media as it was found: no play, no recording, no DTMF callback."""
        with contextlib.suppress(Exception):
            if self.dtmf_payload_type is not None:
                self.media.on_dtmf(self.side, None)
            self._serial += 1
            self.media.stop_play(self.side)
        recording, self._recording = self._recording, None
        if recording is not None:
            # Only reached when the menu could not say what to do with it (an
            # error); a recording nobody decided on is not published.
            with contextlib.suppress(Exception):
                self.media.stop_record(self.side)
            with contextlib.suppress(Exception):
                self.store.discard(recording.pending)
        review, self._review = self._review, None
        if review is not None:
            with contextlib.suppress(Exception):
                self.store.discard(review[0])


class _Silence:
    def next_frame(self) -> bytes:
        return _SILENT_FRAME


# -- the two menus ------------------------------------------------------------------------


def deposit_session(  # noqa: PLR0917 - the order agreed for voicemail (issue 5)
    media: VoicemailMedia,
    side: Side,
    payload_type: int,
    store: VoicemailStoreLike[M, G],
    username: str,
    caller: Caller,
    prompts: PromptLibrary | None,
    *,
    extension: str,
    busy: bool = False,
    allow_login: bool = True,
    settings: VoicemailSettings | None = None,
    dtmf_payload_type: int | None = 101,
    tones: ToneSet | None = None,
    on_change: Callable[[MailboxChange], None] | None = None,
) -> VoicemailSession[M, G]:
    """A caller leaving a message for `username` (whose number is `extension`)."""
    settings = settings or VoicemailSettings()
    menu = DepositMenu(
        extension=extension, busy=busy, allow_login=allow_login, settings=settings.menu
    )
    return VoicemailSession(
        media,
        side,
        payload_type,
        store,
        username,
        prompts,
        menu,
        caller=caller,
        dtmf_payload_type=dtmf_payload_type,
        settings=settings,
        tones=tones,
        on_change=on_change,
    )


def retrieval_session(  # noqa: PLR0917 - the order agreed for voicemail (issue 5)
    media: VoicemailMedia,
    side: Side,
    payload_type: int,
    store: VoicemailStoreLike[M, G],
    username: str,
    prompts: PromptLibrary | None,
    *,
    authenticated: bool,
    settings: VoicemailSettings | None = None,
    dtmf_payload_type: int | None = 101,
    tones: ToneSet | None = None,
    on_change: Callable[[MailboxChange], None] | None = None,
) -> VoicemailSession[M, G]:
    """`username` listening to their messages (asked for their PIN unless `authenticated`)."""
    settings = settings or VoicemailSettings()
    menu = RetrievalMenu(authenticated=authenticated, settings=settings.menu)
    return VoicemailSession(
        media,
        side,
        payload_type,
        store,
        username,
        prompts,
        menu,
        dtmf_payload_type=dtmf_payload_type,
        settings=settings,
        tones=tones,
        on_change=on_change,
    )
