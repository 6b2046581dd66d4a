"""Dialling restrictions (DESIGN.md rule T11): who may dial what.

Pure: a profile is a value, `check` a function of it and a number.  The store
keeps profiles as text and builds them with `RestrictionProfile.build`; the call
engine asks `check` before it dials anything.

Pattern language
----------------
In the style of classic PBX dial plans (Asterisk's extension patterns), so that
administrators can bring what they know:

    digits, '*', '#'   match themselves; '+' too, as the first character only
    X                  any digit 0-9
    Z                  a digit 1-9
    N                  a digit 2-9
    [1-5], [13], [0-47-9]
                       one digit out of a class (single digits and ranges)
    .                  at the end only: one or more characters of any kind
    !                  at the end only: zero or more characters of any kind
    _                  optional at the start, as in dial plans; it changes nothing
    internal           a whole pattern of its own: any call that stays inside the
                       PBX (to a user's extension or DID)

X, Z and N may be written in lower case.  A pattern without wildcards is one
exact number.  A pattern may carry a label after '=' (`00.=international`);
the label is what a barred caller is told ("Barred by restriction profile
default: international").

Evaluation (`check`)
--------------------
1. An emergency number of the profile dialled from a phone is always allowed:
   no configuration mistake may stop somebody reaching help.
2. A number that matches a barred pattern is barred, unless an allowed pattern
   that is MORE specific also matches (`00.` barred, `0041.` allowed: calls to
   Switzerland go through, the rest of the world does not).  On a tie the bar
   wins: when in doubt, the safe answer.
3. A profile with allowed patterns allows only what matches one of them; a
   profile without any allows everything that is not barred.

Specificity, from the most to the least decisive: the longer run of literal
characters at the start (`0041.` beats `00.`); then more literal characters in
all; then a fixed length over an open end (`0XXX` beats `0XX.`, which beats
`0XX!`); then narrower wildcards (`N` is narrower than `X`).  `internal` is less specific than any
number pattern, so a barred extension range (`29X`) still bars when internal
calls are allowed.

Which number is checked is the caller's business (see `CallEngine.may_dial`):
the engine checks what leaves the building on a trunk (the number after the
trunk prefix), because that is what costs money and what the patterns above are
written for, and it checks the dialled extension for calls that stay inside.
`internal` lets a profile tell the two apart, which no pattern on digits can:
with prefix 9, the outside number 9-5551234 leaves as 5551234, shaped exactly
like a seven-digit extension.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Literal

__all__ = [
    "BUILTIN_PROFILES",
    "DEFAULT_EMERGENCY",
    "DEFAULT_PROFILE",
    "INTERNAL",
    "Allowed",
    "Barred",
    "Pattern",
    "PatternError",
    "RestrictionProfile",
    "Rule",
    "Verdict",
    "check",
    "parse_pattern",
    "parse_rule",
    "validate_emergency",
    "validate_profile_name",
]

DIGITS: Final = "0123456789"
# What a position of "anything" ('.' and '!') may be: every character a
# normalised number can hold (teleoffice.calls.routing.normalize).
ANY: Final = frozenset(DIGITS + "*#+")
INTERNAL: Final = "internal"
MAX_PATTERN_LENGTH: Final = 32
MAX_LABEL_LENGTH: Final = 32
MAX_DESCRIPTION_LENGTH: Final = 200
_WILDCARDS: Final = {"X": DIGITS, "Z": DIGITS[1:], "N": DIGITS[2:]}
# Labels end up in a SIP reason phrase and in log lines, so they keep to a safe
# set: no quotes, no control characters, nothing that needs escaping.
_LABEL_RE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9 ._-]{{0,{MAX_LABEL_LENGTH - 1}}}")
# Profile names share the rules of usernames: they appear in reasons and commands.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Emergency numbers are matched exactly; short codes like 15 or 000 exist.
_EMERGENCY_RE = re.compile(r"[0-9]{2,15}")


class PatternError(ValueError):
    """A pattern, label, emergency number or profile name is malformed; the
    message says what is wrong, for an administrator."""


# ---- patterns ----------------------------------------------------------------


Tail = Literal["", ".", "!"]


@dataclass(frozen=True, slots=True)
class Pattern:
    """A parsed pattern: one set of characters per position, and the open end."""

    text: str  # as written, without the optional leading '_'
    positions: tuple[frozenset[str], ...] = ()
    tail: Tail = ""
    internal: bool = False

    def matches(self, number: str, *, internal: bool = False) -> bool:
        if self.internal:
            return internal
        fixed = len(self.positions)
        # '.' needs at least one character after the fixed part, '!' none.
        shortest = fixed + (1 if self.tail == "." else 0)
        if len(number) < shortest or (self.tail == "" and len(number) != fixed):
            return False
        if any(ch not in ANY for ch in number[fixed:]):
            return False
        return all(ch in allowed for ch, allowed in zip(number, self.positions, strict=False))

    @property
    def specificity(self) -> tuple[int, int, int, int]:
        """A key where bigger means more specific (see the module docstring)."""
        if self.internal:
            return (-1, -1, -1, -1)
        literal = [len(p) == 1 for p in self.positions]
        prefix = next((i for i, is_literal in enumerate(literal) if not is_literal), len(literal))
        width = sum(len(p) for p in self.positions if len(p) > 1)
        open_end = {"": 2, ".": 1, "!": 0}[self.tail]
        return (prefix, sum(literal), open_end, -width)

    @property
    def is_exact(self) -> bool:
        return not self.internal and self.tail == "" and all(len(p) == 1 for p in self.positions)


def parse_pattern(text: str) -> Pattern:
    """Parse one pattern (no label); `PatternError` explains a mistake."""
    source = text.strip()
    if source.lower() == INTERNAL:
        return Pattern(INTERNAL, internal=True)
    body = source[1:] if source.startswith("_") else source
    if not body:
        raise PatternError(f"pattern {text!r} is empty")
    if len(body) > MAX_PATTERN_LENGTH:
        raise PatternError(f"pattern {text!r} is longer than {MAX_PATTERN_LENGTH} characters")
    positions: list[frozenset[str]] = []
    tail: Tail = ""
    i = 0
    while i < len(body):
        ch = body[i]
        if tail:
            raise PatternError(f"pattern {text!r}: {tail!r} may only come last")
        if ch in DIGITS or ch in "*#":
            positions.append(frozenset(ch))
        elif ch == "+":
            if positions:
                raise PatternError(f"pattern {text!r}: '+' may only come first")
            positions.append(frozenset(ch))
        elif ch.upper() in _WILDCARDS:
            positions.append(frozenset(_WILDCARDS[ch.upper()]))
        elif ch == "[":
            end = body.find("]", i)
            if end < 0:
                raise PatternError(f"pattern {text!r}: '[' without a closing ']'")
            positions.append(_parse_class(text, body[i + 1 : end]))
            i = end
        elif ch in ".!":
            tail = "." if ch == "." else "!"
        else:
            raise PatternError(
                f"pattern {text!r}: {ch!r} is not allowed; use digits, * # +, X Z N, "
                "[classes], and '.' or '!' at the end"
            )
        i += 1
    return Pattern(body, tuple(positions), tail)


def _parse_class(text: str, inside: str) -> frozenset[str]:
    if not inside:
        raise PatternError(f"pattern {text!r}: '[]' is an empty class")
    chars: set[str] = set()
    i = 0
    while i < len(inside):
        low = inside[i]
        if low not in DIGITS:
            raise PatternError(f"pattern {text!r}: a class holds digits and ranges, not {low!r}")
        if i + 2 < len(inside) and inside[i + 1] == "-":
            high = inside[i + 2]
            if high not in DIGITS or high < low:
                raise PatternError(f"pattern {text!r}: bad range {low}-{high} in a class")
            chars.update(DIGITS[int(low) : int(high) + 1])
            i += 3
        else:
            chars.add(low)
            i += 1
    return frozenset(chars)


@dataclass(frozen=True, slots=True)
class Rule:
    """A pattern with the label a barred caller is told."""

    pattern: Pattern
    label: str | None = None

    def __str__(self) -> str:
        return self.pattern.text + (f"={self.label}" if self.label else "")

    def describe(self) -> str:
        return self.label or f"matches {self.pattern.text}"


def parse_rule(text: str) -> Rule:
    """`PATTERN` or `PATTERN=label`."""
    pattern_text, sep, label = text.partition("=")
    label = label.strip()
    if sep and not _LABEL_RE.fullmatch(label):
        raise PatternError(
            f"label {label!r} of {text!r} must be 1 to {MAX_LABEL_LENGTH} letters, digits, "
            "spaces, '.', '_' or '-', starting with a letter or digit"
        )
    return Rule(parse_pattern(pattern_text), label or None)


def validate_emergency(number: str) -> str:
    if not _EMERGENCY_RE.fullmatch(number):
        raise PatternError(f"emergency number {number!r} must be 2 to 15 digits")
    return number


def validate_profile_name(name: str) -> str:
    if not _NAME_RE.fullmatch(name):
        raise PatternError(
            f"profile name {name!r} must start with a letter or digit and contain only "
            "letters, digits, '.', '_' and '-' (at most 64 characters)"
        )
    return name


# ---- profiles ------------------------------------------------------------------

DEFAULT_EMERGENCY: Final = ("112", "911", "999")


@dataclass(frozen=True, slots=True)
class RestrictionProfile:
    name: str
    allowed: tuple[Rule, ...] = ()
    barred: tuple[Rule, ...] = ()
    emergency: frozenset[str] = frozenset(DEFAULT_EMERGENCY)
    description: str = ""

    @classmethod
    def build(
        cls,
        name: str,
        *,
        allowed: Iterable[str] = (),
        barred: Iterable[str] = (),
        emergency: Iterable[str] = DEFAULT_EMERGENCY,
        description: str = "",
    ) -> RestrictionProfile:
        """A profile from text as administrators write it; `PatternError` if any
        part is malformed."""
        if len(description) > MAX_DESCRIPTION_LENGTH or any(
            ord(ch) < 0x20 or ord(ch) == 0x7F for ch in description
        ):
            raise PatternError(
                f"description must be at most {MAX_DESCRIPTION_LENGTH} characters without "
                "control characters"
            )
        return cls(
            name=validate_profile_name(name),
            allowed=tuple(parse_rule(text) for text in allowed),
            barred=tuple(parse_rule(text) for text in barred),
            emergency=frozenset(validate_emergency(n) for n in emergency),
            description=description,
        )


@dataclass(frozen=True, slots=True)
class Allowed:
    reason: str  # why, for `teleoffice restriction check`


@dataclass(frozen=True, slots=True)
class Barred:
    reason: str  # for the caller: goes into the 403's reason phrase


Verdict = Allowed | Barred


def _best(rules: tuple[Rule, ...], number: str, internal: bool) -> Rule | None:
    matching = [r for r in rules if r.pattern.matches(number, internal=internal)]
    return max(matching, key=lambda r: r.pattern.specificity, default=None)


def check(
    profile: RestrictionProfile, number: str, *, from_phone: bool, internal: bool = False
) -> Verdict:
    """May a user with `profile` dial `number`?  See the module docstring."""
    prefix = f"Barred by restriction profile {profile.name}"
    if from_phone and number in profile.emergency:
        return Allowed("emergency number")
    barred = _best(profile.barred, number, internal)
    allowed = _best(profile.allowed, number, internal)
    if barred is not None:
        if allowed is None or allowed.pattern.specificity <= barred.pattern.specificity:
            return Barred(f"{prefix}: {barred.describe()}")
        return Allowed(f"allowed by {allowed}, more specific than barred {barred}")
    if allowed is not None:
        return Allowed(f"allowed by {allowed}")
    if profile.allowed:
        return Barred(f"{prefix}: not an allowed number")
    return Allowed("not barred")


# ---- the built-in profiles ---------------------------------------------------------
#
# Migration 0003 writes the same profiles into the database (as text of its own,
# since a migration must not change when this module does); a unit test checks
# that the two agree.  Administrators may edit them; `default` cannot be deleted
# because every user without an explicit profile gets it.

DEFAULT_PROFILE: Final = RestrictionProfile.build(
    "default",
    barred=(
        "00.=international",
        "+.=international",
        "090.=premium",
        "0900.=premium",
        "1900.=premium",
    ),
    description="internal and national calls; international and premium numbers barred",
)

BUILTIN_PROFILES: Final = (
    DEFAULT_PROFILE,
    RestrictionProfile.build(
        "internal-only",
        allowed=(INTERNAL,),
        description="calls inside the PBX and emergency numbers only",
    ),
    RestrictionProfile.build("unrestricted", description="every number may be dialled"),
)
