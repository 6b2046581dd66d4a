"""Administration of a user's mailbox: on or off, the PIN, unsolicited message waiting.

Messages stay private: administrators see the counts, never the list or the audio.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field, StringConstraints

from teleoffice.portal.deps import AdminUser, ContextDep, PortalContext
from teleoffice.portal.errors import error_responses
from teleoffice.portal.me import announce_settings, settings_of
from teleoffice.portal.schemas import NAME_PATTERN, PatchModel
from teleoffice.portal.voicemail import announce_voicemail, mailboxes

router = APIRouter(
    prefix="/api/admin/users", tags=["admin"], responses=error_responses(401, 403, 503)
)

UsernamePath = Annotated[str, Path(pattern=NAME_PATTERN, description="The user's username.")]
Pin = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,12}$")]


class AdminVoicemailOut(BaseModel):
    username: str
    enabled: bool = Field(description="Whether unanswered calls may reach the mailbox.")
    has_pin: bool = Field(description="Whether a PIN is set for reaching it by phone.")
    has_greeting: bool = Field(description="A recorded greeting; else the system one plays.")
    unsolicited_mwi: bool = Field(
        description="Whether the user's phones get message-waiting NOTIFYs without "
        "subscribing (for phones configured that way)."
    )
    new: int
    old: int


class AdminVoicemailPatchIn(PatchModel):
    clearable: ClassVar[frozenset[str]] = frozenset({"pin"})

    enabled: bool | None = None
    unsolicited_mwi: bool | None = Field(
        default=None,
        description="A running server applies a change within half a minute.",
    )
    pin: Pin | None = Field(
        default=None,
        description="A new PIN, 4 to 12 digits (write only); null removes the PIN, so "
        "the mailbox is reached from the user's own phones and the portal only.",
    )


def mailbox_view(context: PortalContext, username: str) -> AdminVoicemailOut:
    store = mailboxes(context)
    box = store.box(username)
    new, old = store.counts(username)
    return AdminVoicemailOut(
        username=username,
        enabled=box.enabled,
        has_pin=box.has_pin,
        has_greeting=box.has_greeting,
        unsolicited_mwi=box.unsolicited_mwi,
        new=new,
        old=old,
    )


@router.get(
    "/{username}/voicemail",
    summary="Show a user's mailbox settings",
    description="Whether it is on, has a PIN and a greeting, and how many messages it holds.",
    responses=error_responses(404, 422),
)
def get_mailbox(username: UsernamePath, admin: AdminUser, context: ContextDep) -> AdminVoicemailOut:
    return mailbox_view(context, username)


@router.patch(
    "/{username}/voicemail",
    summary="Change a user's mailbox settings",
    description=(
        "Switches the mailbox on or off (messages are kept either way), sets or "
        "removes (null) the PIN for reaching it by phone, and unsolicited message "
        "waiting. On any error nothing changes."
    ),
    responses=error_responses(404, 422),
)
def patch_mailbox(
    username: UsernamePath,
    body: AdminVoicemailPatchIn,
    admin: AdminUser,
    context: ContextDep,
) -> AdminVoicemailOut:
    store = mailboxes(context)
    changes = body.changes()
    before = store.box(username)  # 404 before anything changes
    undo: list[tuple[str, bool]] = []
    try:
        if "enabled" in changes:
            context.users.update(username, voicemail_enabled=changes["enabled"])
            undo.append(("enabled", before.enabled))
        if "unsolicited_mwi" in changes:
            store.set_unsolicited_mwi(username, changes["unsolicited_mwi"])
            undo.append(("unsolicited_mwi", before.unsolicited_mwi))
        # A PIN cannot be put back once replaced (it is kept hashed): last.
        if "pin" in changes:
            if changes["pin"] is None:
                store.clear_pin(username)
            else:
                store.set_pin(username, changes["pin"])
    except Exception:
        for what, value in reversed(undo):
            if what == "enabled":
                context.users.update(username, voicemail_enabled=value)
            else:
                store.set_unsolicited_mwi(username, value)
        raise
    if changes:
        announce_voicemail(context, username)
    if "enabled" in changes:
        announce_settings(context, settings_of(context, context.users.get(username)))
    return mailbox_view(context, username)
