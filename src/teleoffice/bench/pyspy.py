"""Sampling a running server with py-spy (dev extra) and summing where its time went.

`record(pid, seconds, out)` runs `py-spy record --gil --format raw` on exactly
that PID (only the thread holding the GIL is sampled: the time Python code
really costs, not the time threads wait for each other); `hot_spots(path)`
folds the collapsed stacks into the functions with the most samples, by their
own time and including what they call.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy sampling `pid` for `seconds` into `out` (None when py-spy is missing)."""
    binary = py_spy()
    if binary is None:
        return None
    command = [
        binary, "record", "--pid", str(pid), "--gil", "--rate", "200",
        "--duration", str(max(1, round(seconds))), "--format", "raw", "--output", str(out),
    ]  # fmt: skip
    return subprocess.Popen(  # noqa: S603 - py-spy from the venv, our arguments
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


def _frame(frame: str) -> str:
    """`func (path/to/file.py:123)` -> `func (file.py)` shortened to the package path."""
    name, _, rest = frame.partition(" (")
    path = rest.split(":", 1)[0]
    for marker in ("/teleoffice/", "/site-packages/", "/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


def hot_spots(path: Path, top: int = 15) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if not total:
        return {"samples": 0, "own": [], "inclusive": []}

    def share(counter: Counter[str]) -> list[list[Any]]:
        return [[name, round(100 * n / total, 1)] for name, n in counter.most_common(top)]

    return {"samples": total, "own": share(own), "inclusive": share(inclusive)}
