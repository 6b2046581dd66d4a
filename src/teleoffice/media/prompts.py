"""Spoken prompts: Asterisk's recorded sounds, espeak-ng for what is missing.

Prompts are named the way Asterisk names its sound files ("vm-intro",
"digits/2", "beep"), so the recorded English set Debian ships as
``asterisk-core-sounds-en-wav`` (under /usr/share/asterisk/sounds/en) is used
as it is.  A prompt that set lacks (or a machine without it) is synthesised
once with espeak-ng from a fixed English text and kept in a cache folder; a
prompt with neither is None, and callers carry on with tones only.

Theory of operation
-------------------
Everything played into a call is 8000 Hz 16-bit mono PCM (`sources`).  The
Asterisk files already are (every file of the Debian package, checked), but a
site may point the prompt folder at recordings of its own, and espeak-ng writes
22050 Hz; anything else is converted once into the cache:

* mixed down to mono and widened or narrowed to 16 bits;
* resampled by a windowed-sinc low-pass filter evaluated at each output
  instant (a polyphase filter: the ratio of the rates is a fraction L/M, so only
  L distinct filter phases exist and they are computed once).  The cut-off is
  half the lower rate and the transition band 15 % of the lower rate wide,
  centred on it: with a Blackman window (stop band below -74 dB) nothing
  folds back into the telephone band, 300-3400 Hz, when going down to 8 kHz.

Cached files are named after the prompt and a hash of what produced them (the
text and voice, or the source file's size and time), so changing a text or
replacing a recording makes a new entry instead of serving a stale one; they are
written with `WavWriter`, so a crash never leaves half a prompt behind.

Reading files and running espeak-ng blocks: asyncio callers go through
`asyncio.to_thread`, or call `prepare()` once at start-up.
"""

from __future__ import annotations

import hashlib
import logging
import math
import operator
import re
import shutil
import subprocess
import tempfile
import threading
import wave
from array import array
from collections.abc import Iterable, Mapping
from fractions import Fraction
from pathlib import Path

from teleoffice.media.sources import (
    SAMPLE_RATE,
    FrameSource,
    Sequence,
    WavFormatError,
    WavSource,
)
from teleoffice.media.wavfile import WavWriter

__all__ = [
    "DEFAULT_PROMPT_DIR",
    "PROMPT_TEXTS",
    "PromptLibrary",
    "number_prompts",
    "read_wav_as_8k",
    "resample",
    "spell_prompts",
]

log = logging.getLogger(__name__)

DEFAULT_PROMPT_DIR = Path("/usr/share/asterisk/sounds/en")
# Debian's asterisk-core-sounds-en-wav installs here; the `en` link above comes
# from asterisk-core-sounds-en (only "recommended"), so it may be missing.
_DEBIAN_ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")

_ESPEAK_TIMEOUT = 20.0  # seconds; a prompt takes well under one
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")

# What each prompt says: the words of Asterisk's recording where one exists (so
# a synthesised replacement says the same thing), and teleoffice's own prompts,
# which only espeak-ng provides ("teleoffice-" names).  Digits and letters are
# derived from their names (see `_text_for`).
PROMPT_TEXTS: Mapping[str, str] = {
    "auth-thankyou": "Thank you.",
    "beep": "",  # a tone, not words: see `_text_for`
    "vm-and": "and",
    "vm-delete": "Press 7 to delete this message.",
    "vm-deleted": "Message deleted.",
    "vm-extension": "extension",
    "vm-first": "first",
    "vm-from-phonenumber": "message from phone number",
    "vm-goodbye": "Goodbye.",
    "vm-helpexit": "Press star for help or pound to exit.",
    "vm-INBOX": "new",
    "vm-incorrect": "Login incorrect.",
    "vm-intro": (
        "Please leave your message after the tone. When done, hang up or press the pound key."
    ),
    "vm-isonphone": "is on the phone.",
    "vm-isunavail": "is unavailable.",
    "vm-last": "last",
    "vm-message": "message",
    "vm-messages": "messages",
    "vm-msgsaved": "Your message has been saved.",
    "vm-next": "Press 6 to play the next message.",
    "vm-no": "no",
    "vm-nomore": "No more messages.",
    "vm-Old": "old",
    "vm-onefor": "Press 1 for",
    "vm-password": "password",
    "vm-prev": "Press 4 for the previous message.",
    "vm-rec-unv": "After the tone, say your unavailable message, and then press the pound key.",
    "vm-repeat": "Press 5 to repeat the current message.",
    "vm-review": (
        "Press 1 to accept this recording. Press 2 to listen to it. Press 3 to re-record"
        " your message."
    ),
    "vm-savemessage": "or 9 to save this message.",
    "vm-sorry": "I'm sorry, I did not understand your response.",
    "vm-theperson": "The person at extension",
    "vm-tooshort": "Your message is too short.",
    "vm-unknown-caller": "from an unknown caller",
    "vm-youhave": "You have",
    # teleoffice's own: the Asterisk set words these differently, for keys it
    # assigns otherwise (its "vm-options" offers busy and temporary greetings).
    "teleoffice-mailbox-options": "Press 0 for mailbox options.",
    "teleoffice-options-menu": (
        "Press 1 to record your greeting. Press star to return to the main menu, or pound to exit."
    ),
    "teleoffice-first-message": "Press 1 to listen to your messages.",
}

