"""Call progress tones as data, and a source that plays them.

A tone is one or more frequencies switched on and off by a cadence.  National
tone plans differ, so the tones come in named sets (ITU-T E.180 Supplement 2
lists what each country uses):

``eu`` (the default)
    The harmonised European plan (CEPT, ETSI TR 101 041): everything at 425 Hz.
    Dial tone continuous; ringback 1 s on, 4 s off; busy 0.5 s on, 0.5 s off;
    congestion 0.25 s on, 0.25 s off; call waiting two 0.2 s bursts 0.2 s
    apart, every 5 s.
``na``
    North America (the "precise tone plan"): dial tone 350+440 Hz;
    ringback 440+480 Hz 2 s on, 4 s off; busy 480+620 Hz 0.5/0.5 s; congestion
    (reorder) 480+620 Hz 0.25/0.25 s; call waiting 440 Hz for 0.3 s every 10 s.

Both have the voicemail beep, 1000 Hz for 0.25 s, played once, and the
confirmation of a feature code, three 0.1 s pips at 1400 Hz.  Levels are per
frequency: -10 dBm0 in the European set, the plan's own (-13 to -24 dBm0) in the
North American one.

Theory of operation
-------------------
Every sample is a sum of sines of the sample's absolute index, so the phase runs
on across frames and through the silent parts of a cadence.  With whole-number
frequencies at 8000 Hz the waveform repeats after 8000 / gcd(8000, f1, f2...)
samples, and a cadenced tone therefore repeats after the least common multiple of
that and the cadence cycle: the source renders that much once (cached per tone)
and afterwards only slices it, which keeps hundreds of simultaneous ringbacks
cheap.
"""

from __future__ import annotations

import functools
import math
from array import array
from dataclasses import dataclass, field

# The frame sources live in `sources`; they are importable from here as well.
from teleoffice.media.sources import (
    FRAME_BYTES,
    FRAME_MS,
    SAMPLE_RATE,
    FrameSource,
    PcmSource,
    Sequence,
    SilenceSource,
    WavFormatError,
    WavSource,
)

__all__ = [
    "DBM0_PEAK",
    "TONE_SETS",
    "FrameSource",
    "PcmSource",
    "Sequence",
    "SilenceSource",
    "Tone",
    "ToneSet",
    "ToneSource",
    "WavFormatError",
    "WavSource",
]

# Peak of a sine at 0 dBm0 in 16-bit units.  G.711 puts its overload point at
# +3.17 dBm0 (μ-law) or +3.14 dBm0 (A-law), i.e. a full-scale sine is about 3.15 dB
# above 0 dBm0: 32768 / 10^(3.15/20) is close to 22 700.
DBM0_PEAK = 22_700
# The longest waveform rendered for one tone (samples); 60 s is 960 kB.
_MAX_RENDER = 60 * SAMPLE_RATE


@dataclass(frozen=True, slots=True)
class Tone:
    """Frequencies (Hz) played at `level_dbm0` each, switched by a cadence.

    `cadence` alternates on and off times in seconds, starting with on; empty means
    continuous.  A tone that does not `repeat` plays its cadence once and ends.
    """

    name: str
    frequencies: tuple[int, ...]
    cadence: tuple[float, ...] = ()
    repeat: bool = True
    level_dbm0: float = -10.0

    def __post_init__(self) -> None:
        if not self.frequencies or not all(
            isinstance(f, int) and 0 < f < SAMPLE_RATE // 2 for f in self.frequencies
        ):
            raise ValueError(f"{self.name}: frequencies must be whole Hz below 4000")
        if any(t < 0 for t in self.cadence) or (self.cadence and sum(self.cadence) <= 0):
            raise ValueError(f"{self.name}: a cadence is made of non-negative times")
        if not self.cadence and not self.repeat:
            raise ValueError(f"{self.name}: a tone played once needs a cadence")
        if self.level_dbm0 > 3:
            raise ValueError(f"{self.name}: {self.level_dbm0} dBm0 is above G.711's range")

    @property
    def cycle(self) -> float:
        """Seconds of one cadence cycle (0 for a continuous tone)."""
        return sum(self.cadence)


