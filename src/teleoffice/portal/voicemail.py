"""The current user's mailbox: messages, their audio, the PIN and the greeting (rule T12).

Every route acts on the caller's own mailbox; a message id is looked up only
among the caller's messages, so somebody else's id is a 404 exactly like an
id nobody has (never a 403, which would confirm that it exists).

Every change is announced twice: a `voicemail.changed` event with the new
counts goes to the user's portal connections, and `voicemail_changed(username)`
on the context lets the composition root send message-waiting NOTIFYs.

Audio is served with byte ranges (RFC 9110 section 14), which browsers' audio
elements use to seek. The file is opened once per request and streamed from
that handle, so a message deleted mid-download still finishes downloading.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, BinaryIO, Final, Self

from fastapi import APIRouter, Header, Path
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, Field, StringConstraints
from starlette.background import BackgroundTask

from teleoffice.portal.deps import ContextDep, CurrentUser, PortalContext
from teleoffice.portal.errors import ApiError, error_responses
from teleoffice.portal.schemas import InputModel, Party
from teleoffice.store.repos import NotFound
from teleoffice.store.voicemail import MessageRecord, VoicemailStore

log = logging.getLogger("teleoffice.portal")

router = APIRouter(prefix="/api/me/voicemail", tags=["voicemail"], responses=error_responses(401))

MessageId = Annotated[int, Path(description="The message's id, from `GET /api/me/voicemail`.")]
CHUNK_SIZE: Final = 64 * 1024
AUDIO_TYPE: Final = "audio/wav"


# --- what goes in and out ------------------------------------------------------------


class VoicemailMessageOut(BaseModel):
    id: int
    from_: Party = Field(serialization_alias="from", description="Who left the message.")
    created_at: datetime
    duration: float = Field(description="Seconds.")
    heard: bool = Field(description="False for a new message.")

    @classmethod
    def of(cls, message: MessageRecord) -> Self:
        return cls(
            id=message.id,
            from_=Party(number=message.caller_number, name=message.caller_name),
            created_at=message.created_at,
            duration=message.duration,
            heard=message.heard,
        )


class VoicemailOut(BaseModel):
    enabled: bool = Field(description="Whether calls may reach the mailbox (set by an admin).")
    has_pin: bool = Field(description="Whether a PIN is set for reaching it by phone.")
    has_greeting: bool = Field(description="A recorded greeting; else the system one plays.")
    new: int
    old: int
    messages: list[VoicemailMessageOut] = Field(description="Newest first.")


class HeardIn(InputModel):
    heard: bool


class PinIn(InputModel):
    pin: Annotated[str, StringConstraints(pattern=r"^[0-9]{4,12}$")] = Field(
        description="4 to 12 digits, typed on the phone's keypad."
    )


# --- helpers ----------------------------------------------------------------------------


def mailboxes(context: PortalContext) -> VoicemailStore:
    if context.voicemail is None:
        raise ApiError(503, "unavailable", "voicemail is not available on this server")
    return context.voicemail


def announce_voicemail(context: PortalContext, username: str) -> None:
    """Tell the user's portal tabs and phones that their mailbox changed."""
    new, old = mailboxes(context).counts(username)
    context.hub.publish({"type": "voicemail.changed", "new": new, "old": old}, [username])
    try:
        context.voicemail_changed(username)
    except Exception:
        # The change is made; a lamp that lags must not turn it into an error.
        log.exception("could not announce the voicemail change of %s", username)


# --- routes -----------------------------------------------------------------------------


@router.get(
    "",
    summary="My voicemail",
    description="The mailbox's state and every message in it, newest first.",
    responses=error_responses(503),
)
def get_voicemail(user: CurrentUser, context: ContextDep) -> VoicemailOut:
    store = mailboxes(context)
    box = store.box(user.username)
    messages = store.messages(user.username)
    # Counted from the list itself, so the answer is consistent with itself.
    new = sum(not message.heard for message in messages)
    return VoicemailOut(
        enabled=box.enabled,
        has_pin=box.has_pin,
        has_greeting=box.has_greeting,
        new=new,
        old=len(messages) - new,
        messages=[VoicemailMessageOut.of(message) for message in messages],
    )


