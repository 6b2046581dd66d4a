"""Tests of media.tones, media.sources and media.analysis."""

from __future__ import annotations

import math
import wave
from array import array
from pathlib import Path

import pytest

from teleoffice.media.analysis import dominant_frequency, goertzel_power, rms, samples
from teleoffice.media.sources import FRAME_BYTES, FrameSource
from teleoffice.media.tones import (
    DBM0_PEAK,
    TONE_SETS,
    PcmSource,
    Sequence,
    SilenceSource,
    Tone,
    ToneSet,
    ToneSource,
    WavFormatError,
    WavSource,
)

CANDIDATES = (350, 425, 440, 480, 620, 1000)


def frames(source: FrameSource, limit: int = 10_000) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < limit and (frame := source.next_frame()) is not None:
        out.append(frame)
    return out


def sine(freq: float, amplitude: float, count: int) -> bytes:
    return array(
        "h", (round(amplitude * math.sin(2 * math.pi * freq * n / 8000)) for n in range(count))
    ).tobytes()


def on_off(source: FrameSource, count: int) -> str:
    """One character per frame: '#' when the tone sounds, '.' when silent."""
    return "".join("#" if rms(f) > 100 else "." for f in frames(source, count))


# -- analysis ---------------------------------------------------------------------


def test_goertzel_power_of_a_sine_is_its_mean_square() -> None:
    tone = sine(425, 10_000, 1600)
    assert goertzel_power(tone, 425) == pytest.approx(10_000**2 / 2, rel=0.01)
    assert goertzel_power(tone, 1000) < 10_000**2 / 2 / 1000
    assert goertzel_power(bytes(3200), 425) == 0.0
    assert goertzel_power(b"", 425) == 0.0


def test_dominant_frequency_and_rms() -> None:
    mix = array("h", samples(sine(440, 8000, 800)))
    for i, v in enumerate(samples(sine(1000, 2000, 800))):
        mix[i] += v
    assert dominant_frequency(mix.tobytes(), CANDIDATES) == 440
    assert rms(sine(1000, 10_000, 800)) == pytest.approx(10_000 / math.sqrt(2), rel=0.01)
    assert rms(b"") == 0.0
    with pytest.raises(ValueError, match="candidate"):
        dominant_frequency(mix.tobytes(), [])


# -- tones ------------------------------------------------------------------------


def test_eu_is_the_default_tone_set() -> None:
    assert ToneSet.named() is TONE_SETS["eu"]
    assert ToneSet.named("na").ringback.frequencies == (440, 480)
    with pytest.raises(ValueError, match="unknown tone set"):
        ToneSet.named("xx")


@pytest.mark.parametrize("set_name", sorted(TONE_SETS))
@pytest.mark.parametrize(
    "tone_name", ["dial", "ringback", "busy", "congestion", "call_waiting", "beep"]
)
def test_every_tone_has_its_frequencies(set_name: str, tone_name: str) -> None:
    tone: Tone = getattr(TONE_SETS[set_name], tone_name)
    audio = b"".join(frames(ToneSource(tone), 10))  # the first 200 ms are "on" for all
    assert rms(audio) > 300
    expected = set(tone.frequencies)
    powers = {f: goertzel_power(audio, f) for f in CANDIDATES}
    strongest = sorted(powers, key=powers.__getitem__, reverse=True)[: len(expected)]
    assert set(strongest) == expected


def test_eu_ringback_cadence_one_second_on_four_off() -> None:
    pattern = on_off(ToneSource(ToneSet.named("eu").ringback), 500)
    assert pattern == ("#" * 50 + "." * 200) * 2


def test_na_ringback_cadence_two_seconds_on_four_off() -> None:
    pattern = on_off(ToneSource(ToneSet.named("na").ringback), 300)
    assert pattern == "#" * 100 + "." * 200


def test_busy_and_congestion_cadences() -> None:
    assert on_off(ToneSource(ToneSet.named().busy), 100) == ("#" * 25 + "." * 25) * 2
    congestion = on_off(ToneSource(ToneSet.named().congestion), 100)
    # 0.25 s is 12.5 frames: the frame across each edge holds both.
    assert congestion.count("#") in range(50, 54)
    assert congestion.startswith("#" * 12)


def test_call_waiting_is_a_short_double_burst_then_silence() -> None:
    pattern = on_off(ToneSource(ToneSet.named().call_waiting), 500)
    burst = "#" * 10 + "." * 10 + "#" * 10 + "." * 220
    assert pattern == burst * 2


