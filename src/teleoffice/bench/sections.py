"""Markdown sections of summary.md for the call, media, portal and memory benchmarks
(report.py keeps those of OPTIONS/REGISTER and writes the file)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

MIB = 2**20


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value == float("inf"):
            return "∞"
        if value.is_integer() and abs(value) >= 10:
            return str(int(value))
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def _pcts(times: dict[str, Any] | None) -> str:
    if not times or not times.get("count"):
        return "-"
    return f"{fmt(times['p50'])} / {fmt(times['p95'])} / {fmt(times['p99'])}"


def targets(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Targets (issue 8)",
        "",
        "Gap: the factor still to gain (2.00 = twice the rate, or half the delay, is "
        "needed); at most 1.00 means met. One noisy run: read the gaps as orders of "
        "magnitude, not to the percent.",
        "",
    ]
    lines += table(
        ["target", "goal", "measured", "gap", "met"],
        [
            [
                r["target"],
                f"{fmt(r['goal'])} {r['unit']}",
                f"{fmt(r['measured'])} {r['unit']}" if r["measured"] is not None else "-",
                fmt(r["gap"]),
                fmt(r["met"]),
            ]
            for r in rows
        ],
    )
    return lines


def call_rate(data: dict[str, Any]) -> list[str]:
    summary = data["summary"]
    lines = [
        "## call_rate",
        "",
        f"{data['description']}; {fmt(data['step_seconds'], 0)} s of calls per step, "
        f"each call held {data['hold_ms']} ms then ended with BYE. teleoffice takes the "
        "UAC as a trunk (no digest), routes to extension 1000 and anchors the media of "
        "every call (two RTP sockets); b2bua_simple relays to a fixed next hop with no "
        "media, routing or call log. A step is clean with every call successful and no "
        "retransmission on either side.",
        "",
    ]
    lines += table(
        [
            "B2BUA",
            "target/s",
            "achieved/s",
            "ok",
            "failed",
            "retrans",
            "set-up p50/p95/p99 ms",
            "CPU ms/call",
            "B2BUA CPU",
            "sipp UAC/UAS CPU",
            "",
        ],
        [
            [
                s["b2bua"],
                fmt(s["target_rate"]),
                fmt(s["achieved_rate"], 0),
                fmt(s["successful"]),
                fmt(s["failed"]),
                fmt(s["retransmissions"]),
                _pcts(s["setup_ms"]),
                fmt(s["cpu_ms_per_call"], 3),
                f"{s['cpu_share']:.0%}",
                f"{s['uac_cpu_share']:.0%} / {s['uas_cpu_share']:.0%}",
                ", ".join(
                    n
                    for n, on in (("clean", s["clean"]), ("sipp-limited", s["generator_limited"]))
                    if on
                ),
            ]
            for s in data["steps"]
        ],
    )
    lines += [
        "",
        "Highest clean rate: teleoffice "
        f"**{fmt(summary['teleoffice_max_clean_rate'])}/s**, sippy "
        f"**{fmt(summary['sippy_max_clean_rate'])}/s** (ratio "
        f"**{fmt(summary['rate_ratio'])}x**). CPU per call (median of clean steps): "
        f"teleoffice {fmt(summary['teleoffice_cpu_ms_per_call'], 3)} ms, sippy "
        f"{fmt(summary['sippy_cpu_ms_per_call'], 3)} ms (sippy/teleoffice "
        f"**{fmt(summary['cpu_ratio'])}x**); at that cost one core would set up at most "
        f"{fmt(summary['cpu_bound_rate'].get('teleoffice'))} and "
        f"{fmt(summary['cpu_bound_rate'].get('sippy'))} calls/s.",
    ]
    limited = summary["generator_limited_steps"]
    lines += [
        "",
        (
            f"**sipp is the limit** in {', '.join(limited)}: a sipp used 90 % of a core or more."
            if limited
            else "sipp was never the limit (neither sipp reached 90 % of a core)."
        ),
    ]
    profile = data.get("profile")
    if isinstance(profile, dict) and profile.get("samples"):
        lines += [
            "",
            f"Where teleoffice's time goes at {profile['rate']} calls/s (py-spy `--gil`, "
            f"{profile['samples']} samples of the thread holding the GIL; % of samples):",
            "",
        ]
        lines += table(
            ["own time", "%", "including callees", "%"],
            [
                [own[0], fmt(own[1], 1), incl[0], fmt(incl[1], 1)]
                for own, incl in zip(profile["own"], profile["inclusive"], strict=False)
            ],
        )
    if data.get("teleoffice_log_has_traceback"):
        lines += ["", "**teleoffice's log contains a traceback.**"]
    if data.get("sippy_tracebacks"):
        lines += ["", f"sippy logged {data['sippy_tracebacks']} tracebacks."]
    return lines


def post_dial_delay(data: dict[str, Any]) -> list[str]:
    lines = [
        "## post_dial_delay",
        "",
        f"{data['description']}; {data['calls']} calls at {data['rate']}/s. `direct` is "
        "the same caller calling the phone with no B2BUA: the floor of the method on "
        "this machine at that moment.",
        "",
    ]
    rows = []
    for name in ("teleoffice", "sippy", "direct"):
        run = data.get(name)
        if not isinstance(run, dict):
            continue
        rows.append(
            [
                name,
                _pcts(run["invite_to_invite_ms"]),
                _pcts(run["invite_to_180_ms"]),
                fmt(run["failed"]),
                fmt(run["retransmissions"]),
            ]
        )
    lines += table(
        [
            "path",
            "INVITE->INVITE p50/p95/p99 ms",
            "INVITE->180 p50/p95/p99 ms",
            "failed",
            "retrans",
        ],
        rows,
    )
    return lines


def telecommuter(data: dict[str, Any]) -> list[str]:
    lines = [
        "## telecommuter",
        "",
        f"{data['description']}; {data['samples']} samples of each, one at a time.",
        "",
    ]
    lines += table(
        ["what", "p50 / p95 / p99 ms", "max ms"],
        [
            [
                "POST /api/calls -> callback INVITE on the trunk",
                _pcts(data["callback_invite_ms"]),
                fmt(data["callback_invite_ms"]["max"]),
            ],
            [
                "POST /api/calls -> its HTTP answer",
                _pcts(data["post_answer_ms"]),
                fmt(data["post_answer_ms"]["max"]),
            ],
            [
                "incoming INVITE -> call.ringing on the WebSocket",
                _pcts(data["screen_pop_ms"]),
                fmt(data["screen_pop_ms"]["max"]),
            ],
        ],
    )
    if data.get("errors"):
        lines += ["", f"{data['errors']} samples failed: {data['error_sample']}"]
    return lines


def presence(data: dict[str, Any]) -> list[str]:
    lines = ["## presence_fan_out", "", data["description"] + ".", ""]
    lines += table(
        [
            "SIP watchers",
            "WebSockets",
            "changes",
            "delivery p50/p95/p99 ms",
            "fan-out (last watcher) median ms",
            "max ms",
            "missing",
        ],
        [
            [
                fmt(s["sip_watchers"]),
                fmt(s["ws_watchers"]),
                fmt(s["changes"]),
                _pcts(s["delivery_ms"]),
                fmt(s["fan_out_ms_median"]),
                fmt(s["fan_out_ms_max"]),
                fmt(s["missing"]),
            ]
            for s in data["steps"]
        ],
    )
    return lines


def media(data: dict[str, Any]) -> list[str]:
    lines = [
        "## media_relay",
        "",
        f"{data['description']}; {fmt(data['seconds'], 0)} s per step. Limits: loss under "
        f"{data['loss_limit']:.1%}, added jitter (relayed minus direct, mean of the "
        f"streams' RFC 3550 jitter) under {fmt(data['jitter_limit_ms'])} ms.",
        "",
    ]
    rows = []
    for s in data["steps"]:
        relayed, direct = s["relayed"], s["direct"]
        share = s.get("relay_cpu_share")
        rows.append(
            [
                fmt(s["calls"]),
                f"{relayed['loss']:.3%}" if relayed["loss"] is not None else "-",
                f"{direct['loss']:.3%}" if direct["loss"] is not None else "-",
                f"{fmt(direct['jitter_ms_mean'], 3)} / {fmt(relayed['jitter_ms_mean'], 3)}",
                f"{fmt(direct['jitter_ms_p99'], 3)} / {fmt(relayed['jitter_ms_p99'], 3)}",
                fmt(s["added_jitter_ms"], 3),
                "-" if share is None else f"{share:.0%}",
                "-" if not share else fmt(s["calls"] / share, 0),
                fmt(s["within_limits"]),
            ]
        )
    lines += table(
        [
            "calls",
            "loss relayed",
            "loss direct",
            "jitter mean direct/relayed ms",
            "jitter p99 direct/relayed ms",
            "added ms",
            "relay CPU",
            "calls per core at that cost",
            "within limits",
        ],
        rows,
    )
    lines += [
        "",
        f"Most calls within the limits: **{fmt(data['max_calls_within_limits'])}** (of the "
        "steps tried; `calls per core` extrapolates the relay's CPU share to a full core).",
    ]
    return lines


def memory(data: dict[str, Any], registrations: dict[str, Any] | None) -> list[str]:
    lines = ["## memory_per_call", "", data["description"] + ".", ""]
    rows = []
    for label in ("cold", "warm"):
        r = data[label]
        rows.append(
            [
                label,
                fmt(r["calls_up"]),
                f"{r['rss_before_bytes'] / MIB:.1f} MiB",
                f"{r['rss_with_calls_bytes'] / MIB:.1f} MiB",
                fmt(r["bytes_per_call"], 0),
            ]
        )
    lines += table(["pass", "calls up", "RSS before", "RSS with the calls", "bytes/call"], rows)
    if isinstance(registrations, dict) and "bytes_per_registration" in registrations:
        lines += [
            "",
            f"Per call **{fmt(data['bytes_per_call'], 0)} B** (cold pass: the warm one reuses "
            "memory the first calls left free in the process); per registration "
            f"**{fmt(registrations['bytes_per_registration'], 0)} B** (registrations_memory, "
            f"{fmt(registrations['accounts'])} accounts).",
        ]
    return lines