@router.put(
    "/pin",
    status_code=204,
    summary="Set my voicemail PIN",
    description="The PIN for reaching the mailbox from a phone: 4 to 12 digits.",
    responses=error_responses(422, 503),
)
def put_pin(body: PinIn, user: CurrentUser, context: ContextDep) -> None:
    mailboxes(context).set_pin(user.username, body.pin)
    announce_voicemail(context, user.username)


@router.get(
    "/greeting",
    summary="Listen to my recorded greeting",
    description=(
        "The greeting callers hear, as `audio/wav` (byte ranges as for messages). "
        "404 when there is none and callers hear the system greeting."
    ),
    response_class=Response,
    responses={
        200: {"content": {AUDIO_TYPE: {}}, "description": "The whole recording."},
        206: {"content": {AUDIO_TYPE: {}}, "description": "The requested byte range."},
        **error_responses(404, 416, 503),
    },
)
def get_greeting(
    user: CurrentUser,
    context: ContextDep,
    range_: Annotated[str | None, Header(alias="range")] = None,
    if_range: Annotated[str | None, Header(alias="if-range")] = None,
) -> Response:
    path = mailboxes(context).greeting_path(user.username)
    gone = "no recorded greeting: callers hear the system greeting"
    if path is None:
        raise NotFound(gone)
    return audio_response(path, "greeting.wav", range_, if_range, gone)


@router.delete(
    "/greeting",
    status_code=204,
    summary="Delete my recorded greeting",
    description="Callers hear the system greeting again. 404 when there is none.",
    responses=error_responses(404, 503),
)
def delete_greeting(user: CurrentUser, context: ContextDep) -> None:
    mailboxes(context).delete_greeting(user.username)
    announce_voicemail(context, user.username)


@router.patch(
    "/{message_id}",
    summary="Mark a message heard or new",
    responses=error_responses(404, 422, 503),
)
def patch_message(
    message_id: MessageId, body: HeardIn, user: CurrentUser, context: ContextDep
) -> VoicemailMessageOut:
    record = mailboxes(context).mark_heard(user.username, message_id, body.heard)
    announce_voicemail(context, user.username)
    return VoicemailMessageOut.of(record)


@router.delete(
    "/{message_id}",
    status_code=204,
    summary="Delete a message",
    description="Removes the message and its recording.",
    responses=error_responses(404, 422, 503),
)
def delete_message(message_id: MessageId, user: CurrentUser, context: ContextDep) -> None:
    mailboxes(context).delete_message(user.username, message_id)
    announce_voicemail(context, user.username)


@router.get(
    "/{message_id}/audio",
    summary="Download or play a message",
    description=(
        "The recording as `audio/wav` (8 kHz, 16-bit, mono). Single byte ranges "
        "are honoured (`Range: bytes=0-1023`, `bytes=1024-`, `bytes=-512`) with "
        "206; a range that cannot be satisfied, or is malformed, gets 416. Other "
        "range units, several ranges, or an `If-Range` that does not match the "
        "ETag get the whole file."
    ),
    response_class=Response,
    responses={
        200: {"content": {AUDIO_TYPE: {}}, "description": "The whole recording."},
        206: {"content": {AUDIO_TYPE: {}}, "description": "The requested byte range."},
        **error_responses(404, 416, 422, 503),
    },
)
def get_audio(
    message_id: MessageId,
    user: CurrentUser,
    context: ContextDep,
    range_: Annotated[str | None, Header(alias="range")] = None,
    if_range: Annotated[str | None, Header(alias="if-range")] = None,
) -> Response:
    path = mailboxes(context).audio_path(user.username, message_id)
    return audio_response(
        path, f"voicemail-{message_id}.wav", range_, if_range, f"no voicemail message {message_id}"
    )


