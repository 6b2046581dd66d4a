"""Bugs the fuzzers found in code this suite does not fix, until it is fixed.

Each entry names the function an exception escapes from and the exception type.
While the bug is open, a fuzz example that hits exactly it is not reported
again (the fuzzers would otherwise fail at random on it and hide new finds);
anything else still fails. Every entry has a regression test marked
`xfail(strict=True)` in tests/fuzz/test_fuzz_regressions.py: when the fix lands,
that test passes, strict xfail turns the pass into a failure, and the entry and
the marker are removed together.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KnownBug:
    module: str  # path suffix of the file the exception is raised in
    function: str
    exception: type[BaseException]


# None open: the last ones (sip/headers.py numbers that str.isdigit() accepts
# but int() refuses) are fixed and kept as regression tests.
KNOWN_BUGS: tuple[KnownBug, ...] = ()


def is_known(exc: BaseException) -> bool:
    """Whether `exc` is one of `KNOWN_BUGS`, judged by where it was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return False
    last = frames[-1]
    return any(
        isinstance(exc, bug.exception)
        and last.filename.endswith(bug.module)
        and last.name == bug.function
        for bug in KNOWN_BUGS
    )
