"""Sources of 20 ms frames of 8 kHz 16-bit PCM: silence, memory, WAV files, sequences.

A media endpoint sends one frame every 20 ms (the G.711 default packetisation,
RFC 3551 section 4.5); whatever produces the audio only has to hand over the next
frame when asked.  `FrameSource.next_frame()` returns 320 octets (160 little-
endian int16 samples) or None when the source is finished.  Sources are pure and
cheap to call: the pacing and the sockets are elsewhere.
"""

from __future__ import annotations

import os
import wave
from typing import Protocol

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "FrameSource",
    "PcmSource",
    "Sequence",
    "SilenceSource",
    "WavFormatError",
    "WavSource",
]

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
FRAME_BYTES = 2 * FRAME_SAMPLES
_SILENT_FRAME = bytes(FRAME_BYTES)


class FrameSource(Protocol):
    """Anything that produces 20 ms frames of 8 kHz int16 PCM."""

    def next_frame(self) -> bytes | None:
        """The next 320-octet frame, or None once the source is finished."""
        ...


class SilenceSource:
    """Silent frames, for `duration` seconds (rounded up to whole frames) or forever."""

    def __init__(self, duration: float | None = None) -> None:
        if duration is not None and duration < 0:
            raise ValueError("a duration cannot be negative")
        self._left = None if duration is None else -(-round(duration * 1000) // FRAME_MS)

    def next_frame(self) -> bytes | None:
        if self._left is not None:
            if self._left <= 0:
                return None
            self._left -= 1
        return _SILENT_FRAME


class PcmSource:
    """Frames cut from PCM held in memory; the last one is padded with silence."""

    def __init__(self, pcm: bytes) -> None:
        if len(pcm) % 2:
            raise ValueError("16-bit PCM must have an even number of octets")
        self._pcm = pcm
        self._offset = 0

    @property
    def duration(self) -> float:
        return len(self._pcm) / (2 * SAMPLE_RATE)

    def next_frame(self) -> bytes | None:
        start = self._offset
        if start >= len(self._pcm):
            return None
        self._offset = start + FRAME_BYTES
        frame = self._pcm[start : start + FRAME_BYTES]
        if len(frame) < FRAME_BYTES:
            frame += bytes(FRAME_BYTES - len(frame))
        return frame


class WavFormatError(ValueError):
    """A WAV file is not 8000 Hz 16-bit mono PCM, or is not a WAV file at all."""


class WavSource(PcmSource):
    """An 8000 Hz, 16-bit, mono PCM WAV file, played once.

    Nothing is resampled or mixed down: a prompt in any other format is refused
    with an error that says what the file is and how to convert it.  The file is
    read whole when the source is made (a minute is under 1 MB), so no file stays
    open while it plays.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        name = os.fspath(path)
        try:
            with wave.open(name, "rb") as wav:
                channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
                if (channels, width, rate) != (1, 2, SAMPLE_RATE):
                    raise WavFormatError(
                        f"{name}: {rate} Hz, {8 * width}-bit, {channels} channel(s); prompts must"
                        " be 8000 Hz 16-bit mono PCM (convert with e.g."
                        " `sox in.wav -r 8000 -b 16 -c 1 out.wav`)"
                    )
                pcm = wav.readframes(wav.getnframes())
        except (wave.Error, EOFError) as exc:
            raise WavFormatError(f"{name}: not a PCM WAV file ({exc})") from exc
        # A truncated data chunk may end in half a sample.
        super().__init__(pcm[: len(pcm) & ~1])


class Sequence:
    """The sources one after the other (a prompt, then a beep)."""

    def __init__(self, *sources: FrameSource) -> None:
        self._sources = list(sources)
        self._index = 0

    def next_frame(self) -> bytes | None:
        while self._index < len(self._sources):
            frame = self._sources[self._index].next_frame()
            if frame is not None:
                return frame
            self._index += 1
        return None