def test_beep_is_played_once_then_ends() -> None:
    beep = ToneSource(ToneSet.named().beep)
    out = frames(beep)
    assert len(out) == 13  # 0.25 s is 12.5 frames; the last is padded
    assert all(len(f) == FRAME_BYTES for f in out)
    assert out[-1][160:] == bytes(160)
    assert beep.next_frame() is None
    assert dominant_frequency(b"".join(out), CANDIDATES) == 1000


def test_phase_runs_on_across_frames() -> None:
    tone = ToneSet.named().dial
    audio = samples(b"".join(frames(ToneSource(tone), 30)))
    amplitude = DBM0_PEAK * 10 ** (tone.level_dbm0 / 20)
    for n, value in enumerate(audio):
        assert abs(value - amplitude * math.sin(2 * math.pi * 425 * n / 8000)) <= 1


def test_phase_runs_on_through_the_off_part_of_a_cadence() -> None:
    tone = ToneSet.named().busy
    audio = samples(b"".join(frames(ToneSource(tone), 200)))  # 4 s, with wrap-arounds
    amplitude = DBM0_PEAK * 10 ** (tone.level_dbm0 / 20)
    for n in range(8000, 12000):  # the second "on" period
        assert abs(audio[n] - amplitude * math.sin(2 * math.pi * 425 * n / 8000)) <= 1


def test_level_follows_dbm0() -> None:
    audio = b"".join(frames(ToneSource(ToneSet.named().dial), 50))
    expected = DBM0_PEAK * 10 ** (-10 / 20) / math.sqrt(2)
    assert rms(audio) == pytest.approx(expected, rel=0.01)


def test_tone_source_duration() -> None:
    assert len(frames(ToneSource(ToneSet.named().ringback, duration=0.5))) == 25
    assert len(frames(ToneSource(ToneSet.named().dial, duration=0.01))) == 1
    with pytest.raises(ValueError, match="negative"):
        ToneSource(ToneSet.named().dial, duration=-1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frequencies": ()},
        {"frequencies": (425.5,)},
        {"frequencies": (5000,)},
        {"frequencies": (425,), "cadence": (-1.0, 1.0)},
        {"frequencies": (425,), "repeat": False},
        {"frequencies": (425,), "level_dbm0": 6.0},
    ],
)
def test_impossible_tones_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="x"):
        Tone("x", **kwargs)  # type: ignore[arg-type]


# -- other sources ----------------------------------------------------------------


def test_silence_and_sequence() -> None:
    assert frames(SilenceSource(0.1)) == [bytes(FRAME_BYTES)] * 5
    assert len(frames(SilenceSource(), 300)) == 300
    prompt = PcmSource(sine(425, 5000, 200))  # 25 ms: one full frame and a padded one
    sequence = Sequence(prompt, SilenceSource(0), ToneSource(ToneSet.named().beep))
    out = frames(sequence)
    assert len(out) == 2 + 13
    assert out[1][80:] == bytes(FRAME_BYTES - 80)
    assert sequence.next_frame() is None


def write_wav(path: Path, *, rate: int = 8000, width: int = 2, channels: int = 1) -> None:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(bytes(width * channels * 1000))


def test_wav_source_plays_8khz_mono_16bit(tmp_path: Path) -> None:
    path = tmp_path / "prompt.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(8000)
        wav.writeframes(sine(425, 8000, 8100))  # 1.0125 s
    source = WavSource(path)
    assert source.duration == pytest.approx(1.0125)
    out = frames(source)
    assert len(out) == 51
    assert out[-1][200:] == bytes(FRAME_BYTES - 200)
    assert dominant_frequency(b"".join(out), CANDIDATES) == 425


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rate": 16000}, "16000 Hz"),
        ({"channels": 2}, "2 channel"),
        ({"width": 1}, "8-bit"),
    ],
)
def test_wav_source_refuses_other_formats(
    tmp_path: Path, kwargs: dict[str, int], message: str
) -> None:
    path = tmp_path / "prompt.wav"
    write_wav(path, **kwargs)
    with pytest.raises(WavFormatError, match=message):
        WavSource(path)


def test_wav_source_refuses_what_is_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "prompt.wav"
    path.write_bytes(b"ID3 this is an mp3")
    with pytest.raises(WavFormatError, match="not a PCM WAV"):
        WavSource(path)
