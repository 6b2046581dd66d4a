"""Calls cut by a crash end in the call log as ended by the restart (issue 9), on
SQLite and PostgreSQL: the store's `close_unfinished`, the start-up step of the
composition root that runs it, and every outcome the engine reports fitting the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from teleoffice.app import Application, log_calls, to_log_entry
from teleoffice.calls.engine import CallRecord as EngineRecord
from teleoffice.calls.engine import CallState, Direction, Party
from teleoffice.config import load_settings
from teleoffice.store import (
    CallDirection,
    CallLogRepo,
    CallOutcome,
    CallRecord,
    InvalidInput,
    NotFound,
    Sessions,
)
from teleoffice.store.repos import EndedBy

T0 = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)


def logged(call_id: str, **fields: object) -> CallRecord:
    values: dict[str, object] = {
        "call_id": call_id,
        "direction": CallDirection.INTERNAL,
        "caller_number": "201",
        "callee_number": "202",
        "started_at": T0,
        "caller_user": "alice",
        "callee_user": "bob",
    }
    values.update(fields)
    return CallRecord(**values)  # type: ignore[arg-type]


@pytest.fixture
def calls(sessions: Sessions) -> CallLogRepo:
    return CallLogRepo(sessions)


def test_open_calls_are_closed_as_ended_by_restart(calls: CallLogRepo) -> None:
    calls.start(logged("ringing", ringing_at=T0 + timedelta(seconds=1)))
    calls.start(logged("talking", answered_at=T0 + timedelta(seconds=4)))
    calls.start(logged("over"))
    over = calls.finish(
        "over",
        outcome=CallOutcome.ANSWERED,
        ended_at=T0 + timedelta(seconds=30),
        status=200,
        ended_by=EndedBy.CALLER,
    )
    restart = T0 + timedelta(minutes=5)
    assert calls.close_unfinished(restart) == 2
    for call_id in ("ringing", "talking"):
        closed = calls.get(call_id)
        assert (closed.outcome, closed.ended_by, closed.ended_at, closed.status) == (
            CallOutcome.ENDED_BY_RESTART,
            EndedBy.RESTART,
            restart,
            None,
        )
    assert calls.get("over") == over  # a call that ended is history: untouched
    # A second start-up finds nothing more to close.
    assert calls.close_unfinished(restart + timedelta(minutes=1)) == 0
    # The first end wins: a late report of the call's end changes nothing.
    late = calls.finish(
        "talking", outcome=CallOutcome.ANSWERED, ended_at=restart, ended_by=EndedBy.CALLEE
    )
    assert late.ended_by is EndedBy.RESTART


def test_the_server_closes_calls_left_open_by_the_previous_process(
    url: str, calls: CallLogRepo, tmp_path: Path
) -> None:
    calls.start(logged("cut-by-crash", answered_at=T0 + timedelta(seconds=2)))
    calls.start(logged("done"))
    done = calls.finish("done", outcome=CallOutcome.BUSY, ended_at=T0, status=486)
    started = T0 + timedelta(hours=1)
    settings = load_settings(
        data_dir=tmp_path / "data", database_url=url, sip_port=0, http_port=0, prompt_dir=None
    )
    app = Application(settings, clock=started.timestamp)
    try:
        cut = calls.get("cut-by-crash")
        assert (cut.outcome, cut.ended_by, cut.ended_at) == (
            CallOutcome.ENDED_BY_RESTART,
            EndedBy.RESTART,
            started,
        )
        assert calls.get("done") == done
        assert [c.call_id for c in calls.recent() if not c.finished] == []
    finally:
        app.engine.dispose()


# Every outcome the call engine reports (see teleoffice.calls.engine).
ENGINE_OUTCOMES = (
    "answered",
    "busy",
    "no-answer",
    "cancelled",
    "not-found",
    "unavailable",
    "failed",
    "barred",
    "declined",
)


def test_every_outcome_of_the_engine_reaches_the_log(calls: CallLogRepo) -> None:
    # A 603 used to be reported as "declined", which the log did not know: the
    # whole batch of records it was written with was lost.
    start = T0.timestamp()
    records = [
        EngineRecord(
            call_id=f"c-{outcome}",
            direction=Direction.INTERNAL,
            caller=Party("201", "Alice"),
            callee=Party("202", "Bob"),
            dialled="202",
            route="extension 202",
            trunk=None,
            caller_user="alice",
            callee_user="bob",
            state=CallState.ENDED,
            started_at=start,
            ended_at=start + 3,
            outcome=outcome,
            status=200 if outcome == "answered" else 603,
            ended_by="callee",
        )
        for outcome in ENGINE_OUTCOMES
    ]
    assert [str(to_log_entry(r).outcome) for r in records] == list(ENGINE_OUTCOMES)
    log_calls(calls)(records)
    stored = {c.call_id: c for c in calls.recent()}
    assert {str(c.outcome) for c in stored.values()} == set(ENGINE_OUTCOMES)
    assert stored["c-declined"].outcome is CallOutcome.DECLINED


def test_a_batch_of_snapshots_is_written_in_one_go(calls: CallLogRepo) -> None:
    # What the server writes every 0.2 s: new calls whole, known calls' progress,
    # and ends, the first end winning.
    calls.start(logged("known"))
    calls.start(logged("ended"))
    first_end = calls.finish(
        "ended", outcome=CallOutcome.BUSY, ended_at=T0 + timedelta(seconds=2), status=486
    )
    answered = T0 + timedelta(seconds=5)
    calls.record_all(
        [
            logged("new", ringing_at=T0 + timedelta(seconds=1)),
            logged(
                "known",
                answered_at=answered,
                route="extension 202, then voicemail",
                outcome=CallOutcome.ANSWERED,
                ended_at=T0 + timedelta(seconds=60),
                status=200,
                ended_by=EndedBy.CALLER,
            ),
            logged(
                "ended",
                outcome=CallOutcome.ANSWERED,
                ended_at=T0 + timedelta(seconds=9),
                status=200,
            ),
        ]
    )
    assert calls.get("new").ringing_at == T0 + timedelta(seconds=1)
    assert not calls.get("new").finished
    known = calls.get("known")
    assert (known.answered_at, known.route, known.outcome, known.ended_by) == (
        answered,
        "extension 202, then voicemail",
        CallOutcome.ANSWERED,
        EndedBy.CALLER,
    )
    assert calls.get("ended") == first_end
    calls.record_all([])  # nothing to write is no error


def test_a_bad_entry_leaves_the_whole_batch_unwritten(calls: CallLogRepo) -> None:
    with pytest.raises(InvalidInput):
        calls.record_all([logged("good"), logged("bad", direction="sideways")])
    with pytest.raises(NotFound):
        calls.get("good")
