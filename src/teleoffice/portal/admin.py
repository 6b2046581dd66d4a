"""Administration: users, their permissions, and dialling restriction profiles.

A change to a user can touch several repositories (the user row, the
restriction assignment, the telecommuter settings), each its own transaction.
So everything that can be checked is checked before the first write, the
writes that can be undone go first with their undo ready, and the user row,
whose password hash cannot be restored, is written last: a refused request
leaves the directory as it was.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, StringConstraints

from teleoffice.calls.restrictions import Allowed
from teleoffice.calls.restrictions import check as check_number
from teleoffice.portal.deps import AdminUser, ContextDep, PortalContext
from teleoffice.portal.errors import ApiError, error_responses
from teleoffice.portal.me import announce_settings, settings_of
from teleoffice.portal.schemas import (
    NAME_PATTERN,
    AdminUserOut,
    CreatedUserOut,
    InputModel,
    NewPassword,
    RestrictionCreateIn,
    RestrictionOut,
    RestrictionPatchIn,
    UserCreateIn,
    UserOut,
    UserPatchIn,
)
from teleoffice.portal.voicemail import announce_voicemail, mailboxes
from teleoffice.store.repos import (
    DEFAULT_RESTRICTION,
    FORWARD_OFF,
    InvalidInput,
    StoreError,
    UserRecord,
)
from teleoffice.store.telecommuter import TelecommuterRecord, telecommuter_patterns

router = APIRouter(prefix="/api/admin", tags=["admin"], responses=error_responses(401, 403))

UsernamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="The user's username.")]
ProfilePath = Annotated[str, Path(pattern=NAME_PATTERN, description="The profile's name.")]
FORWARDS = ("forward_always", "forward_busy", "forward_no_answer")
# Fields of a user patch that `UserRepo.update` takes as they are.
USER_FIELDS = (
    "display_name",
    "password",
    "sip_password",
    "is_admin",
    "telecommuter_allowed",
    "call_waiting",
    "voicemail_enabled",
    "no_answer_timeout",
    "dnd",
)
# 12 random bytes: 16 URL-safe characters, easy enough to type into a phone.
SIP_PASSWORD_BYTES = 12
# A generated portal password: 12 URL-safe characters (72 bits), typed once by
# the user before they choose their own.
PORTAL_PASSWORD_BYTES = 9


class PasswordResetIn(InputModel):
    password: NewPassword | None = Field(
        default=None, description="The new password; left out, one is generated."
    )


class PasswordResetOut(BaseModel):
    username: str
    password: str | None = Field(
        description="The generated password, shown once; null when the request gave one."
    )


class RestrictionCheckIn(InputModel):
    number: Annotated[str, StringConstraints(pattern=r"^\+?[0-9*#]{1,32}$")] = Field(
        description="The number as the user would dial it (for outside numbers: without "
        "the trunk prefix, as the trunk sends it)."
    )
    internal: bool = Field(default=False, description="Check it as an internal extension.")
    from_phone: bool = Field(
        default=True, description="Dialled from a phone (emergency numbers are always allowed)."
    )


class RestrictionCheckOut(BaseModel):
    allowed: bool
    reason: str = Field(description="Which rule decided, in words.")


def admin_view(
    user: UserRecord, restriction: str, telecommuter: TelecommuterRecord
) -> AdminUserOut:
    return AdminUserOut(
        **UserOut.of(user, restriction).model_dump(),
        has_password=user.has_password,
        telecommuter_patterns=list(telecommuter.patterns),
        has_login_code=telecommuter.has_login_code,
        created_at=user.created_at,
    )


def load_admin_view(context: PortalContext, username: str) -> AdminUserOut:
    return admin_view(
        context.users.get(username),
        context.restrictions.profile_name_for(username),
        context.telecommuter.get(username),
    )


def check_profile_exists(context: PortalContext, name: str) -> None:
    # A reference in the body that leads nowhere is bad input (422), not a
    # missing resource at the URL (404).
    if context.restrictions.find(name) is None:
        raise InvalidInput(f"no restriction profile {name!r}")


def check_forwards(extension: str, changes: dict[str, Any]) -> None:
    for key in FORWARDS:
        if changes.get(key) == extension:
            raise InvalidInput(f"{key} cannot be the user's own extension {extension}")


def forward_values(changes: dict[str, Any]) -> dict[str, str]:
    """Forward changes as `UserRepo.update` takes them (`FORWARD_OFF` for null)."""
    return {
        key: FORWARD_OFF if changes[key] is None else changes[key]
        for key in FORWARDS
        if key in changes
    }


# --- users ------------------------------------------------------------------------


@router.get(
    "/users",
    summary="List users",
    description="Every user with their permissions and call settings, in extension order.",
)
def list_users(admin: AdminUser, context: ContextDep) -> list[AdminUserOut]:
    _, assigned = context.restrictions.snapshot()
    return [
        admin_view(
            user,
            assigned.get(user.username, DEFAULT_RESTRICTION),
            context.telecommuter.get(user.username),
        )
        for user in context.users.list_users()
    ]


@router.get(
    "/users/{username}",
    summary="Show a user",
    responses=error_responses(404, 422),
)
def get_user(username: UsernamePath, admin: AdminUser, context: ContextDep) -> AdminUserOut:
    return load_admin_view(context, username)


@router.post(
    "/users",
    status_code=201,
    summary="Create a user",
    description=(
        "Creates a user with directory number `extension` and a base phone account "
        "of the same name. Without `sip_password` one is generated and returned "
        "once in the answer. 409 when the username or extension is taken."
    ),
    responses=error_responses(409, 422),
)
def create_user(body: UserCreateIn, admin: AdminUser, context: ContextDep) -> CreatedUserOut:
    if body.restriction is not None:
        check_profile_exists(context, body.restriction)
    patterns = telecommuter_patterns(body.telecommuter_patterns)
    later = {key: getattr(body, key) for key in FORWARDS if getattr(body, key) is not None}
    check_forwards(body.extension, later)
    generated = None if body.sip_password else secrets.token_urlsafe(SIP_PASSWORD_BYTES)
    user = context.users.add_user(
        body.username,
        extension=body.extension,
        sip_password=body.sip_password or generated or "",
        display_name=body.display_name,
        password=body.password,
        is_admin=body.is_admin,
        telecommuter_allowed=body.telecommuter_allowed,
        call_waiting=body.call_waiting,
        voicemail_enabled=body.voicemail_enabled,
        no_answer_timeout=body.no_answer_timeout,
    )
    try:
        if body.restriction is not None:
            context.restrictions.assign(user.username, body.restriction)
        if patterns:
            context.telecommuter.set_patterns(user.username, patterns)
        if body.login_code is not None:
            context.telecommuter.set_login_code(user.username, body.login_code)
        if later or body.dnd:
            context.users.update(user.username, dnd=body.dnd, **later)
    except StoreError:
        context.users.delete(user.username)  # all or nothing
        raise
    view = load_admin_view(context, user.username)
    return CreatedUserOut(**view.model_dump(), sip_password=generated)


@router.patch(
    "/users/{username}",
    summary="Change a user",
    description=(
        "Changes the fields given: display name, portal password (ends the user's "
        "sessions), SIP password, administrator flag, telecommuter permission and "
        "allowed number patterns, call waiting, voicemail, no-answer time, "
        "forwarding (null switches a forward off), do not disturb, restriction "
        "profile and hot-desk login code (null removes it). On any error nothing "
        "changes. Administrators cannot take their own administrator rights."
    ),
    responses=error_responses(404, 409, 422),
)
def patch_user(
    username: UsernamePath, body: UserPatchIn, admin: AdminUser, context: ContextDep
) -> AdminUserOut:
    changes = body.changes()
    current = context.users.get(username)
    if username == admin.username and changes.get("is_admin") is False:
        raise ApiError(409, "conflict", "you cannot take your own administrator rights")
    if "restriction" in changes:
        check_profile_exists(context, changes["restriction"])
    patterns = (
        telecommuter_patterns(changes["telecommuter_patterns"])
        if "telecommuter_patterns" in changes
        else None
    )
    check_forwards(current.extension, changes)
    # A PIN cannot be put back once replaced (it is kept hashed), so it is
    # written last, after everything that can be undone.
    store = mailboxes(context) if "voicemail_pin" in changes else None
    user_changes = {key: changes[key] for key in USER_FIELDS if key in changes}
    user_changes.update(forward_values(changes))

    undo: list[Callable[[], object]] = []
    try:
        if "restriction" in changes:
            previous = context.restrictions.profile_name_for(username)
            context.restrictions.assign(username, changes["restriction"])
            undo.append(lambda: context.restrictions.assign(username, previous))
        if patterns is not None:
            old_patterns = context.telecommuter.get(username).patterns
            context.telecommuter.set_patterns(username, patterns)
            undo.append(lambda: context.telecommuter.set_patterns(username, old_patterns))
        if "login_code" in changes:
            if changes["login_code"] is None:
                context.telecommuter.clear_login_code(username)
            else:
                context.telecommuter.set_login_code(username, changes["login_code"])
        if user_changes:
            context.users.update(username, **user_changes)
    except StoreError:
        for step in reversed(undo):
            step()
        raise
    if store is not None:
        pin = changes["voicemail_pin"]
        if pin is None:
            store.clear_pin(username)
        else:
            store.set_pin(username, pin)
        announce_voicemail(context, username)
    if "password" in changes:
        # Whoever held a session with the old password loses it.
        context.tokens.revoke_all(username)
        context.hub.disconnect(username, reason="password changed")
    view = load_admin_view(context, username)
    if changes:
        announce_settings(context, settings_of(context, context.users.get(username)))
    return view


@router.delete(
    "/users/{username}",
    status_code=204,
    summary="Delete a user",
    description=(
        "Removes the user, their base phone account and registrations, and ends "
        "their sessions. Administrators cannot delete themselves."
    ),
    responses=error_responses(404, 409, 422),
)
def delete_user(username: UsernamePath, admin: AdminUser, context: ContextDep) -> None:
    if username == admin.username:
        raise ApiError(409, "conflict", "you cannot delete your own account")
    context.users.delete(username)
    context.hub.disconnect(username, reason="account deleted")


@router.post(
    "/users/{username}/password",
    summary="Reset a user's portal password",
    description=(
        "Sets a new portal password for the user and ends all their sessions. Without "
        "`password` a random one is generated and returned once in the answer (tell it "
        "to the user; they can change it under their own settings). Administrators "
        "change their own password with `PUT /api/me/password`, which needs the current one."
    ),
    responses=error_responses(404, 409, 422),
)
def reset_password(
    username: UsernamePath, body: PasswordResetIn, admin: AdminUser, context: ContextDep
) -> PasswordResetOut:
    if username == admin.username:
        raise ApiError(
            409, "conflict", "change your own password in your settings (it needs the current one)"
        )
    generated = None if body.password else secrets.token_urlsafe(PORTAL_PASSWORD_BYTES)
    context.users.update(username, password=body.password or generated)
    context.tokens.revoke_all(username)
    context.hub.disconnect(username, reason="password changed")
    return PasswordResetOut(username=username, password=generated)


# --- restriction profiles -----------------------------------------------------------


@router.get(
    "/restrictions",
    summary="List restriction profiles",
    description="Every dialling restriction profile, by name, with the users assigned to it.",
)
def list_restrictions(admin: AdminUser, context: ContextDep) -> list[RestrictionOut]:
    return [RestrictionOut.of(record) for record in context.restrictions.list_profiles()]


@router.get(
    "/restrictions/{name}",
    summary="Show a restriction profile",
    responses=error_responses(404, 422),
)
def get_restriction(name: ProfilePath, admin: AdminUser, context: ContextDep) -> RestrictionOut:
    return RestrictionOut.of(context.restrictions.get(name))


@router.post(
    "/restrictions",
    status_code=201,
    summary="Create a restriction profile",
    description=(
        "Patterns use the dial-plan language of `teleoffice restriction` (`X`, `Z`, "
        "`N`, classes, a final `.` or `!`, `internal`, `=LABEL`). Without "
        "`emergency` the default emergency numbers apply. 409 when the name is taken."
    ),
    responses=error_responses(409, 422),
)
def create_restriction(
    body: RestrictionCreateIn, admin: AdminUser, context: ContextDep
) -> RestrictionOut:
    extra: dict[str, Any] = {} if body.emergency is None else {"emergency": body.emergency}
    record = context.restrictions.add(
        body.name,
        allowed=body.allowed,
        barred=body.barred,
        description=body.description,
        **extra,
    )
    return RestrictionOut.of(record)


@router.patch(
    "/restrictions/{name}",
    summary="Change a restriction profile",
    description="Replaces the lists given and the description; the others stay.",
    responses=error_responses(404, 422),
)
def patch_restriction(
    name: ProfilePath, body: RestrictionPatchIn, admin: AdminUser, context: ContextDep
) -> RestrictionOut:
    return RestrictionOut.of(context.restrictions.update(name, **body.changes()))


@router.delete(
    "/restrictions/{name}",
    status_code=204,
    summary="Delete a restriction profile",
    description="409 while it is assigned to anybody, and always for `default`.",
    responses=error_responses(404, 409, 422),
)
def delete_restriction(name: ProfilePath, admin: AdminUser, context: ContextDep) -> None:
    context.restrictions.delete(name)


@router.post(
    "/restrictions/{name}/check",
    summary="Try a number against a restriction profile",
    description=(
        "Says whether a user with this profile may dial `number`, and which rule "
        "decides (as `teleoffice restriction check`). Changes nothing."
    ),
    responses=error_responses(404, 422),
)
def check_restriction(
    name: ProfilePath, body: RestrictionCheckIn, admin: AdminUser, context: ContextDep
) -> RestrictionCheckOut:
    profile = context.restrictions.get(name).profile()
    verdict = check_number(profile, body.number, from_phone=body.from_phone, internal=body.internal)
    return RestrictionCheckOut(allowed=isinstance(verdict, Allowed), reason=verdict.reason)
