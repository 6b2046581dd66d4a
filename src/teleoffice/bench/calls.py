"""Call set-up rate through the B2BUA: teleoffice against sippy's b2bua_simple.

sipp UAC -> B2BUA -> sipp UAS, the same scenarios (`call_uac.xml`,
`call_uas.xml`) through both B2BUAs, step by step in one run: at each target
rate teleoffice runs first, then sippy, each for the same number of calls, after
the B2BUA under test has gone quiet. A step is *clean* when every call
succeeded with no retransmission on either side (RFC 7501 section 3 / RFC 7502
section 5.1: the session establishment rate is the highest rate sustained
without failures; a retransmission means a message waited more than T1 and is
counted as a failure of the rate, not of the call). A B2BUA leaves the ladder
after two unclean steps in a row.

teleoffice knows the UAC as a trunk (by its address: no authentication, like
sippy, which authenticates nobody) calling extension 1000, whose phone is the
UAS, registered once before the steps. It anchors the media of every call (two
RTP sockets per call, opened and closed), keeps a call log and routes by user
and location; b2bua_simple does none of that: it relays every call to one next
hop. The ratio is therefore the price of a PBX's work as much as of its speed.

Per step: calls/s achieved (from the times the 200s came back), set-up time
percentiles, CPU ms per call of the B2BUA (utime + stime from /proc/PID/stat,
every thread), and the CPU share of the two sipps: when either uses 90 % of a
core or more, sipp is the limit, not the B2BUA.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from teleoffice.bench import pyspy
from teleoffice.bench.harness import FIRST_EXTENSION, SIP_PASSWORD, ProcSample
from teleoffice.bench.processes import LOOPBACK, end_process, free_port, log_tail
from teleoffice.bench.register import Context, percentile, summarize_times
from teleoffice.bench.sippctl import SippOutcome, SippProcess
from teleoffice.bench.sippy import SippyB2bua, ensure_sippy
from teleoffice.bench.sipua import SipPeer, register

CALLEE = str(FIRST_EXTENSION)
SIPP_BUSY = 0.9
SETTLED_CPU = 0.05
# RTP ports for the bench servers: away from the test suite's 20000-29999 and its
# phones' 31000-39999, and wide enough for thousands of calls up at once.
RTP_PORTS = {"TELEOFFICE_RTP_PORT_MIN": "40000", "TELEOFFICE_RTP_PORT_MAX": "59999"}


@dataclass
class Target:
    """A B2BUA under test: where sipp sends, from where, and where it delivers."""

    name: str
    sip_port: int
    uac_port: int  # the UAC's own port (teleoffice's trunk)
    uas_port: int
    sample: Callable[[], ProcSample]
    failures_in_a_row: int = 0
    pid: int = 0


def target_pid(target: Target) -> int:
    return target.pid


def register_contact(server_port: int, local_port: int, user: str = CALLEE) -> None:
    """Register `user`'s contact at 127.0.0.1:local_port (then free the port for sipp)."""

    async def run() -> None:
        peer = await SipPeer.open(local_port)
        try:
            await register(peer, (LOOPBACK, server_port), user, SIP_PASSWORD)
        finally:
            await peer.aclose()

    asyncio.run(run())


def settle(sample: Callable[[], ProcSample], timeout: float = 20.0, window: float = 0.5) -> float:
    """Wait until the process uses under SETTLED_CPU of a core; seconds waited."""
    started = time.monotonic()
    previous = sample()
    while True:
        time.sleep(window)
        current = sample()
        busy = (current.cpu_seconds - previous.cpu_seconds) / max(current.at - previous.at, 1e-6)
        if busy < SETTLED_CPU or current.at - started >= timeout:
            return current.at - started
        previous = current


def achieved_rate(setups: list[tuple[float, float]]) -> float | None:
    """Set-ups completed per second: calls between the first and the last 200."""
    if len(setups) < 2:
        return None
    stamps = sorted(date for date, _ in setups)
    span = (stamps[-1] - stamps[0]) / 1000.0
    return (len(stamps) - 1) / span if span > 0 else None


