"""The benchmarks: OPTIONS against REGISTER, and the memory of registrations.

`options_vs_register` drives one server with two sipp UAC scenarios at stepped
rates, interleaved (OPTIONS at R, REGISTER at R, then the next R) so that both see
the same conditions. OPTIONS is the server's floor cost per request (parse, server
transaction, answer); a REGISTER call is two transactions: the 401 challenge and
the authorized REGISTER that gets the 200. Per step it reports what sipp saw
(successful and failed calls, retransmissions, response times) and what the server
spent (CPU ms per successful call, from /proc). The "clean" rate of a scenario is
the highest target rate with no failed call and no retransmission (the
RFC 7501/7502 notion of a rate sustained without loss or retry).

`registrations_memory` registers many distinct accounts (one contact each) and
reads the server's resident memory before and after.

Nothing here judges speed: results are numbers, ratios and notes.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from teleoffice.bench.harness import (
    FIRST_EXTENSION,
    BenchError,
    ProcSample,
    Server,
    Sipp,
    SippRun,
    first_challenge_algorithm,
    prepare_data_dir,
    run_cli,
    write_injection_file,
)
from teleoffice.bench.portal import PORTAL_PASSWORD
from teleoffice.bench.processes import LOOPBACK, free_port, log_tail, wait_until

PORTAL_USERS = 2  # bench1000 (telecommuter, presence), bench1001 (presence watcher)

# Overload control off (as in the end-to-end tests): the benchmarks look for the
# rates at which the server itself fails, and the shipped thresholds shed new
# calls for seconds after one 0.1 s spike of event-loop lag, which a machine
# shared with other work produces at any rate (seen at 100 calls/s).
SERVER_ENV = {
    "TELEOFFICE_OVERLOAD_LAG_HIGH": "5",
    "TELEOFFICE_OVERLOAD_LAG_LOW": "4",
    "TELEOFFICE_OVERLOAD_BUSY_HIGH": "1",
    "TELEOFFICE_OVERLOAD_BUSY_LOW": "0.99",
}

# A step whose achieved rate is below this share of the target, while the server
# used less than SERVER_BUSY of one core, is limited by the generator, not the server.
ACHIEVED_SHARE = 0.9
SERVER_BUSY = 0.8
SIPP_BUSY = 0.9  # sipp is single-threaded: near one full core it is saturated
PAUSE_BETWEEN_RUNS = 1.0
IDLE_SECONDS = 2.0
# Before each step the server must be quiet (the previous step's backlog and
# retransmissions handled): CPU under SETTLED_CPU of a core over a short window.
SETTLED_CPU = 0.05
SETTLE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Profile:
    """How big a run is: `make bench` (full) or `--quick`."""

    name: str
    rates: tuple[int, ...]
    step_seconds: float
    accounts: int  # accounts the REGISTER steps cycle through
    memory_accounts: int  # distinct accounts registered by registrations_memory
    memory_rate: int
    drain_timeout: float  # how long to wait for server transactions to end (Timer J)
    # calls: the rate ladder (calls/s), calls per step (seconds at the rate), hold time
    call_rates: tuple[int, ...] = (50, 100)
    call_step_seconds: float = 2.0
    hold_ms: int = 500
    pdd_rate: int = 100  # post-dial delay: calls/s ...
    pdd_calls: int = 200  # ... and how many
    media_calls: tuple[int, ...] = (50, 100)  # concurrent relayed calls per step
    media_seconds: float = 3.0
    portal_samples: int = 20  # telecommuter: callbacks and incoming calls timed
    presence_watchers: tuple[int, ...] = (10, 50)  # SIP and WebSocket watchers
    presence_changes: int = 5
    active_calls: int = 200  # memory per active call
    profile_rate: int = 0  # calls/s of one step sampled by py-spy (0: none)

    @property
    def users_needed(self) -> int:
        # One more than the memory benchmark registers: its warm-up account.
        return max(self.accounts, self.memory_accounts + 1)


FULL = Profile(
    name="full",
    rates=(500, 1000, 2000, 3000),
    step_seconds=5.0,
    accounts=10_000,
    memory_accounts=10_000,
    memory_rate=500,
    drain_timeout=45.0,
    call_rates=(100, 200, 300, 400, 500, 600, 800, 1000, 1200, 1500),
    call_step_seconds=6.0,
    hold_ms=1000,
    pdd_rate=100,
    pdd_calls=1500,
    media_calls=(100, 200, 300, 400, 600),
    media_seconds=5.0,
    portal_samples=200,
    presence_watchers=(100, 500, 1000),
    presence_changes=10,
    active_calls=2000,
    profile_rate=150,
)
QUICK = Profile(
    name="quick",
    rates=(200,),
    step_seconds=1.0,
    accounts=300,
    memory_accounts=300,
    memory_rate=300,
    drain_timeout=0.0,
    call_rates=(50,),
    call_step_seconds=2.0,
    hold_ms=100,
    pdd_rate=100,
    pdd_calls=50,
    media_calls=(20,),
    media_seconds=1.0,
    portal_samples=10,
    presence_watchers=(10, 20),
    presence_changes=2,
    active_calls=50,
)


@dataclass
class Context:
    """What the benchmarks of one run share: a scratch folder and a seeded data directory."""

    workdir: Path
    profile: Profile
    log: Callable[[str], None] = print
    sippy_venv: Path = Path("bench-results/.venv-sippy")
    seed_dir: Path | None = None
    seed_seconds: float = 0.0
    # The SIP trunk `bench` (prefix 9) of every server: the port the calling side
    # of the call benchmarks sends from (one at a time), with two more above it
    # for that side's RTP.
    trunk_port: int = field(default_factory=lambda: free_port(span=3))
    servers: list[Server] = field(default_factory=list)
    _servers: int = 0

    def finish(self) -> None:
        """Wait for every server to have ended (some stop in the background)."""
        for server in self.servers:
            server.stop()
            server.join_stop()

    def seed_commands(self) -> list[list[str]]:
        """CLI set-up every server shares, run once on the seed: the trunk, portal
        logins for the first PORTAL_USERS users, telecommuter mode for the first."""
        port = str(self.trunk_port)
        first = f"bench{FIRST_EXTENSION}"
        commands = [
            ["trunk", "add", "bench", "--host", LOOPBACK, "--port", port, "--prefix", "9"],
            ["user", "set", first, "--password", PORTAL_PASSWORD, "--telecommuter"],
        ]
        commands += [
            ["user", "set", f"bench{FIRST_EXTENSION + i}", "--password", PORTAL_PASSWORD]
            for i in range(1, PORTAL_USERS)
        ]
        return commands

    def seed(self) -> Path:
        """The data directory every server copies: init, the benchmark users, and
        `seed_commands`."""
        if self.seed_dir is None:
            users = self.profile.users_needed
            self.log(f"seeding a data directory with {users} users ...")
            path = self.workdir / "seed"
            self.seed_seconds = prepare_data_dir(path, users)
            began = time.monotonic()
            for command in self.seed_commands():
                run_cli(path, *command)
            self.seed_seconds += time.monotonic() - began
            self.log(f"  done in {self.seed_seconds:.1f} s")
            self.seed_dir = path
        return self.seed_dir

    def start_server(
        self,
        label: str,
        *,
        setup: Sequence[Sequence[str]] = (),
        env: Mapping[str, str] | None = None,
    ) -> Server:
        """A running server on a fresh copy of the seeded data directory, after the
        CLI commands of `setup` (trunks, users' settings) ran on that copy."""
        seed = self.seed()
        self._servers += 1
        server = Server(
            self.workdir / f"server-{self._servers}-{label}",
            seed,
            env={**SERVER_ENV, **(env or {})},
        )
        server.stop_in_background = self.profile.name == "quick"
        self.servers.append(server)
        for command in setup:
            server.cli(*command)
        server.start()
        # Up to 10 s: a server that starts on a busy machine may shed the first
        # REGISTERs (503, overload control) until its event loop catches up.
        algorithm = first_challenge_algorithm(server.sip_port, str(FIRST_EXTENSION), timeout=10.0)
        if algorithm != "MD5":
            server.stop()
            found = "no 401" if algorithm is None else f"a {algorithm} challenge first"
            raise BenchError(
                f"an unauthenticated REGISTER got {found}; sipp 3.6 can only answer an "
                "MD5 challenge listed first (setting digest_algorithms)\n"
                + log_tail(server.log_path)
            )
        return server


# --- statistics -----------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float | None:
    """The pct-th percentile with linear interpolation (numpy's default), or None."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summarize_times(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        "p50": _round(percentile(values, 50)),
        "p95": _round(percentile(values, 95)),
        "p99": _round(percentile(values, 99)),
        "max": max(values) if values else None,
    }


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or denominator is None or denominator <= 0:
        return None
    return numerator / denominator


# --- options_vs_register -----------------------------------------------------------


def _step_record(run: SippRun, before: ProcSample, after: ProcSample) -> dict[str, Any]:
    elapsed = max(after.at - before.at, 1e-6)
    cpu = after.cpu_seconds - before.cpu_seconds
    server_util = cpu / elapsed
    sipp_util = run.sipp_cpu_seconds / max(run.wall_seconds, 1e-6)
    achieved = run.achieved_rate
    generator_limited = achieved < ACHIEVED_SHARE * run.target_rate and (
        server_util < SERVER_BUSY or sipp_util >= SIPP_BUSY
    )
    return {
        "scenario": run.scenario,
        "target_rate": run.target_rate,
        "calls": run.calls,
        "created": run.created,
        "achieved_rate": round(achieved, 1),
        "successful": run.successful,
        "failed": run.failed,
        "retransmissions": run.retransmissions,
        "response_time_ms": summarize_times(run.response_times_ms),
        "server_cpu_seconds": round(cpu, 4),
        "server_cpu_ms_per_call": (
            round(cpu * 1000 / run.successful, 4) if run.successful else None
        ),
        "server_cpu_utilization": round(server_util, 3),
        "sipp_cpu_utilization": round(sipp_util, 3),
        "server_rss_bytes": after.rss_bytes,
        "wall_seconds": round(run.wall_seconds, 2),
        "sipp_exit_code": run.returncode,
        "sipp_killed": run.killed,
        "clean": run.failed == 0 and run.retransmissions == 0 and run.successful == run.calls,
        "generator_limited": generator_limited,
        "error_sample": run.error_sample[:600] if run.failed else "",
    }


def _step(
    server: Server,
    sipp: Sipp,
    scenario: str,
    *,
    rate: int,
    calls: int,
    injection: Path | None = None,
) -> dict[str, Any]:
    bindings = server.health().get("registrations")
    before = server.sample()
    run = sipp.run(scenario, rate=rate, calls=calls, injection=injection)
    record = _step_record(run, before, server.sample())
    record["bindings_at_start"] = bindings
    return record


def _describe(record: dict[str, Any]) -> str:
    times = record["response_time_ms"]
    return (
        f"    ok {record['successful']} failed {record['failed']} "
        f"retrans {record['retransmissions']} achieved {record['achieved_rate']}/s "
        f"p50 {times['p50']} p99 {times['p99']} ms, "
        f"server {record['server_cpu_ms_per_call']} ms/call "
        f"({record['server_cpu_utilization']:.0%} CPU)"
    )


def _idle_cpu(server: Server, seconds: float) -> float:
    """CPU ms per second the server spends doing nothing (timers, HTTP, flush loop)."""
    before = server.sample()
    time.sleep(seconds)
    after = server.sample()
    return (after.cpu_seconds - before.cpu_seconds) * 1000 / max(after.at - before.at, 1e-6)


def _settle(server: Server, timeout: float = SETTLE_TIMEOUT, window: float = 0.5) -> float:
    """Wait until the server is quiet; the seconds waited (at least one window)."""
    started = time.monotonic()
    previous = server.sample()
    while True:
        time.sleep(window)
        current = server.sample()
        busy = (current.cpu_seconds - previous.cpu_seconds) / max(current.at - previous.at, 1e-6)
        if busy < SETTLED_CPU or current.at - started >= timeout:
            return current.at - started
        previous = current


def options_vs_register(ctx: Context) -> dict[str, Any]:
    profile = ctx.profile
    server = ctx.start_server("options-vs-register")
    try:
        sipp = Sipp(server.sip_port, ctx.workdir / "sipp-options-vs-register")
        accounts = [str(FIRST_EXTENSION + i) for i in range(profile.accounts)]
        users_csv = sipp.workdir / "users.csv"
        users_csv.parent.mkdir(parents=True, exist_ok=True)
        write_injection_file(users_csv, accounts)
        quick = profile.drain_timeout <= 0
        pause = 0.2 if quick else PAUSE_BETWEEN_RUNS
        idle_ms_per_s = _idle_cpu(server, 1.0 if quick else IDLE_SECONDS)
        rss_start = server.sample().rss_bytes
        # Warm-up, not reported: the first REGISTER loads the account cache.
        ctx.log("  warm-up")
        warm = 10 if quick else 25
        sipp.run("options", rate=50, calls=warm)
        sipp.run("register", rate=50, calls=warm, injection=users_csv)
        steps: list[dict[str, Any]] = []
        for rate in profile.rates:
            calls = max(1, int(rate * profile.step_seconds))
            for scenario in ("options", "register"):
                time.sleep(pause)
                settled = _settle(server)
                ctx.log(f"  {scenario} at {rate}/s, {calls} calls (settled in {settled:.1f} s)")
                injection = users_csv if scenario == "register" else None
                record = _step(server, sipp, scenario, rate=rate, calls=calls, injection=injection)
                record["settled_seconds"] = round(settled, 1)
                ctx.log(_describe(record))
                steps.append(record)
        # The floor again, now that the registrar holds every binding of the steps.
        rate = profile.rates[0]
        calls = max(1, int(rate * profile.step_seconds))
        # Unlike the steps, this one first waits for every earlier transaction to end
        # (Timer J), so what it measures is the registrar's size and nothing else.
        drained = _drain(server, profile.drain_timeout) if profile.drain_timeout > 0 else None
        time.sleep(pause)
        settled = _settle(server)
        ctx.log(f"  options at {rate}/s again, with the bindings of every step")
        options_after = _step(server, sipp, "options", rate=rate, calls=calls)
        options_after["settled_seconds"] = round(settled, 1)
        options_after["drained_seconds"] = None if drained is None else round(drained, 1)
        ctx.log(_describe(options_after))
        health = server.health()
        rss_end = server.sample().rss_bytes
    finally:
        server.stop()
    traceback = server.log_has_traceback()
    return {
        "description": (
            "sipp UAC at stepped rates against one server: OPTIONS (floor cost) and "
            "REGISTER with digest (401, then authorized REGISTER and 200)"
        ),
        "profile": profile.name,
        "accounts": profile.accounts,
        "step_seconds": profile.step_seconds,
        "rates": list(profile.rates),
        "idle_cpu_ms_per_second": round(idle_ms_per_s, 3),
        "server_rss_start_bytes": rss_start,
        "server_rss_end_bytes": rss_end,
        "server_registrations_at_end": health.get("registrations"),
        "server_exit_code": server.exit_code,
        "server_log_has_traceback": traceback,
        "steps": steps,
        "options_after": options_after,
        "summary": _compare(steps, options_after),
    }


def _by_rate(steps: list[dict[str, Any]], scenario: str) -> dict[float, dict[str, Any]]:
    return {s["target_rate"]: s for s in steps if s["scenario"] == scenario}


def _max_clean_rate(steps: dict[float, dict[str, Any]]) -> float | None:
    clean = [rate for rate, step in steps.items() if step["clean"]]
    return max(clean) if clean else None


def _compare(steps: list[dict[str, Any]], options_after: dict[str, Any]) -> dict[str, Any]:
    options = _by_rate(steps, "options")
    register = _by_rate(steps, "register")
    per_rate: list[dict[str, Any]] = []
    for rate in sorted(set(options) & set(register)):
        o, r = options[rate], register[rate]
        per_rate.append(
            {
                "target_rate": rate,
                "cpu_ratio": _round(
                    _ratio(r["server_cpu_ms_per_call"], o["server_cpu_ms_per_call"])
                ),
                "p50_ratio": _round(
                    _ratio(r["response_time_ms"]["p50"], o["response_time_ms"]["p50"])
                ),
                "both_clean": o["clean"] and r["clean"],
            }
        )
    clean_ratios = [p["cpu_ratio"] for p in per_rate if p["both_clean"] and p["cpu_ratio"]]
    all_ratios = [p["cpu_ratio"] for p in per_rate if p["cpu_ratio"]]
    chosen = clean_ratios or all_ratios
    first = options.get(options_after["target_rate"])
    return {
        "options_max_clean_rate": _max_clean_rate(options),
        "register_max_clean_rate": _max_clean_rate(register),
        "register_to_options_cpu_ratio": _round(statistics.median(chosen)) if chosen else None,
        "cpu_ratio_from": "clean steps" if clean_ratios else "all steps",
        "per_rate": per_rate,
        "options_floor_growth": _round(
            _ratio(
                options_after["server_cpu_ms_per_call"],
                first["server_cpu_ms_per_call"] if first else None,
            )
        ),
        "generator_limited_steps": [
            f"{s['scenario']}@{s['target_rate']:g}" for s in steps if s["generator_limited"]
        ],
    }


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# --- registrations_memory ----------------------------------------------------------


def _stored_registrations(data_dir: Path) -> int | None:
    """Rows of the registrations table, read directly (the server batches its writes)."""
    path = data_dir / "teleoffice.db"
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            row = conn.execute("SELECT count(*) FROM registrations").fetchone()
    except sqlite3.Error:
        return None
    return int(row[0]) if row else None


def _drain(server: Server, timeout: float) -> float | None:
    """Wait until the server holds no transaction (UDP server transactions stay for
    Timer J, 32 s, after their answer); the seconds it took, or None on timeout."""
    started = time.monotonic()
    if wait_until(
        lambda: int(server.health().get("transactions", 0)) == 0, timeout=timeout, interval=0.5
    ):
        return time.monotonic() - started
    return None


def registrations_memory(ctx: Context) -> dict[str, Any]:
    """Distinct accounts registered once each; RSS before and after.

    The full run first "warms the heap": the same accounts REGISTER with Expires: 0
    (401, authorized REGISTER, 200, and no binding), and the server drains its
    transactions. The memory that pass needed is free again inside the process,
    though CPython rarely returns it to the system, so the measured pass reuses it
    and its growth is what the registrations themselves keep (plus the digest
    nonces, kept for nonce_ttl). The simple figure, from a server that had not
    seen that traffic before, is reported too.
    """
    profile = ctx.profile
    count = profile.memory_accounts
    warm_heap = profile.drain_timeout > 0
    server = ctx.start_server("registrations-memory")
    try:
        sipp = Sipp(server.sip_port, ctx.workdir / "sipp-registrations-memory")
        sipp.workdir.mkdir(parents=True, exist_ok=True)
        warmup_csv = sipp.workdir / "warmup.csv"
        users_csv = sipp.workdir / "users.csv"
        # The warm-up account is the one after the measured ones.
        write_injection_file(warmup_csv, [str(FIRST_EXTENSION + count)])
        write_injection_file(users_csv, [str(FIRST_EXTENSION + i) for i in range(count)])
        ctx.log("  warm-up registration")
        warm = sipp.run("register", rate=10, calls=1, injection=warmup_csv)
        if warm.successful != 1:
            raise BenchError(f"the warm-up REGISTER failed:\n{warm.error_sample}")
        time.sleep(1.0)
        start = server.sample()
        heap_pass: SippRun | None = None
        if warm_heap:
            ctx.log(f"  warming the heap: {count} REGISTERs with Expires: 0")
            heap_pass = sipp.run(
                "register",
                rate=profile.memory_rate,
                calls=count,
                injection=users_csv,
                keys={"expires": "0"},
            )
            _drain(server, profile.drain_timeout)
        registered_before = int(server.health().get("registrations", 0))
        before = server.sample()
        ctx.log(f"  registering {count} accounts at {profile.memory_rate}/s")
        run = sipp.run("register", rate=profile.memory_rate, calls=count, injection=users_csv)
        wait_until(
            lambda: int(server.health().get("registrations", 0)) >= registered_before + count,
            timeout=10.0,
            interval=0.2,
        )
        time.sleep(1.0)  # past the 0.2 s batch writes
        health = server.health()
        registered_after = int(health.get("registrations", 0))
        after = server.sample()
        drained: ProcSample | None = None
        drain_seconds: float | None = None
        if profile.drain_timeout > 0:
            ctx.log("  waiting for the server transactions to end (RFC 3261 Timer J)")
            drain_seconds = _drain(server, profile.drain_timeout)
            if drain_seconds is not None:
                drained = server.sample()
        stored = _stored_registrations(server.data_dir)
    finally:
        server.stop()
    added = registered_after - registered_before

    def per_registration(growth: int | None) -> float | None:
        return round(growth / added, 1) if growth is not None and added > 0 else None

    end = drained or after
    result: dict[str, Any] = {
        "description": (
            "distinct accounts registered once each (one contact) with sipp; the "
            "server's resident memory before and after"
        ),
        "profile": profile.name,
        "accounts": count,
        "rate": profile.memory_rate,
        "successful": run.successful,
        "failed": run.failed,
        "retransmissions": run.retransmissions,
        "achieved_rate": round(run.achieved_rate, 1),
        "response_time_ms": summarize_times(run.response_times_ms),
        "registrations_before": registered_before,
        "registrations_after": registered_after,
        "registrations_added": added,
        "stored_registrations": stored,
        "warm_heap": warm_heap,
        "warm_heap_pass_failed": heap_pass.failed if heap_pass else None,
        "rss_start_bytes": start.rss_bytes,
        "rss_before_bytes": before.rss_bytes,
        "rss_after_bytes": after.rss_bytes,
        "rss_after_drain_bytes": drained.rss_bytes if drained else None,
        "rss_growth_bytes": end.rss_bytes - before.rss_bytes,
        # The headline: what the registrations keep (after the drain when there was one).
        "bytes_per_registration": per_registration(end.rss_bytes - before.rss_bytes),
        # From a server that never saw such traffic, right after the run: includes the
        # transactions still waiting for Timer J and the heap they grew.
        "bytes_per_registration_cold": per_registration(after.rss_bytes - start.rss_bytes),
        "transactions_after": health.get("transactions"),
        "drain_seconds": round(drain_seconds, 1) if drain_seconds is not None else None,
        "peak_rss_bytes": end.peak_rss_bytes,
        "server_cpu_ms_per_registration": (
            round((after.cpu_seconds - before.cpu_seconds) * 1000 / run.successful, 4)
            if run.successful
            else None
        ),
        "server_exit_code": server.exit_code,
        "server_log_has_traceback": server.log_has_traceback(),
    }
    ctx.log(
        f"    {added} registrations, RSS {before.rss_bytes / 2**20:.1f} -> "
        f"{end.rss_bytes / 2**20:.1f} MiB ({result['bytes_per_registration']} B each; "
        f"cold {result['bytes_per_registration_cold']} B)"
    )
    return result


Benchmark = Callable[[Context], dict[str, Any]]

BENCHMARKS: dict[str, Benchmark] = {
    "options_vs_register": options_vs_register,
    "registrations_memory": registrations_memory,
}
