"""Measuring audio: is there a tone, which one, how loud.

Tests use these to prove that a call really carried sound (a recording holds
425 Hz, not silence) without listening to it.

The Goertzel algorithm computes one bin of a discrete Fourier transform with a
second-order recursion, s[n] = x[n] + 2·cos(ω)·s[n-1] - s[n-2], which is far
cheaper than a full FFT when only a few frequencies matter (it is how DTMF
receivers work).  Here ω = 2πf/rate need not fall on a bin of the block, and the
power is scaled so that a sine of amplitude A gives about A²/2, its mean square,
whatever the block length.
"""

from __future__ import annotations

import math
import sys
from array import array
from collections.abc import Iterable

from teleoffice.media.sources import SAMPLE_RATE

__all__ = ["dominant_frequency", "goertzel_power", "rms", "samples"]


def samples(pcm: bytes) -> array[int]:
    """Little-endian int16 PCM as an array of ints."""
    if len(pcm) % 2:
        raise ValueError("16-bit PCM must have an even number of octets")
    values = array("h")
    values.frombytes(pcm)
    if sys.byteorder == "big":  # pragma: no cover
        values.byteswap()
    return values


def goertzel_power(pcm: bytes, freq: float, rate: int = SAMPLE_RATE) -> float:
    """Power of `pcm` at `freq` Hz, in squared sample units (a sine of amplitude A: A²/2)."""
    values = samples(pcm)
    count = len(values)
    if count == 0:
        return 0.0
    omega = 2 * math.pi * freq / rate
    coefficient = 2 * math.cos(omega)
    previous = before = 0.0
    for value in values:
        previous, before = value + coefficient * previous - before, previous
    power = previous * previous + before * before - coefficient * previous * before
    return 2 * power / (count * count)


def dominant_frequency(pcm: bytes, candidates: Iterable[float], rate: int = SAMPLE_RATE) -> float:
    """The candidate frequency with the most power in `pcm`."""
    powers = {freq: goertzel_power(pcm, freq, rate) for freq in candidates}
    if not powers:
        raise ValueError("no candidate frequencies")
    return max(powers, key=powers.__getitem__)


def rms(pcm: bytes) -> float:
    """Root mean square of the samples (0.0 for no samples)."""
    values = samples(pcm)
    if not values:
        return 0.0
    return math.sqrt(math.fsum(v * v for v in values) / len(values))
