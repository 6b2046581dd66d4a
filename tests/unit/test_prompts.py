"""Tests of media.prompts: Asterisk's recordings, espeak-ng synthesis, conversion to 8 kHz."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import wave
from array import array
from pathlib import Path

import pytest

from teleoffice.calls import voicemail_menu
from teleoffice.media.analysis import dominant_frequency, goertzel_power, rms
from teleoffice.media.prompts import (
    DEFAULT_PROMPT_DIR,
    PROMPT_TEXTS,
    PromptLibrary,
    number_prompts,
    read_wav_as_8k,
    resample,
    spell_prompts,
)
from teleoffice.media.sources import FRAME_BYTES, WavSource

ASTERISK = DEFAULT_PROMPT_DIR
needs_asterisk = pytest.mark.skipif(
    not (ASTERISK / "vm-intro.wav").is_file(),
    reason="asterisk-core-sounds-en-wav is not installed (scripts/system-deps.sh run)",
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None,
    reason="espeak-ng is not installed (scripts/system-deps.sh run)",
)


def sine(freq: float, rate: int, seconds: float, amplitude: float = 10_000) -> bytes:
    count = round(rate * seconds)
    return array(
        "h", (round(amplitude * math.sin(2 * math.pi * freq * n / rate)) for n in range(count))
    ).tobytes()


def write_wav(path: Path, frames: bytes, *, rate: int, width: int = 2, channels: int = 1) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(frames)


def read_wav(path: Path) -> tuple[tuple[int, int, int], bytes]:
    with wave.open(str(path), "rb") as wav:
        params = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
        return params, wav.readframes(wav.getnframes())


def all_frames(source: object) -> bytes:
    frames = []
    while (frame := source.next_frame()) is not None:  # type: ignore[attr-defined]
        assert len(frame) == FRAME_BYTES
        frames.append(frame)
    return b"".join(frames)


# -- Asterisk's recordings ---------------------------------------------------------------


@needs_asterisk
def test_asterisk_recordings_are_used_as_they_are(tmp_path: Path) -> None:
    prompts = PromptLibrary(ASTERISK, tmp_path, espeak=None)
    for name in ("vm-intro", "vm-youhave", "vm-INBOX", "vm-Old", "beep", "digits/2"):
        path = prompts.path(name)
        assert path == ASTERISK / f"{name}.wav"
        params, audio = read_wav(path)
        assert params == (1, 2, 8000)
        assert rms(audio) > 100
    assert list(tmp_path.iterdir()) == []  # nothing converted or synthesised
    assert prompts.path("no-such-prompt") is None


@needs_asterisk
def test_every_prompt_the_menus_use_is_recorded_or_ours(tmp_path: Path) -> None:
    """The names come from the Debian package, except teleoffice's own prompts."""
    prompts = PromptLibrary(ASTERISK, tmp_path, espeak=None)
    for name in PROMPT_TEXTS:
        if name.startswith("teleoffice-"):
            assert prompts.path(name) is None
        else:
            assert prompts.path(name) is not None, name
    said = {n for k in (*range(1000), 1234, 56_789, 2_000_000) for n in number_prompts(k)}
    said |= set(spell_prompts("0123456789*#+abcxyz"))
    assert prompts.missing(sorted(said)) == []


def test_the_menus_name_only_prompts_with_a_text() -> None:
    """Every prompt the menu module names has words espeak-ng can say."""
    source = Path(voicemail_menu.__file__).read_text()
    named = set(re.findall(r'"((?:vm|teleoffice|auth|digits|letters)-?[A-Za-z0-9/-]+)"', source))
    assert {"vm-intro", "vm-review", "teleoffice-options-menu"} <= named
    library = PromptLibrary(None, Path("/nonexistent"), espeak=None)
    for name in named:
        assert library.text(name), name