# Spoken names of the characters an extension may hold besides digits and letters.
_SYMBOL_PROMPTS = {"*": "digits/star", "#": "digits/pound", "+": "letters/plus"}
_SYMBOL_TEXTS = {"digits/star": "star", "digits/pound": "pound", "letters/plus": "plus"}
_NUMBER_WORDS = {"digits/hundred": "hundred", "digits/thousand": "thousand"}
_NUMBER_WORDS |= {"digits/million": "million", "digits/minus": "minus"}


def _text_for(name: str) -> str | None:
    """The English text espeak-ng says for `name`, None when there is none."""
    text = PROMPT_TEXTS.get(name)
    if text is not None:
        return text or None
    if name in _SYMBOL_TEXTS:
        return _SYMBOL_TEXTS[name]
    if name in _NUMBER_WORDS:
        return _NUMBER_WORDS[name]
    folder, _, leaf = name.partition("/")
    if folder == "digits" and leaf.isdigit():
        return str(int(leaf))
    if folder == "letters" and len(leaf) == 1 and leaf.isalpha():
        return leaf
    return None


# -- which prompts say a number or an extension ---------------------------------------


def number_prompts(number: int) -> list[str]:
    """The prompts that say `number` in English, as Asterisk's digits/ files do.

    42 is "digits/40", "digits/2"; 305 is "digits/3", "digits/hundred", "digits/5".
    """
    if number < 0:
        return ["digits/minus", *number_prompts(-number)]
    if number >= 1_000_000_000:
        raise ValueError(f"{number} is too large to be said")
    if number < 20:
        return [f"digits/{number}"]
    if number < 100:
        tens, units = divmod(number, 10)
        return [f"digits/{10 * tens}"] + ([f"digits/{units}"] if units else [])
    for size, word in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if number >= size:
            high, rest = divmod(number, size)
            return [
                *number_prompts(high),
                f"digits/{word}",
                *(number_prompts(rest) if rest else []),
            ]
    raise AssertionError("unreachable")  # pragma: no cover


def spell_prompts(text: str) -> list[str]:
    """The prompts that spell `text` one character at a time (an extension: "2 0 1")."""
    names = []
    for char in text:
        if char.isdigit() and char.isascii():
            names.append(f"digits/{char}")
        elif char.isalpha() and char.isascii():
            names.append(f"letters/{char.lower()}")
        elif char in _SYMBOL_PROMPTS:
            names.append(_SYMBOL_PROMPTS[char])
        else:
            raise ValueError(f"no prompt says {char!r} (in {text!r})")
    return names


# -- converting audio to 8 kHz 16-bit mono ----------------------------------------------


def _blackman(position: float, half_width: float) -> float:
    x = position / half_width
    if abs(x) >= 1:
        return 0.0
    return 0.42 + 0.5 * math.cos(math.pi * x) + 0.08 * math.cos(2 * math.pi * x)


