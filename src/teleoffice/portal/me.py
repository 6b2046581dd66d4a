"""The current user's own account: settings, password, call log, saved numbers.

Every route here acts on the caller alone; no parameter names another user.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response

from teleoffice.portal.auth import rate_limited, set_session_cookie, too_busy
from teleoffice.portal.deps import ContextDep, CurrentSession, CurrentUser, PortalContext
from teleoffice.portal.errors import ApiError, error_responses
from teleoffice.portal.ratelimit import RateLimited, TooBusy
from teleoffice.portal.schemas import (
    NUMBER_PATTERN,
    CallLogEntryOut,
    PasswordChangeIn,
    SavedNumberIn,
    SavedNumberOut,
    SettingsPatch,
    TokenOut,
    UserOut,
)
from teleoffice.store.repos import FORWARD_OFF, UserRecord

router = APIRouter(prefix="/api/me", tags=["me"], responses=error_responses(401))

MAX_CALL_LOG_LIMIT = 500


def settings_of(context: PortalContext, user: UserRecord) -> UserOut:
    return UserOut.of(user, context.restrictions.profile_name_for(user.username))


def announce_settings(context: PortalContext, settings: UserOut) -> None:
    """Tell the user's other portal tabs (they show the same settings)."""
    context.hub.publish(
        {"type": "settings.changed", "settings": settings.model_dump(mode="json")},
        [settings.username],
    )


@router.get(
    "",
    summary="My account and call settings",
    description="The caller's extension, permissions and call settings.",
)
def get_me(user: CurrentUser, context: ContextDep) -> UserOut:
    return settings_of(context, user)


@router.patch(
    "/settings",
    summary="Change my call settings",
    description=(
        "Changes the fields given and leaves the others as they are: call forwarding "
        "(`forward_always`, `forward_busy`, `forward_no_answer`: a number as dialled "
        "from the desk phone, or null to switch it off), `dnd`, `call_waiting` and "
        "`no_answer_timeout` (seconds). On any error nothing changes."
    ),
    responses=error_responses(422),
)
def patch_settings(body: SettingsPatch, user: CurrentUser, context: ContextDep) -> UserOut:
    changes: dict[str, Any] = body.changes()
    for key in ("forward_always", "forward_busy", "forward_no_answer"):
        if key in changes and changes[key] is None:
            changes[key] = FORWARD_OFF
    updated = context.users.update(user.username, **changes)
    settings = settings_of(context, updated)
    if changes:
        announce_settings(context, settings)
    return settings


@router.put(
    "/password",
    summary="Change my password",
    description=(
        "Needs the current password. Ends every session of the user, this one "
        "included, and returns a new token (and cookie) for this client. Wrong "
        "current passwords count towards the login limit for the username."
    ),
    responses=error_responses(403, 422, 429),
)
def change_password(
    body: PasswordChangeIn,
    session: CurrentSession,
    request: Request,
    response: Response,
    context: ContextDep,
) -> TokenOut:
    username = session.user.username
    limiter = context.limiter
    try:
        limiter.check_username(username, context.clock())
        with limiter.password_check():
            verified = context.users.verify_password(username, body.current_password)
    except RateLimited as exc:
        raise rate_limited(exc) from None
    except TooBusy:
        raise too_busy() from None
    if verified is None:
        limiter.failed(username, context.clock())
        raise ApiError(403, "wrong_password", "the current password is wrong")
    context.users.update(username, password=body.new_password)
    # A changed password should lock out whoever else held a session.
    context.tokens.revoke_all(username)
    context.hub.disconnect(username, reason="password changed")
    now = context.now()
    token = context.tokens.issue(username, ttl=context.token_ttl, now=now)
    if session.via_cookie:
        set_session_cookie(request, response, token, context.token_ttl)
    return TokenOut(token=token, expires_at=now + timedelta(seconds=context.token_ttl))


@router.get(
    "/call-log",
    summary="My call log",
    description="The calls the user made or received, newest first.",
    responses=error_responses(422),
)
def call_log(
    user: CurrentUser,
    context: ContextDep,
    limit: Annotated[int, Query(ge=1, le=MAX_CALL_LOG_LIMIT)] = 50,
) -> list[CallLogEntryOut]:
    calls = context.call_log.recent(limit, user=user.username)
    return [CallLogEntryOut.of(call, user.username) for call in calls]


@router.get(
    "/saved-numbers",
    summary="My saved numbers",
    description="Numbers kept for telecommuter mode, oldest first.",
)
def list_saved_numbers(user: CurrentUser, context: ContextDep) -> list[SavedNumberOut]:
    return [
        SavedNumberOut(number=saved.number, label=saved.label)
        for saved in context.telecommuter.saved_numbers(user.username)
    ]


@router.post(
    "/saved-numbers",
    status_code=201,
    summary="Save a number",
    description=(
        "Keeps a number (as dialled from the desk phone) with an optional label; "
        "saving a number again changes its label. 409 when the list is full."
    ),
    responses=error_responses(409, 422),
)
def add_saved_number(body: SavedNumberIn, user: CurrentUser, context: ContextDep) -> SavedNumberOut:
    saved = context.telecommuter.add_saved_number(user.username, body.number, body.label)
    return SavedNumberOut(number=saved.number, label=saved.label)


@router.delete(
    "/saved-numbers/{number}",
    status_code=204,
    summary="Forget a saved number",
    responses=error_responses(404, 422),
)
def delete_saved_number(
    number: Annotated[str, Path(pattern=NUMBER_PATTERN)],
    user: CurrentUser,
    context: ContextDep,
) -> None:
    context.telecommuter.delete_saved_number(user.username, number)