@needs_asterisk
def test_the_default_folder_falls_back_to_debians_own(tmp_path: Path) -> None:
    prompts = PromptLibrary(DEFAULT_PROMPT_DIR, tmp_path, espeak=None)
    assert prompts.folder is not None
    assert (prompts.folder / "vm-goodbye.wav").is_file()


def test_a_missing_folder_is_no_folder(tmp_path: Path) -> None:
    prompts = PromptLibrary(tmp_path / "nowhere", tmp_path / "cache", espeak=None)
    assert prompts.folder is None
    assert prompts.path("vm-intro") is None


def test_recordings_in_other_formats_are_converted_once(tmp_path: Path) -> None:
    folder = tmp_path / "sounds"
    stereo = sine(1000, 16000, 0.5)
    interleaved = array("h")
    for left in array("h", stereo):
        interleaved += array("h", [left, left])
    write_wav(folder / "vm-intro.wav", interleaved.tobytes(), rate=16000, channels=2)
    eight_bit = bytes((v >> 8) + 128 for v in array("h", sine(425, 8000, 0.5)))
    write_wav(folder / "digits" / "7.wav", eight_bit, rate=8000, width=1)
    prompts = PromptLibrary(folder, tmp_path / "cache", espeak=None)

    path = prompts.path("vm-intro")
    assert path is not None
    assert path.parent == tmp_path / "cache" / "converted"
    params, audio = read_wav(path)
    assert params == (1, 2, 8000)
    assert len(audio) == 2 * 4000
    assert dominant_frequency(audio, (425, 1000, 2000)) == 1000
    assert rms(audio[1000:-1000]) == pytest.approx(10_000 / math.sqrt(2), rel=0.02)
    made = path.stat().st_mtime_ns
    again = PromptLibrary(folder, tmp_path / "cache", espeak=None).path("vm-intro")
    assert again == path
    assert path.stat().st_mtime_ns == made  # taken from the cache

    seven = prompts.path("digits/7")
    assert seven is not None
    _, audio = read_wav(seven)
    assert dominant_frequency(audio, (425, 1000)) == 425
    assert rms(audio) > 5000

    # A replaced recording is converted anew.
    write_wav(folder / "vm-intro.wav", sine(2000, 16000, 0.25), rate=16000)
    fresh = PromptLibrary(folder, tmp_path / "cache", espeak=None).path("vm-intro")
    assert fresh is not None
    assert fresh != path
    assert dominant_frequency(read_wav(fresh)[1], (1000, 2000)) == 2000


def test_an_unreadable_recording_is_no_recording(tmp_path: Path) -> None:
    folder = tmp_path / "sounds"
    folder.mkdir()
    (folder / "vm-intro.wav").write_bytes(b"RIFF junk that is not a WAV file")
    prompts = PromptLibrary(folder, tmp_path / "cache", espeak=None)
    assert prompts.path("vm-intro") is None


def test_prompt_names_are_checked(tmp_path: Path) -> None:
    prompts = PromptLibrary(tmp_path, tmp_path / "cache", espeak=None)
    for bad in ("", "../secret", "digits/../../x", "/etc/passwd", "a b", "digits/"):
        with pytest.raises(ValueError, match="prompt name"):
            prompts.path(bad)


# -- espeak-ng ---------------------------------------------------------------------------


@needs_espeak
def test_espeak_says_what_the_recordings_lack(tmp_path: Path) -> None:
    prompts = PromptLibrary(None, tmp_path, espeak="espeak-ng")
    path = prompts.path("teleoffice-options-menu")
    assert path is not None
    assert path.is_relative_to(tmp_path / "espeak")
    params, audio = read_wav(path)
    assert params == (1, 2, 8000)
    assert 1.5 < len(audio) / 16000 < 15  # a sentence, not a click
    assert rms(audio) > 300  # speech, not silence
    # Speech sits in the telephone band; resampling left nothing to alias above it.
    assert goertzel_power(audio, 500) + goertzel_power(audio, 1000) > 0
    source = prompts.source("teleoffice-options-menu")
    assert source is not None
    assert len(all_frames(source)) >= len(audio)

    digits = prompts.path("digits/42")
    assert digits is not None
    assert rms(read_wav(digits)[1]) > 300