def run_step(
    target: Target, workdir: Path, *, rate: int, calls: int, hold_ms: int, label: str
) -> dict[str, Any]:
    """`calls` calls at `rate`/s through `target`; the step's record."""
    bound = calls / rate + hold_ms / 1000 + 15
    uas = SippProcess(
        "call_uas",
        workdir / f"{label}-uas",
        remote=target.sip_port,
        port=target.uas_port,
        calls=calls,
        bound=bound + 5,
    ).start()
    time.sleep(0.2)  # the UAS binds its port
    uac = SippProcess(
        "call_uac",
        workdir / f"{label}-uac",
        remote=target.sip_port,
        port=target.uac_port,
        calls=calls,
        bound=bound,
        rate=rate,
        limit=int(rate * (hold_ms / 1000 + 3)) + 50,
        service=CALLEE,
        hold_ms=hold_ms,
    )
    before = target.sample()
    uac.start()
    try:
        caller = uac.wait()
        after = target.sample()
        callee = uas.wait(timeout=5.0)
    finally:
        if uas.proc is not None and uas.proc.poll() is None:
            uas.stop()
    return step_record(
        target.name,
        rate=rate,
        calls=calls,
        caller=caller,
        callee=callee,
        before=before,
        after=after,
    )


def step_record(
    name: str,
    *,
    rate: int,
    calls: int,
    caller: SippOutcome,
    callee: SippOutcome,
    before: ProcSample,
    after: ProcSample,
) -> dict[str, Any]:
    successful = caller.stat("SuccessfulCall(C)")
    failed = caller.stat("FailedCall(C)")
    retrans = caller.stat("Retransmissions(C)") + callee.stat("Retransmissions(C)")
    cpu = after.cpu_seconds - before.cpu_seconds
    elapsed = max(after.at - before.at, 1e-6)
    server_share = cpu / elapsed
    achieved = achieved_rate(caller.setups)
    uac_share = caller.cpu_share
    uas_share = callee.cpu_share
    clean = (
        failed == 0
        and retrans == 0
        and successful == calls
        and callee.stat("FailedCall(C)") == 0
        and caller.returncode == 0
    )
    # sipp is single-threaded: near a full core it, not the B2BUA, sets the pace.
    generator_limited = max(uac_share, uas_share) >= SIPP_BUSY
    times = [ms for _, ms in caller.setups]
    return {
        "b2bua": name,
        "target_rate": rate,
        "calls": calls,
        "successful": successful,
        "failed": failed,
        "callee_failed": callee.stat("FailedCall(C)"),
        "retransmissions": retrans,
        "achieved_rate": None if achieved is None else round(achieved, 1),
        "setup_ms": summarize_times(times),
        "cpu_seconds": round(cpu, 3),
        "cpu_ms_per_call": round(cpu * 1000 / successful, 3) if successful else None,
        "cpu_share": round(server_share, 3),
        "uac_cpu_share": round(uac_share, 3),
        "uas_cpu_share": round(uas_share, 3),
        "rss_bytes": after.rss_bytes,
        "clean": clean,
        "generator_limited": generator_limited,
        "sipp_killed": caller.killed,
        "error_sample": caller.error_sample[:500] if not clean else "",
    }


def _describe(step: dict[str, Any]) -> str:
    return (
        f"    {step['b2bua']:<10} ok {step['successful']}/{step['calls']} "
        f"failed {step['failed']} retrans {step['retransmissions']} "
        f"achieved {step['achieved_rate']}/s p99 {step['setup_ms']['p99']} ms, "
        f"{step['cpu_ms_per_call']} CPU ms/call ({step['cpu_share']:.0%} CPU, "
        f"uac {step['uac_cpu_share']:.0%})"
        + ("  sipp-limited" if step["generator_limited"] else "")
    )


