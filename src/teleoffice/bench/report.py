"""Writing the results: results.json, summary.md and, when matplotlib is importable,
PNG charts (`charts`). matplotlib comes with the dev extra, not with teleoffice
itself; without it the summary says the charts were skipped."""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from teleoffice.bench import sections
from teleoffice.bench.charts import draw_all

RESULTS_FILE = "results.json"
SUMMARY_FILE = "summary.md"
MIB = 2**20


def write_json(results: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / RESULTS_FILE
    path.write_text(json.dumps(results, indent=2, sort_keys=False) + "\n")
    return path


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 10:
            return str(int(value))
        return f"{value:.{digits}f}"
    return str(value)


def _ms(value: Any) -> str:
    """A response time: sipp measures whole milliseconds, 0 meaning under one."""
    if value is None:
        return "-"
    return "<1" if float(value) < 0.5 else f"{float(value):.0f}"


def _pct(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.0f}%"


def _mib(value: Any) -> str:
    return "-" if value is None else f"{float(value) / MIB:.1f} MiB"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _step_row(step: dict[str, Any], label: str) -> list[str]:
    times = step["response_time_ms"]
    notes = []
    if step["generator_limited"]:
        notes.append("sipp-limited")
    if step["sipp_killed"]:
        notes.append("sipp killed at its bound")
    if step["clean"]:
        notes.append("clean")
    return [
        label,
        _fmt(step["target_rate"]),
        _fmt(step.get("bindings_at_start")),
        _fmt(step["achieved_rate"], 0),
        _fmt(step["successful"]),
        _fmt(step["failed"]),
        _fmt(step["retransmissions"]),
        _ms(times["p50"]),
        _ms(times["p95"]),
        _ms(times["p99"]),
        _fmt(step["server_cpu_ms_per_call"], 3),
        _pct(step["server_cpu_utilization"]),
        _pct(step["sipp_cpu_utilization"]),
        ", ".join(notes),
    ]


def _options_vs_register(data: dict[str, Any]) -> list[str]:
    lines = [
        "## options_vs_register",
        "",
        f"{data['description']}. Each step runs about {_fmt(data['step_seconds'])} s worth "
        f"of calls; REGISTER cycles through {data['accounts']} accounts (one per call, from "
        "the injection file), so bindings accumulate from step to step (`bindings`: "
        "registrations held when the step began). Before each step the server is left "
        "to settle (under 5% CPU), but not for the transactions of earlier steps to end "
        "(Timer J, 32 s): their expiry falls into later steps. Response times cover "
        "the whole call (for REGISTER both round trips) in sipp's whole-millisecond "
        "resolution (<1: under a millisecond). Server CPU is "
        "utime+stime of the server process during the step (10 ms ticks), per "
        "successful call.",
        "",
    ]
    rows = [_step_row(step, step["scenario"].upper()) for step in data["steps"]]
    after = data.get("options_after")
    if after:
        rows.append(_step_row(after, "OPTIONS again"))
    lines += _table(
        [
            "scenario",
            "target/s",
            "bindings",
            "achieved/s",
            "ok",
            "failed",
            "retrans",
            "p50 ms",
            "p95 ms",
            "p99 ms",
            "server CPU ms/call",
            "server CPU",
            "sipp CPU",
            "",
        ],
        rows,
    )
    summary = data["summary"]
    lines += [
        "",
        "Highest rate with zero failures and zero retransmissions (RFC 7501/7502 style): "
        f"OPTIONS {_fmt(summary['options_max_clean_rate'])}/s, "
        f"REGISTER {_fmt(summary['register_max_clean_rate'])}/s "
        f"(of the rates tried: {', '.join(_fmt(r) for r in data['rates'])}/s).",
        "",
        "REGISTER/OPTIONS server CPU per call: "
        f"**{_fmt(summary['register_to_options_cpu_ratio'])}x** "
        f"(median over {summary['cpu_ratio_from']}; a REGISTER call is two transactions).",
        "",
    ]
    lines += _table(
        ["target/s", "CPU ratio REGISTER/OPTIONS", "p50 ratio", "both clean"],
        [
            [
                _fmt(p["target_rate"]),
                _fmt(p["cpu_ratio"]),
                _fmt(p["p50_ratio"]),
                _fmt(p["both_clean"]),
            ]
            for p in summary["per_rate"]
        ],
    )
    if after and summary.get("options_floor_growth") is not None:
        lines += [
            "",
            f"OPTIONS at {_fmt(after['target_rate'])}/s costs "
            f"**{_fmt(summary['options_floor_growth'])}x** the CPU per call once the "
            f"registrar holds {_fmt(after.get('bindings_at_start'))} bindings (last row, "
            "run after every earlier transaction had ended) compared with the first "
            "OPTIONS step: the floor cost depends on how many phones are registered.",
        ]
    lines += [
        "",
        f"Idle server: {_fmt(data['idle_cpu_ms_per_second'], 2)} CPU ms per second. "
        f"RSS {_mib(data['server_rss_start_bytes'])} at the start, "
        f"{_mib(data['server_rss_end_bytes'])} at the end; "
        f"{_fmt(data['server_registrations_at_end'])} registrations at the end.",
    ]
    limited = summary["generator_limited_steps"]
    if limited:
        lines += [
            "",
            f"**sipp is the limit** in {', '.join(limited)}: the achieved rate stayed under "
            "90% of the target while the server used less than 80% of a core (or sipp "
            "itself used a full core). Those steps say more about the generator than "
            "about teleoffice.",
        ]
    if data.get("server_log_has_traceback"):
        lines += ["", "**The server log contains a traceback.**"]
    return lines


def _registrations_memory(data: dict[str, Any]) -> list[str]:
    times = data["response_time_ms"]
    drained = data.get("rss_after_drain_bytes") is not None
    lines = [
        "## registrations_memory",
        "",
        f"{data['description']}, at {data['rate']}/s. Registrations live in memory "
        "and are written to SQLite in batches; `stored` counts the rows of the "
        "registrations table after the run.",
        "",
    ]
    lines += _table(
        [
            "accounts",
            "ok",
            "failed",
            "retrans",
            "p50/p99 ms",
            "RSS before",
            "RSS after" + (" (drained)" if drained else ""),
            "growth",
            "bytes/registration",
            "stored",
        ],
        [
            [
                _fmt(data["accounts"]),
                _fmt(data["successful"]),
                _fmt(data["failed"]),
                _fmt(data["retransmissions"]),
                f"{_ms(times['p50'])}/{_ms(times['p99'])}",
                _mib(data["rss_before_bytes"]),
                _mib(data["rss_after_drain_bytes"] if drained else data["rss_after_bytes"]),
                _mib(data["rss_growth_bytes"]),
                _fmt(data["bytes_per_registration"], 0),
                _fmt(data["stored_registrations"]),
            ]
        ],
    )
    lines.append("")
    if data.get("warm_heap"):
        lines.append(
            f"Before the measured pass the same accounts sent REGISTER with Expires: 0 "
            f"(the same 401/200 exchange, no binding) and the server drained its "
            f"transactions, so the heap that traffic needs already existed: RSS went from "
            f"{_mib(data['rss_start_bytes'])} to {_mib(data['rss_before_bytes'])} and "
            "stayed there. The growth above is what the registrations keep (bindings, "
            "plus the digest nonces kept for nonce_ttl)."
        )
    if drained:
        lines.append(
            f"Right after the measured pass RSS was {_mib(data['rss_after_bytes'])} with "
            f"{_fmt(data['transactions_after'])} transactions waiting for Timer J "
            f"(32 s); they had ended {_fmt(data['drain_seconds'], 1)} s later."
        )
    else:
        lines.append(
            f"RSS right after the run, with {_fmt(data['transactions_after'])} server "
            "transactions still waiting for Timer J (this run did not wait for them)."
        )
    lines += [
        "",
        "From a server that had not seen such traffic, right after the run "
        "(transactions alive, heap grown): "
        f"{_fmt(data['bytes_per_registration_cold'], 0)} bytes per registration "
        f"(RSS {_mib(data['rss_start_bytes'])} at the start).",
        f"Server CPU per registration: {_fmt(data['server_cpu_ms_per_registration'], 3)} ms.",
    ]
    if data.get("server_log_has_traceback"):
        lines += ["", "**The server log contains a traceback.**"]
    return lines


def _charts(results: dict[str, Any], out: Path) -> tuple[list[str], str | None]:
    """PNG files written, or the reason there are none."""
    try:
        matplotlib: Any = importlib.import_module("matplotlib")
    except ImportError:
        return [], (
            "Charts skipped: matplotlib is not installed (it is not a dependency of "
            "teleoffice; install it in the virtual environment to get PNG charts)."
        )
    matplotlib.use("Agg")
    pyplot: Any = importlib.import_module("matplotlib.pyplot")
    written: list[str] = []
    data = results["benchmarks"].get("options_vs_register")
    if isinstance(data, dict) and data.get("steps"):
        figure, (latency, cpu) = pyplot.subplots(1, 2, figsize=(11, 4))
        for scenario in ("options", "register"):
            steps = [s for s in data["steps"] if s["scenario"] == scenario]
            rates = [s["target_rate"] for s in steps]
            for pct, style in (("p50", "-o"), ("p99", "--x")):
                latency.plot(
                    rates,
                    [s["response_time_ms"][pct] for s in steps],
                    style,
                    label=f"{scenario.upper()} {pct}",
                )
            cpu.plot(
                rates, [s["server_cpu_ms_per_call"] for s in steps], "-o", label=scenario.upper()
            )
        latency.set_xlabel("target calls/s")
        latency.set_ylabel("response time (ms)")
        latency.legend()
        cpu.set_xlabel("target calls/s")
        cpu.set_ylabel("server CPU ms per call")
        cpu.legend()
        figure.tight_layout()
        name = "options_vs_register.png"
        figure.savefig(out / name, dpi=100)
        pyplot.close(figure)
        written.append(name)
    memory = results["benchmarks"].get("registrations_memory")
    if isinstance(memory, dict) and memory.get("rss_after_bytes"):
        figure, axis = pyplot.subplots(figsize=(5, 4))
        labels = ["before", "after"]
        values = [memory["rss_before_bytes"] / MIB, memory["rss_after_bytes"] / MIB]
        if memory.get("rss_after_drain_bytes"):
            labels.append("after drain")
            values.append(memory["rss_after_drain_bytes"] / MIB)
        axis.bar(labels, values)
        axis.set_ylabel("server RSS (MiB)")
        axis.set_title(f"{memory['accounts']} registrations")
        figure.tight_layout()
        name = "registrations_memory.png"
        figure.savefig(out / name, dpi=100)
        pyplot.close(figure)
        written.append(name)
    return written, None


def write_summary(results: dict[str, Any], out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    meta = results["meta"]
    lines = [
        "# teleoffice benchmarks",
        "",
        f"{meta['started']} · profile **{meta['profile']}** · {meta['cpus']} CPUs · "
        f"Python {meta['python']} · sipp {meta['sipp']} · teleoffice {meta['teleoffice']} · "
        f"{_fmt(meta['duration_seconds'], 0)} s in all (seeding {meta['users']} users took "
        f"{_fmt(meta['seed_seconds'], 1)} s).",
        "",
        "Side-by-side numbers from one run on a shared machine: compare within the "
        "run, not across runs; nothing here is a pass/fail on speed. Load average at the "
        f"start: {meta.get('load_average', '-')}; other processes on the machine move every "
        "latency percentile here.",
    ]
    if results.get("targets"):
        lines += ["", *sections.targets(results["targets"])]
    benchmarks = results["benchmarks"]
    registrations = benchmarks.get("registrations_memory")
    renderers: dict[str, Callable[[dict[str, Any]], list[str]]] = {
        "options_vs_register": _options_vs_register,
        "registrations_memory": _registrations_memory,
        "call_rate": sections.call_rate,
        "post_dial_delay": sections.post_dial_delay,
        "telecommuter": sections.telecommuter,
        "presence_fan_out": sections.presence,
        "media_relay": sections.media,
        "memory_per_call": lambda data: sections.memory(data, registrations),
    }
    for name, data in benchmarks.items():
        lines.append("")
        if "error" in data:
            lines += [f"## {name}", "", f"**Failed:** {data['error']}"]
        elif name in renderers:
            lines += renderers[name](data)
    if results.get("profiling"):
        lines += ["", *results["profiling"]]
    charts, skipped = _charts(results, out)
    more, more_skipped = draw_all(results, out)
    lines += ["", "## Charts", ""]
    if skipped or more_skipped:
        lines.append(skipped or more_skipped or "")
    lines += [f"![{name}]({name})" for name in [*more, *charts]]
    path = out / SUMMARY_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