@needs_espeak
def test_synthesised_prompts_are_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = PromptLibrary(None, tmp_path, espeak="espeak-ng").path("vm-goodbye")
    assert first is not None
    runs: list[object] = []

    def no_espeak(*args: object, **kwargs: object) -> None:
        runs.append(args)
        raise FileNotFoundError("espeak-ng has gone")

    monkeypatch.setattr(subprocess, "run", no_espeak)
    assert PromptLibrary(None, tmp_path, espeak="espeak-ng").path("vm-goodbye") == first
    assert runs == []  # served from the cache
    # Another text is another file, which would need espeak-ng again.
    other = PromptLibrary(None, tmp_path, espeak="espeak-ng", texts={"vm-goodbye": "Bye now."})
    assert other.text("vm-goodbye") == "Bye now."
    assert other.path("vm-goodbye") is None
    assert len(runs) == 1


@needs_espeak
@needs_asterisk
def test_recordings_come_before_synthesis(tmp_path: Path) -> None:
    prompts = PromptLibrary(ASTERISK, tmp_path, espeak="espeak-ng")
    assert prompts.path("vm-goodbye") == ASTERISK / "vm-goodbye.wav"
    ours = prompts.path("teleoffice-mailbox-options")
    assert ours is not None
    assert ours.is_relative_to(tmp_path)


