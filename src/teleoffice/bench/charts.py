"""PNG charts (matplotlib, Agg backend) of the call, latency, media and presence runs.

matplotlib comes with the dev extra (`make bench` installs it); without it the
summary says the charts were skipped. Each function draws one figure from one
benchmark's results and returns the file name, or None when there is nothing
to draw.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any


def pyplot() -> Any | None:
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return None
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def _save(plt: Any, figure: Any, out: Path, name: str) -> str:
    figure.tight_layout()
    figure.savefig(out / name, dpi=100)
    plt.close(figure)
    return name


def call_rate(plt: Any, data: dict[str, Any], out: Path) -> str | None:
    steps = data.get("steps") or []
    if not steps:
        return None
    figure, (rate, cpu, latency) = plt.subplots(1, 3, figsize=(15, 4))
    for name, colour in (("teleoffice", "tab:blue"), ("sippy", "tab:orange")):
        mine = [s for s in steps if s["b2bua"] == name]
        targets = [s["target_rate"] for s in mine]
        rate.plot(targets, [s["achieved_rate"] or 0 for s in mine], "-o", color=colour, label=name)
        for s in mine:
            if not s["clean"]:
                rate.plot(s["target_rate"], s["achieved_rate"] or 0, "x", color="red", ms=10)
        cpu.plot(targets, [s["cpu_ms_per_call"] for s in mine], "-o", color=colour, label=name)
        latency.plot(
            targets, [s["setup_ms"]["p99"] for s in mine], "-o", color=colour, label=f"{name} p99"
        )
        latency.plot(
            targets, [s["setup_ms"]["p50"] for s in mine], "--", color=colour, label=f"{name} p50"
        )
    top = max(s["target_rate"] for s in steps)
    rate.plot([0, top], [0, top], ":", color="grey", label="target")
    rate.set_title("calls/s achieved (x: failures or retransmissions)")
    rate.set_xlabel("target calls/s")
    cpu.set_title("B2BUA CPU ms per call")
    cpu.set_xlabel("target calls/s")
    latency.set_title("set-up time (INVITE to 200), ms")
    latency.set_xlabel("target calls/s")
    latency.set_yscale("log")
    for axis in (rate, cpu, latency):
        axis.legend(fontsize=8)
    return _save(plt, figure, out, "call_rate.png")


def post_dial_delay(plt: Any, data: dict[str, Any], out: Path) -> str | None:
    names = [n for n in ("teleoffice", "sippy", "direct") if isinstance(data.get(n), dict)]
    if not names:
        return None
    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.12
    series = [
        (f"{kind} {pct}", kind_key, pct)
        for kind, kind_key in (("INVITE", "invite_to_invite_ms"), ("180", "invite_to_180_ms"))
        for pct in ("p50", "p95", "p99")
    ]
    for index, (label, key, pct) in enumerate(series):
        values = [data[n][key][pct] or 0 for n in names]
        positions = [i + (index - len(series) / 2) * width for i in range(len(names))]
        axis.bar(positions, values, width, label=label)
    axis.set_xticks(range(len(names)), names)
    axis.set_ylabel("ms (log)")
    axis.set_yscale("log")
    axis.set_title(f"post-dial delay at {data['rate']} calls/s")
    axis.axhline(5.0, color="red", linestyle=":", label="target p99 5 ms")
    axis.legend(fontsize=7, ncol=2)
    return _save(plt, figure, out, "post_dial_delay.png")


def latencies(plt: Any, data: dict[str, Any], out: Path) -> str | None:
    series: list[tuple[str, dict[str, Any], float]] = [
        (name, times, goal)
        for name, times, goal in (
            ("callback INVITE", data.get("callback_invite_ms"), 10.0),
            ("screen pop", data.get("screen_pop_ms"), 20.0),
        )
        if isinstance(times, dict) and times.get("count")
    ]
    if not series:
        return None
    figure, axis = plt.subplots(figsize=(7, 4))
    for index, (name, times, goal) in enumerate(series):
        values = [times["p50"], times["p95"], times["p99"]]
        axis.bar([index * 4 + i for i in range(3)], values, label=name)
        axis.hlines(goal, index * 4 - 0.5, index * 4 + 2.5, colors="red", linestyles=":")
    axis.set_xticks(
        [index * 4 + i for index in range(len(series)) for i in range(3)],
        ["p50", "p95", "p99"] * len(series),
    )
    axis.set_ylabel("ms")
    axis.set_title("telecommuter latencies (red: target p99)")
    axis.legend()
    return _save(plt, figure, out, "telecommuter.png")


def presence(plt: Any, data: dict[str, Any], out: Path) -> str | None:
    steps = data.get("steps") or []
    if not steps:
        return None
    figure, axis = plt.subplots(figsize=(7, 4))
    watchers = [s["sip_watchers"] + s["ws_watchers"] for s in steps]
    for pct in ("p50", "p95", "p99"):
        axis.plot(watchers, [s["delivery_ms"][pct] for s in steps], "-o", label=f"delivery {pct}")
    axis.plot(watchers, [s["fan_out_ms_max"] for s in steps], "--x", label="last watcher (max)")
    axis.set_xlabel("watchers (SIP + WebSocket)")
    axis.set_ylabel("ms after the PUT")
    axis.set_title("presence fan-out")
    axis.legend()
    return _save(plt, figure, out, "presence_fan_out.png")


def media(plt: Any, data: dict[str, Any], out: Path) -> str | None:
    steps = data.get("steps") or []
    if not steps:
        return None
    figure, (jitter, cpu) = plt.subplots(1, 2, figsize=(11, 4))
    calls = [s["calls"] for s in steps]
    jitter.plot(calls, [s["direct"]["jitter_ms_mean"] for s in steps], "-o", label="direct mean")
    jitter.plot(calls, [s["relayed"]["jitter_ms_mean"] for s in steps], "-o", label="relayed mean")
    jitter.plot(calls, [s["relayed"]["jitter_ms_p99"] for s in steps], "--x", label="relayed p99")
    jitter.set_xlabel("concurrent calls")
    jitter.set_ylabel("RFC 3550 jitter, ms")
    jitter.legend()
    cpu.plot(calls, [100 * (s.get("relay_cpu_share") or 0) for s in steps], "-o")
    cpu.set_xlabel("concurrent calls")
    cpu.set_ylabel("relay CPU, % of one core")
    figure.suptitle("media relay: 2 x 50 packets/s per call")
    return _save(plt, figure, out, "media_relay.png")


def draw_all(results: dict[str, Any], out: Path) -> tuple[list[str], str | None]:
    """Every chart these benchmarks have data for: (file names, reason if skipped)."""
    plt = pyplot()
    if plt is None:
        return [], "Charts skipped: matplotlib is not installed (`pip install -e '.[dev]'`)."
    benchmarks = results.get("benchmarks", {})
    drawn: list[str] = []
    for key, draw in (
        ("call_rate", call_rate),
        ("post_dial_delay", post_dial_delay),
        ("telecommuter", latencies),
        ("presence_fan_out", presence),
        ("media_relay", media),
    ):
        data = benchmarks.get(key)
        if isinstance(data, dict) and "error" not in data:
            name = draw(plt, data, out)
            if name:
                drawn.append(name)
    return drawn, None