def call_rate(ctx: Context) -> dict[str, Any]:
    profile = ctx.profile
    workdir = ctx.workdir / "call-rate"
    workdir.mkdir(parents=True, exist_ok=True)
    script = ensure_sippy(ctx.sippy_venv, ctx.log)
    trunk_port = ctx.trunk_port
    tele_uas = free_port()
    server = ctx.start_server("call-rate", env=RTP_PORTS)
    sippy_uas = free_port()
    sippy = SippyB2bua(script, workdir / "sippy", next_hop=sippy_uas)
    steps: list[dict[str, Any]] = []
    try:
        register_contact(server.sip_port, tele_uas)
        sippy.start()
        targets = [
            Target(
                "teleoffice", server.sip_port, trunk_port, tele_uas, server.sample, pid=server.pid
            ),
            Target("sippy", sippy.port, free_port(), sippy_uas, sippy.sample, pid=sippy.pid),
        ]
        if profile.name != "quick":  # the first calls load caches; not reported
            ctx.log("  warm-up")
            for target in targets:
                run_step(
                    target, workdir, rate=40, calls=40, hold_ms=100, label=f"warm-{target.name}"
                )
        for rate in profile.call_rates:
            active = [t for t in targets if t.failures_in_a_row < 2]
            if not active:
                break
            calls = max(10, int(rate * profile.call_step_seconds))
            for target in active:
                settled = settle(target.sample)
                ctx.log(f"  {target.name} at {rate}/s, {calls} calls (settled {settled:.1f} s)")
                label = f"{target.name}-{rate}"
                step = run_step(
                    target, workdir, rate=rate, calls=calls, hold_ms=profile.hold_ms, label=label
                )
                ctx.log(_describe(step))
                steps.append(step)
                target.failures_in_a_row = 0 if step["clean"] else target.failures_in_a_row + 1
        profile_result = None
        if profile.profile_rate:
            profile_result = _profiled_step(targets[0], workdir, ctx, profile.profile_rate)
        tracebacks = sippy.tracebacks()
    finally:
        sippy.stop()
        server.stop()
    if server.log_has_traceback():
        ctx.log("  teleoffice logged a traceback:\n" + log_tail(server.log_path, 20))
    return {
        "description": (
            "sipp UAC -> B2BUA -> sipp UAS at stepped rates, teleoffice and sippy's "
            "b2bua_simple one after the other at each rate"
        ),
        "hold_ms": profile.hold_ms,
        "step_seconds": profile.call_step_seconds,
        "rates": list(profile.call_rates),
        "steps": steps,
        "summary": summarize_call_rate(steps),
        "teleoffice_log_has_traceback": server.log_has_traceback(),
        "sippy_tracebacks": tracebacks,
        "profile": profile_result,
    }


def _profiled_step(
    target: Target, workdir: Path, ctx: Context, rate: int, seconds: float = 6.0
) -> dict[str, Any] | None:
    """One more teleoffice step at `rate` with py-spy sampling the server: where the
    time of a call goes (the sampling itself slows the server, so this step's
    own numbers are not compared with the others)."""
    out = workdir / "py-spy.txt"
    settle(target.sample)
    spy = pyspy.start(target_pid(target), seconds + 1, out)
    if spy is None:
        ctx.log("  py-spy is not installed: no profile")
        return None
    ctx.log(f"  profiling teleoffice at {rate}/s with py-spy")
    time.sleep(0.5)
    step = run_step(
        target, workdir, rate=rate, calls=int(rate * seconds), hold_ms=1000, label="profiled"
    )
    try:
        spy.wait(timeout=seconds + 30)
    except subprocess.TimeoutExpired:
        end_process(spy, 2.0)
    if not out.exists():
        return None
    return {"rate": rate, "successful": step["successful"], **pyspy.hot_spots(out)}


def _max_clean(steps: list[dict[str, Any]], name: str) -> float | None:
    clean = [s["target_rate"] for s in steps if s["b2bua"] == name and s["clean"]]
    return max(clean) if clean else None


def _median_cpu(steps: list[dict[str, Any]], name: str) -> float | None:
    values = [
        s["cpu_ms_per_call"]
        for s in steps
        if s["b2bua"] == name and s["clean"] and s["cpu_ms_per_call"] is not None
    ]
    if not values:
        values = [
            s["cpu_ms_per_call"]
            for s in steps
            if s["b2bua"] == name and s["cpu_ms_per_call"] is not None
        ]
    return percentile(values, 50)


def summarize_call_rate(steps: list[dict[str, Any]]) -> dict[str, Any]:
    tele, sippy = _max_clean(steps, "teleoffice"), _max_clean(steps, "sippy")
    tele_cpu, sippy_cpu = _median_cpu(steps, "teleoffice"), _median_cpu(steps, "sippy")
    capacity = {
        name: (round(1000 / cpu, 0) if cpu else None)
        for name, cpu in (("teleoffice", tele_cpu), ("sippy", sippy_cpu))
    }
    return {
        "teleoffice_max_clean_rate": tele,
        "sippy_max_clean_rate": sippy,
        "rate_ratio": round(tele / sippy, 2) if tele and sippy else None,
        "teleoffice_cpu_ms_per_call": None if tele_cpu is None else round(tele_cpu, 3),
        "sippy_cpu_ms_per_call": None if sippy_cpu is None else round(sippy_cpu, 3),
        "cpu_ratio": round(sippy_cpu / tele_cpu, 2) if tele_cpu and sippy_cpu else None,
        # What one core could do at that cost per call: an upper bound on the rate.
        "cpu_bound_rate": capacity,
        "generator_limited_steps": [
            f"{s['b2bua']}@{s['target_rate']}" for s in steps if s["generator_limited"]
        ],
    }
