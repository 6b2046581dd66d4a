"""Structured mutations of valid inputs, the fuzzers' raw material.

Random bytes almost never get past a parser's first check, so each fuzzer
starts from a corpus of valid inputs (messages real phones send, documents we
build) and applies a few of the mutations attackers and broken peers produce:

- bit and byte damage: a flipped byte, a byte set to one that matters to the
  grammar (quote, colon, angle bracket, NUL, CR, LF, a high byte);
- cuts: truncation, a deleted range, a line dropped or two lines swapped, the
  head of one input spliced onto the tail of another;
- growth: a line (a header field) repeated up to thousands of times, a region
  repeated, a run of one character up to past 64 KiB inserted anywhere;
- encodings: the text re-encoded as UTF-16/32 or Latin-1, a byte-order mark,
  malformed UTF-8 (overlong forms, lone surrogates, truncated sequences),
  non-ASCII letters and line separators, other line ends (LF, CR, CR CR LF);
- numbers: a digit run replaced by zero, negatives, 2**32, 20 digits, other
  scripts' digits, hex or exponent notation;
- grammar: a token of the format (given per fuzzer) inserted anywhere, header
  folding, the case of a region swapped.

The strategies are hypothesis composites, so failures shrink to a seed and the
fewest, smallest mutations that still break the property.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence

from hypothesis import settings
from hypothesis import strategies as st

# No mutant grows past this: enough to cross every size limit of the code under
# test (64 KiB bodies and messages) without making one example slow.
MAX_MUTANT = 256 * 1024

GRAMMAR_BYTES = b"\x00\t\n\r \"#%&',-./:;<=>?@[\\]`{}~\x7f\x80\xa0\xc0\xc3\xed\xfe\xff"

# Tokens that mean something in several of the formats fuzzed here.
COMMON_TOKENS: tuple[bytes, ...] = (
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"\r\n ",
    b'"',
    b'\\"',
    b"\\",
    b"<",
    b">",
    b"=",
    b",",
    b";",
    b":",
    b"%",
    b"%00",
    b"%ZZ",
    b"\x00",
    b"\xff\xfe",
    b"\xef\xbb\xbf",
)

NON_ASCII: tuple[bytes, ...] = (
    "é".encode(),
    "ß".encode(),
    "€".encode(),
    "\u00a0".encode(),
    "\u2028".encode(),
    "\u0085".encode(),
    "\ufeff".encode(),
    "\U0001d11e".encode(),
    "٣".encode(),
    b"\xed\xa0\x80",  # a lone surrogate, UTF-8 style
    b"\xc0\xaf",  # overlong "/"
    b"\xe0\x80\xaf",  # overlong "/" again
    b"\xe2\x82",  # truncated sequence
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\x80",  # lone continuation byte
)

NUMBERS: tuple[bytes, ...] = (
    b"0",
    b"00000000000000000000000001",
    b"-1",
    b"+5",
    b"4294967296",
    b"2147483648",
    b"18446744073709551616",
    b"99999999999999999999999999999999999999",
    b"1e9",
    b"0x1F",
    "٣".encode(),
    "１".encode(),
    b"1_000",
    b" 5 ",
    b"",
)

ENCODINGS = ("utf-16", "utf-16-be", "utf-32", "latin-1", "cp1252", "utf-8-sig", "utf-7")
REPEATS = (2, 3, 17, 100, 300, 1000, 5000)
RUN_LENGTHS = (100, 1024, 8192, 65536, 70000)
LINE_ENDS = (b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r\n\r\n")

_DIGITS = re.compile(rb"[0-9]+")


def fuzzing(scale: float = 1.0) -> settings:
    """The settings of a fuzz test: the profile of this run, `scale` times the examples.

    `HYPOTHESIS_PROFILE=fuzz` (as `make fuzz` sets) selects the long profile;
    anything else the bounded one the suite runs (see tests/fuzz/conftest.py).
    """
    name = "fuzz" if os.environ.get("HYPOTHESIS_PROFILE") == "fuzz" else "fuzz-suite"
    profile = settings.get_profile(name)
    return settings(profile, max_examples=max(1, round(profile.max_examples * scale)))


def _cap(data: bytes) -> bytes:
    return data[:MAX_MUTANT]


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


MutationStep = Callable[[st.DrawFn, bytes, Sequence[bytes], Sequence[bytes]], bytes]


def _position(draw: st.DrawFn, data: bytes) -> int:
    return draw(st.integers(0, len(data)))


def _flip(draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    if not data:
        return data
    pos = draw(st.integers(0, len(data) - 1))
    mask = draw(st.integers(1, 255))
    return data[:pos] + bytes([data[pos] ^ mask]) + data[pos + 1 :]


def _set_byte(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    if not data:
        return data
    pos = draw(st.integers(0, len(data) - 1))
    value = draw(st.sampled_from(GRAMMAR_BYTES))
    return data[:pos] + bytes([value]) + data[pos + 1 :]


def _insert_token(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    pos = _position(draw, data)
    token = draw(st.sampled_from([*tokens, *COMMON_TOKENS]))
    return data[:pos] + token + data[pos:]


def _insert_random(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    pos = _position(draw, data)
    return data[:pos] + draw(st.binary(min_size=1, max_size=16)) + data[pos:]


def _delete(draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    start = _position(draw, data)
    length = draw(st.integers(1, 64))
    return data[:start] + data[start + length :]


def _truncate(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    return data[: _position(draw, data)]


def _splice(draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    other = draw(st.sampled_from(seeds))
    return data[: _position(draw, data)] + other[_position(draw, other) :]


def _repeat_line(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    lines = _lines(data)
    index = draw(st.integers(0, len(lines) - 1))
    count = draw(st.sampled_from(REPEATS))
    if len(lines[index]) * count > MAX_MUTANT:
        count = max(2, MAX_MUTANT // max(1, len(lines[index])))
    return _cap(b"\n".join([*lines[:index], *[lines[index]] * count, *lines[index + 1 :]]))


def _repeat_region(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    start = _position(draw, data)
    region = data[start : start + draw(st.integers(1, 400))]
    count = draw(st.sampled_from(REPEATS))
    return _cap(data[: start + len(region)] + region * count + data[start + len(region) :])


def _long_run(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    pos = _position(draw, data)
    unit = draw(st.sampled_from([b"a", b"1", b" ", b";", b",", b"<", b'"', b"%41", b"\t", b"\\"]))
    length = draw(st.sampled_from(RUN_LENGTHS))
    return _cap(data[:pos] + unit * (length // len(unit)) + data[pos:])


def _line_ends(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    new = draw(st.sampled_from(LINE_ENDS))
    normalised = data.replace(b"\r\n", b"\n")
    if draw(st.booleans()):
        return normalised.replace(b"\n", new)
    # Only the first few: a message whose line ends change half way through.
    return normalised.replace(b"\n", new, draw(st.integers(1, 5)))


def _reencode(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    text = data.decode("utf-8", errors="replace")
    codec = draw(st.sampled_from(ENCODINGS))
    return text.encode(codec, errors="replace")


def _non_ascii(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    pos = _position(draw, data)
    return data[:pos] + draw(st.sampled_from(NON_ASCII)) + data[pos:]


def _number(draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    runs = list(_DIGITS.finditer(data))
    if not runs:
        return data
    run = draw(st.sampled_from(runs))
    return data[: run.start()] + draw(st.sampled_from(NUMBERS)) + data[run.end() :]


def _fold(draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]) -> bytes:
    pos = _position(draw, data)
    return (
        data[:pos]
        + draw(st.sampled_from([b"\r\n ", b"\r\n\t", b"\n ", b"\r\n \r\n "]))
        + data[pos:]
    )


def _swap_case(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    start = _position(draw, data)
    end = start + draw(st.integers(1, 40))
    return data[:start] + data[start:end].swapcase() + data[end:]


def _drop_line(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    lines = _lines(data)
    index = draw(st.integers(0, len(lines) - 1))
    return b"\n".join(lines[:index] + lines[index + 1 :])


def _swap_lines(
    draw: st.DrawFn, data: bytes, seeds: Sequence[bytes], tokens: Sequence[bytes]
) -> bytes:
    lines = _lines(data)
    i = draw(st.integers(0, len(lines) - 1))
    j = draw(st.integers(0, len(lines) - 1))
    lines[i], lines[j] = lines[j], lines[i]
    return b"\n".join(lines)


STEPS: dict[str, MutationStep] = {
    "flip": _flip,
    "set_byte": _set_byte,
    "insert_token": _insert_token,
    "insert_random": _insert_random,
    "delete": _delete,
    "truncate": _truncate,
    "splice": _splice,
    "repeat_line": _repeat_line,
    "repeat_region": _repeat_region,
    "long_run": _long_run,
    "line_ends": _line_ends,
    "reencode": _reencode,
    "non_ascii": _non_ascii,
    "number": _number,
    "fold": _fold,
    "swap_case": _swap_case,
    "drop_line": _drop_line,
    "swap_lines": _swap_lines,
}
# Cheap local damage is drawn most often: it keeps the input near valid, where
# the deep paths of a parser are.
_WEIGHTED = [
    *["flip", "set_byte", "insert_token", "insert_token", "delete", "number", "non_ascii"] * 3,
    *STEPS,
]


@st.composite
def mutants(
    draw: st.DrawFn,
    seeds: Sequence[bytes],
    tokens: Sequence[bytes] = (),
    max_steps: int = 4,
) -> bytes:
    """A seed with 1 to `max_steps` mutations; sometimes the seed itself."""
    data = draw(st.sampled_from(seeds))
    for _ in range(draw(st.integers(0, max_steps))):
        step = STEPS[draw(st.sampled_from(_WEIGHTED))]
        data = step(draw, data, seeds, tokens)
    return data


def text_mutants(
    seeds: Sequence[str], tokens: Sequence[bytes] = (), max_steps: int = 4
) -> st.SearchStrategy[str]:
    """`mutants` of text, decoded as a SIP stack decodes a header value (UTF-8,
    undecodable bytes kept as lone surrogates)."""
    return mutants([s.encode("utf-8") for s in seeds], tokens, max_steps).map(
        lambda raw: raw.decode("utf-8", errors="surrogateescape")
    )
