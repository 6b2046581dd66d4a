"""What profiling found, recorded once (py-spy `--gil` on a server under sipp call
load, 2026-11-27), shown at the end of every summary: the before/after numbers
of the fixes made, and the hot spots that remain, each with a proposed fix.
`calls.call_rate` also profiles one step of each full run (`profile` in its
results), so the current picture is always in the summary next to this record.
"""

from __future__ import annotations

PROFILING_NOTES: list[str] = [
    "## Profiling: what stands between teleoffice and the call-rate and PDD targets",
    "",
    "Recorded with py-spy (`--gil`: only the thread holding the GIL, i.e. what the "
    "process's one core really spends) on a server carrying sipp calls at 150/s.",
    "",
    "### Fixed: the SIP parser (`sip/message.py`, `sip/headers.py`)",
    "",
    "- Header names went through `canonical_name()` and `lower()` on every lookup, "
    "about 45 times per message; each spelling is now mapped once to its key (bounded "
    "table), and names read off the wire are token-checked with one regex instead of "
    "a generator per character.",
    "- `_check_headers` collects the names present once and parses optional headers "
    "only when present; `parse_params` no longer compiles its value pattern per "
    "parameter (`re` cache lookups were 2.5 % of the server's time); CSeq methods and "
    "display names are token-checked by regex; `parse_via` strips once.",
    "- From, To and Contact values repeat in every message of a dialog: "
    "`parse_name_addr` keeps the parsed (immutable) values of the last 4,096 texts.",
    "",
    "| measure (same run, before / after) | before | after |",
    "|---|---|---|",
    "| parse + serialize, INVITE/200/ACK with new tags each time (CPU µs/message) | 64 | 39 |",
    "| parse one INVITE (CPU µs) | 59 | 24 |",
    "| server CPU per call at 120 calls/s, two servers alternating, 3 steps each "
    "(median ms) | 5.28 | 5.15 |",
    "| set-up time p99 in those steps (median ms) | 188 | 144 |",
    "",
    "The parser was about 9 % of the server's time under call load; the rest of a "
    "call's cost is elsewhere:",
    "",
    "### Remaining hot spots (outside the benchmark's files; proposed fixes)",
    "",
    "1. **Directory refresh** (`app.py` `_reload_directory`, `server/directory.py` "
    "`Directory._load`): every 2 s (`DIRECTORY_REFRESH_SECONDS`) all users and "
    "accounts are read again as ORM objects. With 10,000 users: 120 CPU ms per second "
    "with no traffic at all, 31 % of the GIL time under call load, and a GIL hold of "
    "about 200 ms every 2 s, which is the p95/p99 of post-dial delay (p50 1.5 ms, p99 "
    "236 ms), of the callback and of the screen pop, and the loop-lag spike that trips "
    "overload control. Fix: reload only on change (a version counter or max(updated_at) "
    "checked with one cheap query; the portal already triggers a reload after its "
    "writes), and build the snapshot from Core rows rather than ORM instances.",
    "2. **Call log writes** (`app.py` `log_calls.write`, `store/repos.py` "
    "`CallLogRepo.start/update/finish`): three ORM transactions (get, update, commit) "
    "per call in a worker thread, about 40 % of the GIL time at 150 calls/s. Fix: batch "
    "them like registrations (one transaction every 0.2 s), write a call once when it "
    "ends (plus one insert when it starts, for the live view), Core statements.",
    "3. **UDP sends** (`transport/sip_transport.py` `_send_udp`): 20 %, the sendto "
    "system call itself (on loopback it includes the receiver's wake-up). Fix: send "
    "fewer messages, e.g. no 100 Trying when the 180 follows within 200 ms (RFC 3261 "
    "section 17.2.1 requires it only when no answer comes within 200 ms).",
    "4. **Event encoding** (`portal/hub.py` `encode_event`): every call event is "
    "JSON-encoded even when no WebSocket listens (about 5 %). Fix: encode lazily, once, "
    "only when a connection of that user exists.",
    "5. **Overload defaults** (`server/overload.py`): one 0.1 s lag spike sheds new "
    "INVITEs for 10 s or more; with the shipped settings, 339 of 600 calls at 100/s got "
    "503. The benchmarks therefore run with overload control off (like the end-to-end "
    "tests). Fix item 1 first, then require the lag to be sustained.",
    "6. Smaller: `Directory.usernames()` builds a list of every user on each presence "
    "change (3.5 %), `Telephony._busy_count` scans every call on each call event, "
    "`MediaSession.open` binds two sockets per call (5 %; a pool of pre-bound sockets "
    "would move that off the set-up path).",
]