@dataclass(frozen=True, slots=True)
class ToneSet:
    """The tones of one national plan; `ToneSet.named("eu")` picks one."""

    name: str
    dial: Tone
    ringback: Tone
    busy: Tone
    congestion: Tone
    call_waiting: Tone
    beep: Tone = field(default=Tone("beep", (1000,), (0.25,), repeat=False))
    # A feature code worked: three short 1400 Hz pips (no national plan defines
    # one for this; a short, high pattern is what PBXs commonly play).
    confirm: Tone = field(
        default=Tone("confirm", (1400,), (0.1, 0.1, 0.1, 0.1, 0.1, 0.1), repeat=False)
    )

    @staticmethod
    def named(name: str = "eu") -> ToneSet:
        try:
            return TONE_SETS[name]
        except KeyError:
            known = ", ".join(sorted(TONE_SETS))
            raise ValueError(f"unknown tone set {name!r} (known: {known})") from None


TONE_SETS: dict[str, ToneSet] = {
    "eu": ToneSet(
        name="eu",
        dial=Tone("dial", (425,)),
        ringback=Tone("ringback", (425,), (1.0, 4.0)),
        busy=Tone("busy", (425,), (0.5, 0.5)),
        congestion=Tone("congestion", (425,), (0.25, 0.25)),
        call_waiting=Tone("call_waiting", (425,), (0.2, 0.2, 0.2, 4.4)),
    ),
    "na": ToneSet(
        name="na",
        dial=Tone("dial", (350, 440), level_dbm0=-13.0),
        ringback=Tone("ringback", (440, 480), (2.0, 4.0), level_dbm0=-19.0),
        busy=Tone("busy", (480, 620), (0.5, 0.5), level_dbm0=-24.0),
        congestion=Tone("congestion", (480, 620), (0.25, 0.25), level_dbm0=-24.0),
        call_waiting=Tone("call_waiting", (440,), (0.3, 9.7), level_dbm0=-13.0),
    ),
}


@functools.lru_cache(maxsize=64)
def _render(tone: Tone) -> tuple[bytes, int]:
    """The tone's waveform up to the point where it repeats exactly (or ends).

    Returns the waveform followed by enough of its own beginning (or of silence,
    for a tone played once) that any frame can be sliced without wrapping, and
    the length in octets of the waveform proper.  Cached, so every source playing
    the same tone shares one copy.
    """
    period = SAMPLE_RATE // math.gcd(SAMPLE_RATE, *tone.frequencies)
    spans = [round(t * SAMPLE_RATE) for t in tone.cadence]
    cycle = sum(spans)
    if not tone.repeat:
        length = cycle
    elif cycle:
        length = math.lcm(cycle, period)
    else:
        length = period
    if length > _MAX_RENDER:
        raise ValueError(f"{tone.name}: the waveform only repeats after {length} samples")
    amplitude = DBM0_PEAK * 10 ** (tone.level_dbm0 / 20)
    steps = [2 * math.pi * f / SAMPLE_RATE for f in tone.frequencies]
    one_period = array("h")
    for n in range(period):
        value = round(amplitude * sum(math.sin(step * n) for step in steps))
        one_period.append(max(-32768, min(32767, value)))
    samples = bytearray(one_period.tobytes() * -(-length // period))
    del samples[2 * length :]
    # Silence the "off" parts (odd-numbered spans) of every cadence cycle.
    for cycle_start in range(0, length, cycle or length):
        position = cycle_start
        for index, span in enumerate(spans):
            if index % 2:
                end = min(position + span, length)
                samples[2 * position : 2 * end] = bytes(2 * (end - position))
            position += span
    if tone.repeat:
        tail = (bytes(samples) * -(-FRAME_BYTES // len(samples)))[:FRAME_BYTES]
    else:
        tail = bytes(FRAME_BYTES)
    return bytes(samples) + tail, 2 * length


class ToneSource:
    """Plays a tone in 20 ms frames, forever (if it repeats) or for `duration` s.

    `duration` is rounded up to whole frames; a tone that does not repeat ends
    after its cadence, the last frame padded with silence.
    """

    def __init__(self, tone: Tone, *, duration: float | None = None) -> None:
        if duration is not None and duration < 0:
            raise ValueError("a duration cannot be negative")
        self.tone = tone
        self._wave, self._length = _render(tone)
        self._repeat = tone.repeat
        self._offset = 0
        self._left = None if duration is None else -(-round(duration * 1000) // FRAME_MS)

    def next_frame(self) -> bytes | None:
        if self._left is not None:
            if self._left <= 0:
                return None
            self._left -= 1
        start = self._offset
        if self._repeat:
            self._offset = (start + FRAME_BYTES) % self._length
        elif start >= self._length:
            return None
        else:
            self._offset = start + FRAME_BYTES
        return self._wave[start : start + FRAME_BYTES]