def test_a_broken_espeak_is_given_up_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    false = shutil.which("false")
    assert false is not None
    calls: list[object] = []
    real_run = subprocess.run

    def counting_run(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return real_run(*args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(subprocess, "run", counting_run)
    prompts = PromptLibrary(None, tmp_path, espeak=false)
    assert prompts.path("vm-goodbye") is None
    assert prompts.path("vm-intro") is None
    assert len(calls) == 1  # not once per prompt
    assert not list((tmp_path / "espeak").glob("*.wav"))


def test_nothing_available_means_no_prompt(tmp_path: Path) -> None:
    prompts = PromptLibrary(None, tmp_path, espeak=None)
    assert prompts.path("vm-intro") is None
    assert prompts.source("vm-intro") is None
    assert all_frames(prompts.sequence(["vm-intro", "digits/2"])) == b""
    assert prompts.prepare() == 0
    missing = PromptLibrary(None, tmp_path, espeak="no-such-espeak-program")
    assert missing.espeak is None
    assert missing.path("vm-intro") is None


def test_a_prompt_without_words_is_not_synthesised(tmp_path: Path) -> None:
    prompts = PromptLibrary(None, tmp_path, espeak="espeak-ng")
    assert prompts.text("beep") is None  # a tone: the caller plays the beep tone instead
    assert prompts.text("vm-never-heard-of") is None
    assert prompts.path("vm-never-heard-of") is None
    assert prompts.text("digits/7") == "7"
    assert prompts.text("digits/star") == "star"
    assert prompts.text("letters/q") == "q"


def test_sequence_plays_the_prompts_in_order(tmp_path: Path) -> None:
    folder = tmp_path / "sounds"
    write_wav(folder / "one.wav", sine(500, 8000, 0.1), rate=8000)
    write_wav(folder / "two.wav", sine(1500, 8000, 0.1), rate=8000)
    prompts = PromptLibrary(folder, tmp_path / "cache", espeak=None)
    audio = all_frames(prompts.sequence(["one", "missing", "two"]))
    assert len(audio) == 2 * 1600
    assert dominant_frequency(audio[:1600], (500, 1500)) == 500
    assert dominant_frequency(audio[1600:], (500, 1500)) == 1500
    assert prompts.missing(["one", "missing", "two"]) == ["missing"]
    source = prompts.source("one")
    assert isinstance(source, WavSource)


# -- what says a number ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "names"),
    [
        (0, ["digits/0"]),
        (7, ["digits/7"]),
        (19, ["digits/19"]),
        (20, ["digits/20"]),
        (21, ["digits/20", "digits/1"]),
        (45, ["digits/40", "digits/5"]),
        (100, ["digits/1", "digits/hundred"]),
        (101, ["digits/1", "digits/hundred", "digits/1"]),
        (342, ["digits/3", "digits/hundred", "digits/40", "digits/2"]),
        (1000, ["digits/1", "digits/thousand"]),
        (2019, ["digits/2", "digits/thousand", "digits/19"]),
        (
            1_250_000,
            [
                "digits/1",
                "digits/million",
                "digits/2",
                "digits/hundred",
                "digits/50",
                "digits/thousand",
            ],
        ),
        (-3, ["digits/minus", "digits/3"]),
    ],
)
def test_number_prompts(number: int, names: list[str]) -> None:
    assert number_prompts(number) == names


def test_numbers_too_large_to_say() -> None:
    with pytest.raises(ValueError, match="too large"):
        number_prompts(10**9)


def test_spelling_an_extension() -> None:
    assert spell_prompts("201") == ["digits/2", "digits/0", "digits/1"]
    assert spell_prompts("*17#") == ["digits/star", "digits/1", "digits/7", "digits/pound"]
    assert spell_prompts("+49Ab") == [
        "letters/plus",
        "digits/4",
        "digits/9",
        "letters/a",
        "letters/b",
    ]
    assert spell_prompts("") == []
    with pytest.raises(ValueError, match="no prompt"):
        spell_prompts("2-1")


# -- resampling -------------------------------------------------------------------------------


def test_resampling_keeps_the_telephone_band() -> None:
    for freq in (300, 1000, 3000, 3400):
        out = resample(sine(freq, 22050, 0.5), 22050)
        assert len(out) == 2 * 4000
        middle = out[2000:-2000]  # away from the filter's run-in at the ends
        assert rms(middle) == pytest.approx(10_000 / math.sqrt(2), rel=0.01)
        assert dominant_frequency(middle, (300, 1000, 3000, 3400)) == freq


def test_resampling_filters_what_would_fold_back() -> None:
    # 6000 Hz sampled at 8 kHz would come back as 2000 Hz without the low-pass.
    for freq in (4600, 6000, 9000):
        out = resample(sine(freq, 22050, 0.5), 22050)
        assert rms(out[2000:-2000]) < 10_000 * 10 ** (-60 / 20)


@pytest.mark.parametrize("rate", [6000, 11025, 16000, 44100, 48000])
def test_resampling_other_rates(rate: int) -> None:
    out = resample(sine(1000, rate, 0.5), rate)
    assert len(out) == 2 * 4000
    assert dominant_frequency(out, (500, 1000, 2000)) == 1000
    assert rms(out[2000:-2000]) == pytest.approx(10_000 / math.sqrt(2), rel=0.01)


def test_resampling_edge_cases() -> None:
    pcm = sine(1000, 8000, 0.1)
    assert resample(pcm, 8000) == pcm
    assert resample(b"", 22050) == b""
    with pytest.raises(ValueError, match="even"):
        resample(b"\0", 22050)
    with pytest.raises(ValueError, match="positive"):
        resample(pcm, 0)
    loud = array("h", [32767, -32768] * 500).tobytes()
    assert len(resample(loud, 16000)) == 1000  # clipped into range, not an error


def test_read_wav_as_8k_rejects_what_is_not_a_wav(tmp_path: Path) -> None:
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"not a wav")
    with pytest.raises(ValueError, match="not a PCM WAV"):
        read_wav_as_8k(junk)
    wide = tmp_path / "24bit.wav"
    samples24 = b"".join(
        int(v * 256).to_bytes(3, "little", signed=True) for v in array("h", sine(1000, 8000, 0.2))
    )
    write_wav(wide, samples24, rate=8000, width=3)
    assert dominant_frequency(read_wav_as_8k(wide), (500, 1000)) == 1000