def audio_response(
    path: FilePath, filename: str, range_: str | None, if_range: str | None, gone: str
) -> Response:
    """`path` as audio/wav, whole (200) or the one byte range asked for (206).

    The file is opened here and streamed from that handle, so a recording
    deleted mid-download still finishes; one deleted before is `NotFound(gone)`.
    """
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise NotFound(gone) from None
    try:
        stat = os.fstat(handle.fileno())
        size = stat.st_size
        etag = f'"{hashlib.sha256(f"{path.name}:{size}".encode()).hexdigest()[:32]}"'
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Content-Disposition": f'attachment; filename="{filename}"',
            # Somebody's messages: no shared cache keeps them.
            "Cache-Control": "private, no-store",
            "X-Content-Type-Options": "nosniff",
        }
        satisfied = choose_range(range_, if_range, etag, size)
        if satisfied is None:
            start, end, status = 0, size, 200
        else:
            (start, end), status = satisfied, 206
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        headers["Content-Length"] = str(end - start)
    except BaseException:
        handle.close()
        raise
    return StreamingResponse(
        _read(handle, start, end),
        status_code=status,
        media_type=AUDIO_TYPE,
        headers=headers,
        # Also when the client leaves before the body is read.
        background=BackgroundTask(handle.close),
    )


def _read(handle: BinaryIO, start: int, end: int) -> Iterator[bytes]:
    try:
        handle.seek(start)
        left = end - start
        while left > 0:
            chunk = handle.read(min(CHUNK_SIZE, left))
            if not chunk:
                break
            left -= len(chunk)
            yield chunk
    finally:
        handle.close()


# --- byte ranges (RFC 9110 section 14) ----------------------------------------------------

_RANGE_RE: Final = re.compile(r"([0-9]*)[ \t]*-[ \t]*([0-9]*)")
# More digits than any file size needs; a longer number means "beyond any
# file", and int() on a thousand digits would only cost time.
_MAX_DIGITS: Final = 18
_BEYOND_ANY_FILE: Final = 10**_MAX_DIGITS


class BadRange(ValueError):
    """A `bytes` range that is not valid syntax (answered 416)."""


@dataclass(frozen=True, slots=True)
class ByteRange:
    """One range as the client wrote it: `first-last`, `first-` or `-suffix`."""

    first: int | None
    last: int | None  # with `first`: the last byte; without: the suffix length

    def resolve(self, size: int) -> tuple[int, int] | None:
        """(start, end) with `end` exclusive, or None when unsatisfiable."""
        if self.first is None:
            suffix = self.last or 0
            if suffix == 0 or size == 0:
                return None
            return max(size - suffix, 0), size
        if self.first >= size:
            return None
        end = size if self.last is None else min(self.last + 1, size)
        return self.first, end


def _number(digits: str) -> int:
    significant = digits.lstrip("0") or "0"
    return int(significant) if len(significant) <= _MAX_DIGITS else _BEYOND_ANY_FILE


def parse_range(header: str) -> ByteRange | None:
    """The one byte range `header` asks for; None when it is to be ignored
    (another unit, or several ranges: RFC 9110 section 14.2 lets a server send
    the whole representation instead); `BadRange` when it is malformed."""
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if len(parts) > 1:
        return None
    match = _RANGE_RE.fullmatch(parts[0]) if parts else None
    if match is None:
        raise BadRange(header)
    first_text, last_text = match.groups()
    if not first_text and not last_text:
        raise BadRange(header)
    last = _number(last_text) if last_text else None
    if not first_text:
        return ByteRange(None, last)
    first = _number(first_text)
    if last is not None and last < first:
        raise BadRange(header)
    return ByteRange(first, last)


def choose_range(
    range_header: str | None, if_range: str | None, etag: str, size: int
) -> tuple[int, int] | None:
    """The (start, end) to answer with 206, or None for the whole file (200);
    `ApiError` 416 for a range that is malformed or cannot be satisfied."""
    if range_header is None or (if_range is not None and if_range != etag):
        # A changed file (If-Range mismatch) gets the whole of it, RFC 9110 13.1.5.
        return None
    try:
        wanted = parse_range(range_header)
    except BadRange:
        satisfied = None
    else:
        if wanted is None:
            return None
        satisfied = wanted.resolve(size)
    if satisfied is None:
        raise ApiError(
            416,
            "range_not_satisfiable",
            f"the range {range_header[:80]!r} cannot be served from a {size}-byte recording",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return satisfied