def resample(pcm: bytes, rate: int, target: int = SAMPLE_RATE) -> bytes:
    """16-bit mono PCM at `rate` Hz resampled to `target` Hz, low-pass filtered.

    See the module's theory of operation for the filter.
    """
    if rate <= 0 or target <= 0:
        raise ValueError("sample rates must be positive")
    if len(pcm) % 2:
        raise ValueError("16-bit PCM must have an even number of octets")
    if rate == target or not pcm:
        return pcm
    ratio = Fraction(target, rate).limit_denominator(10_000)
    up, down = ratio.numerator, ratio.denominator
    lower = min(rate, target)
    cutoff = lower / 2 / rate  # cycles per input sample
    transition = 0.15 * lower / rate
    # Blackman: transition width about 5.5 / taps, so half of that each side.
    half = math.ceil(2.75 / transition)
    taps = 2 * half
    phases: list[list[float]] = []
    for phase in range(up):
        offset = phase / up  # where the output falls between input samples
        coefficients = []
        for j in range(taps):
            # Tap j multiplies input sample (i - half + 1 + j); its distance from
            # the output instant i + offset is:
            distance = offset + half - 1 - j
            x = 2 * cutoff * distance
            sinc = 1.0 if x == 0 else math.sin(math.pi * x) / (math.pi * x)
            coefficients.append(sinc * _blackman(distance, half))
        total = math.fsum(coefficients)  # unit gain at DC, whatever the phase
        phases.append([c / total for c in coefficients])
    source = array("h")
    source.frombytes(pcm)
    padded = [0.0] * half + [float(v) for v in source] + [0.0] * half
    count = -(-len(source) * up // down)
    out = array("h", bytes(2 * count))
    mul = operator.mul
    for n in range(count):
        i, phase = divmod(n * down, up)
        # padded[i + 1 + j] is input sample i - half + 1 + j.
        window = padded[i + 1 : i + 1 + taps]
        value = round(sum(map(mul, phases[phase], window)))
        out[n] = max(-32768, min(32767, value))
    return out.tobytes()


def _to_mono16(frames: bytes, width: int, channels: int) -> bytes:
    """Interleaved PCM of any common width as 16-bit mono (channels averaged)."""
    if width == 1:  # 8-bit WAV is unsigned
        values = [(b - 128) << 8 for b in frames]
    elif width in (2, 3, 4):
        kind = {2: "h", 4: "i"}.get(width)
        if kind is not None:
            wide = array(kind)
            wide.frombytes(frames[: len(frames) - len(frames) % width])
            shift = 8 * (width - 2)
            values = [v >> shift for v in wide]
        else:  # 24-bit: the top two octets of each sample
            values = [
                int.from_bytes(frames[k + 1 : k + 3], "little", signed=True)
                for k in range(0, len(frames) - 2, 3)
            ]
    else:
        raise WavFormatError(f"{8 * width}-bit samples are not supported")
    if channels > 1:
        values = [
            sum(values[k : k + channels]) // channels
            for k in range(0, len(values) - channels + 1, channels)
        ]
    return array("h", values).tobytes()


def read_wav_as_8k(path: Path) -> bytes:
    """The audio of a PCM WAV file as 8000 Hz 16-bit mono PCM; `WavFormatError` if unreadable."""
    try:
        with wave.open(str(path), "rb") as wav:
            channels, width, rate = wav.getnchannels(), wav.getsampwidth(), wav.getframerate()
            frames = wav.readframes(wav.getnframes())
    except (wave.Error, EOFError) as exc:
        raise WavFormatError(f"{path}: not a PCM WAV file ({exc})") from exc
    return resample(_to_mono16(frames, width, channels), rate)


def _is_8k_mono16(path: Path) -> bool:
    try:
        with wave.open(str(path), "rb") as wav:
            return (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (
                1,
                2,
                SAMPLE_RATE,
            )
    except (wave.Error, EOFError):
        return False


def _write_wav(path: Path, pcm: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with WavWriter(path) as writer:
        writer.write(pcm)
        writer.commit()


def _cache_name(name: str, recipe: str) -> str:
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    return f"{name.replace('/', '_')}-{digest}.wav"


class PromptLibrary:
    """Finds or makes the 8 kHz WAV file of each prompt.

    `folder` holds Asterisk-style sound files (None: none; a missing folder is the
    same as none); `cache_dir` is where converted and synthesised prompts are
    kept; `espeak` is the espeak-ng program (None, or not installed: no synthesis).
    """

    def __init__(
        self,
        folder: Path | None,
        cache_dir: Path,
        espeak: str | None = "espeak-ng",
        *,
        voice: str = "en-us",
        texts: Mapping[str, str] | None = None,
    ) -> None:
        self.folder = _existing_folder(folder)
        self.cache_dir = Path(cache_dir)
        self.espeak = shutil.which(espeak) if espeak else None
        self.voice = voice
        self._texts = dict(texts or {})
        self._lock = threading.Lock()
        self._found: dict[str, Path | None] = {}
        self._espeak_failed = False

    def text(self, name: str) -> str | None:
        """What prompt `name` says, as espeak-ng would be asked to say it."""
        return self._texts.get(name) or _text_for(name)

    def path(self, name: str) -> Path | None:
        """The 8 kHz 16-bit mono WAV file of prompt `name`, or None if there is none."""
        if not _NAME.fullmatch(name) or ".." in name:
            raise ValueError(f"{name!r} is not a prompt name")
        with self._lock:
            if name in self._found:
                found = self._found[name]
                if found is None or found.exists():
                    return found
            found = self._recorded(name) or self._synthesised(name)
            self._found[name] = found
            return found

    def source(self, name: str) -> FrameSource | None:
        """A frame source playing prompt `name` once, or None if there is none."""
        path = self.path(name)
        if path is None:
            return None
        try:
            return WavSource(path)
        except (WavFormatError, OSError):
            log.warning("prompt %s: %s is unreadable", name, path, exc_info=True)
            return None

    def sequence(self, names: Iterable[str]) -> FrameSource:
        """The prompts one after the other; missing ones are left out (possibly all)."""
        return Sequence(*(s for s in map(self.source, names) if s is not None))

    def missing(self, names: Iterable[str]) -> list[str]:
        """Those of `names` that have neither a recording nor a synthesised version."""
        return [name for name in names if self.path(name) is None]

    def prepare(self, names: Iterable[str] | None = None) -> int:
        """Find or synthesise `names` (default: every prompt of `PROMPT_TEXTS` and the
        digits) now, so no call waits for espeak-ng; returns how many are available."""
        if names is None:
            names = [n for n in PROMPT_TEXTS if n != "beep"] + [
                f"digits/{n}" for n in (*range(20), *range(20, 100, 10))
            ]
        return sum(self.path(name) is not None for name in names)

    # -- the two ways of getting a prompt ---------------------------------------------

    def _recorded(self, name: str) -> Path | None:
        if self.folder is None:
            return None
        path = self.folder / f"{name}.wav"
        if not path.is_file():
            return None
        if _is_8k_mono16(path):
            return path
        try:
            stat = path.stat()
            cached = (
                self.cache_dir
                / "converted"
                / _cache_name(name, f"{path}:{stat.st_size}:{stat.st_mtime_ns}")
            )
            if not cached.exists():
                _write_wav(cached, read_wav_as_8k(path))
        except (WavFormatError, OSError):
            log.warning("prompt %s: cannot convert %s to 8 kHz", name, path, exc_info=True)
            return None
        return cached

    def _synthesised(self, name: str) -> Path | None:
        text = self.text(name)
        if text is None or self.espeak is None or self._espeak_failed:
            return None
        cached = self.cache_dir / "espeak" / _cache_name(name, f"{self.voice}\n{text}")
        if cached.exists():
            return cached
        try:
            cached.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=cached.parent) as scratch:
                raw = Path(scratch) / "espeak.wav"
                subprocess.run(  # noqa: S603 - a fixed program, text as one argument
                    [self.espeak, "-v", self.voice, "-w", str(raw), "--", text],
                    check=True,
                    capture_output=True,
                    timeout=_ESPEAK_TIMEOUT,
                )
                pcm = read_wav_as_8k(raw)
            _write_wav(cached, pcm)
        except (OSError, subprocess.SubprocessError, WavFormatError):
            # One failure (a broken install) would repeat for every prompt: give up.
            log.warning(
                "espeak-ng could not synthesise %r; prompts without it", text, exc_info=True
            )
            self._espeak_failed = True
            return None
        return cached


def _existing_folder(folder: Path | None) -> Path | None:
    if folder is None:
        return None
    folder = Path(folder)
    if folder.is_dir():
        return folder
    if folder == DEFAULT_PROMPT_DIR and _DEBIAN_ALLISON.is_dir():
        return _DEBIAN_ALLISON
    log.info("prompt folder %s does not exist; using synthesised prompts only", folder)
    return None
