"""Hypothesis profiles of the fuzz tests: a bounded run in the suite, a long one for `make fuzz`.

The profiles are registered here and applied by each fuzz test through
`tests.fuzz.mutate.fuzzing()`, never loaded globally, so that running the fuzz
tests in one session with the unit tests changes nothing for the latter.

- "fuzz-suite" (the default): a few hundred examples per test, so that all of
  tests/fuzz stays well under a minute on a loaded two-core machine.
- "fuzz" (`HYPOTHESIS_PROFILE=fuzz`, which `make fuzz` sets): `FUZZ_EXAMPLES`
  examples per test (20000 unless set).

Both give every example a deadline: a parser that takes over a second for one
input of at most a few hundred kilobytes has gone super-linear, which is how a
"hang" shows up on bounded input (a true infinite loop is cut by pytest-timeout).
"""

from __future__ import annotations

import os
from datetime import timedelta

from hypothesis import HealthCheck, settings

# Inputs are large on purpose (huge and repeated headers), and the mutators draw
# many values: neither is a problem to report.
_SUPPRESSED = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
DEADLINE = timedelta(milliseconds=1500)

settings.register_profile(
    "fuzz-suite",
    max_examples=200,
    deadline=DEADLINE,
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "20000")),
    deadline=DEADLINE,
    suppress_health_check=_SUPPRESSED,
    print_blob=True,
)
