"""What the REST API reads and writes: pydantic models with their limits.

Input models are strict (a JSON string is not a number, `1` is not `true`) and
forbid unknown fields, so a misspelt setting is a 422 instead of a silent
no-op. Limits mirror the store's, which checks again: the models give the
client a precise message before anything is touched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from teleoffice.calls.restrictions import MAX_DESCRIPTION_LENGTH
from teleoffice.store.models import (
    DISPLAY_NAME_LENGTH,
    FORWARD_NUMBER_LENGTH,
    NAME_LENGTH,
    SAVED_NUMBER_LABEL_LENGTH,
)
from teleoffice.store.repos import (
    MAX_NO_ANSWER_TIMEOUT,
    MIN_NO_ANSWER_TIMEOUT,
    CallRecord,
    RestrictionRecord,
    UserRecord,
)
from teleoffice.store.telecommuter import MAX_TELECOMMUTER_PATTERNS

# Patterns are anchored: pydantic searches rather than matches.
NAME_PATTERN = rf"^[A-Za-z0-9][A-Za-z0-9._-]{{0,{NAME_LENGTH - 1}}}$"
NUMBER_PATTERN = rf"^\+?[0-9]{{1,{FORWARD_NUMBER_LENGTH - 1}}}$"
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"
# argon2 hashes anything, but a megabyte "password" is only a way to burn CPU.
MAX_PASSWORD_LENGTH = 1024
MIN_NEW_PASSWORD_LENGTH = 8
MAX_RULES = 200
MAX_RULE_LENGTH = 80  # a pattern (32) and a label (32) with room for '=' and '_'
MAX_EMERGENCY_NUMBERS = 20

Username = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
ProfileName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
Extension = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,8}$")]
Number = Annotated[str, StringConstraints(pattern=NUMBER_PATTERN)]
DisplayName = Annotated[
    str, StringConstraints(max_length=DISPLAY_NAME_LENGTH, pattern=NO_CONTROL_PATTERN)
]
Label = Annotated[
    str, StringConstraints(max_length=SAVED_NUMBER_LABEL_LENGTH, pattern=NO_CONTROL_PATTERN)
]
Password = Annotated[str, StringConstraints(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
NewPassword = Annotated[
    str, StringConstraints(min_length=MIN_NEW_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
]
# SIP passwords go into phones' configuration; keep them printable ASCII.
SipPassword = Annotated[
    str, StringConstraints(min_length=MIN_NEW_PASSWORD_LENGTH, max_length=128, pattern=r"^[!-~]+$")
]
LoginCode = Annotated[str, StringConstraints(pattern=r"^[0-9]{4,12}$")]
NoAnswerTimeout = Annotated[int, Field(ge=MIN_NO_ANSWER_TIMEOUT, le=MAX_NO_ANSWER_TIMEOUT)]
Rule = Annotated[str, StringConstraints(min_length=1, max_length=MAX_RULE_LENGTH)]
Rules = Annotated[list[Rule], Field(max_length=MAX_RULES)]
EmergencyNumber = Annotated[str, StringConstraints(pattern=r"^[0-9]{2,15}$")]
TelecommuterPatterns = Annotated[list[Rule], Field(max_length=MAX_TELECOMMUTER_PATTERNS)]
Description = Annotated[
    str, StringConstraints(max_length=MAX_DESCRIPTION_LENGTH, pattern=NO_CONTROL_PATTERN)
]


class InputModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class PatchModel(InputModel):
    """A partial update: a field left out stays as it is.

    Fields are declared optional so that they can be left out; `null` is only
    accepted for the fields in `clearable` (where it switches something off).
    """

    clearable: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _null_only_where_clearable(self) -> Self:
        for name in sorted(self.model_fields_set - self.clearable):
            if getattr(self, name) is None:
                raise ValueError(f"{name} may not be null")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields the client sent, with their values."""
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


# --- auth -------------------------------------------------------------------------


class LoginIn(InputModel):
    # No pattern on the username: an unknown name of any shape is a plain 401.
    username: Annotated[str, StringConstraints(min_length=1, max_length=NAME_LENGTH)]
    password: Password


class UserOut(BaseModel):
    """A user's own view of their account and call settings."""

    username: str
    display_name: str
    extension: str
    is_admin: bool
    telecommuter_allowed: bool
    call_waiting: bool
    voicemail_enabled: bool
    no_answer_timeout: int = Field(description="Seconds before an unanswered call is diverted.")
    forward_always: str | None
    forward_busy: str | None
    forward_no_answer: str | None
    dnd: bool
    restriction: str = Field(description="The dialling restriction profile that applies.")

    @classmethod
    def of(cls, user: UserRecord, restriction: str) -> Self:
        return cls(
            username=user.username,
            display_name=user.display_name,
            extension=user.extension,
            is_admin=user.is_admin,
            telecommuter_allowed=user.telecommuter_allowed,
            call_waiting=user.call_waiting,
            voicemail_enabled=user.voicemail_enabled,
            no_answer_timeout=user.no_answer_timeout,
            forward_always=user.forward_always,
            forward_busy=user.forward_busy,
            forward_no_answer=user.forward_no_answer,
            dnd=user.dnd,
            restriction=restriction,
        )


class TokenOut(BaseModel):
    token: str = Field(description="Send as `Authorization: Bearer <token>`.")
    expires_at: datetime


class LoginOut(TokenOut):
    user: UserOut


# --- the user's own settings ------------------------------------------------------


class SettingsPatch(PatchModel):
    """Call settings a user may change themselves; `null` switches a forward off."""

    clearable: ClassVar[frozenset[str]] = frozenset(
        {"forward_always", "forward_busy", "forward_no_answer"}
    )

    forward_always: Number | None = None
    forward_busy: Number | None = None
    forward_no_answer: Number | None = None
    dnd: bool | None = None
    call_waiting: bool | None = None
    no_answer_timeout: NoAnswerTimeout | None = None


class PasswordChangeIn(InputModel):
    current_password: Password
    new_password: NewPassword


class Party(BaseModel):
    number: str
    name: str | None


class CallLogEntryOut(BaseModel):
    """One call of the user's call log."""

    id: str
    direction: str = Field(description="internal, inbound (from a trunk) or outbound.")
    side: Literal["caller", "callee"] = Field(description="Whether the user made the call.")
    from_: Party = Field(serialization_alias="from")
    to: Party
    started_at: datetime
    ringing_at: datetime | None
    answered_at: datetime | None
    ended_at: datetime | None
    outcome: str | None = Field(description="Null while the call lasts.")
    status: int | None = Field(description="The final SIP status, when there was one.")
    duration: float | None = Field(description="Seconds from answer to end.")

    @classmethod
    def of(cls, call: CallRecord, username: str) -> Self:
        duration = call.duration
        return cls(
            id=call.call_id,
            direction=str(call.direction),
            side="caller" if call.caller_user == username else "callee",
            from_=Party(number=call.caller_number, name=call.caller_name),
            to=Party(number=call.callee_number, name=call.callee_name),
            started_at=call.started_at,
            ringing_at=call.ringing_at,
            answered_at=call.answered_at,
            ended_at=call.ended_at,
            outcome=None if call.outcome is None else str(call.outcome),
            status=call.status,
            duration=None if duration is None else duration.total_seconds(),
        )


class SavedNumberIn(InputModel):
    number: Number
    label: Label = ""


class SavedNumberOut(BaseModel):
    number: str
    label: str


# --- administration ---------------------------------------------------------------


class AdminUserOut(UserOut):
    """A user as administrators see them."""

    has_password: bool = Field(description="Whether the user can log in to the portal.")
    telecommuter_patterns: list[str] = Field(
        description="Numbers allowed in telecommuter mode (empty: any the user may dial)."
    )
    has_login_code: bool = Field(description="Whether a hot-desk login code is set.")
    created_at: datetime


class CreatedUserOut(AdminUserOut):
    sip_password: str | None = Field(
        description="The generated SIP password of the base phone, shown once; "
        "null when the request gave one."
    )


class UserCreateIn(InputModel):
    username: Username
    extension: Extension
    display_name: DisplayName | None = None
    password: NewPassword | None = Field(
        default=None, description="Portal password; without one the user cannot log in."
    )
    sip_password: SipPassword | None = Field(
        default=None, description="SIP password of the base phone; generated if left out."
    )
    is_admin: bool = False
    telecommuter_allowed: bool = False
    telecommuter_patterns: TelecommuterPatterns = Field(default_factory=list)
    call_waiting: bool = True
    voicemail_enabled: bool = False
    no_answer_timeout: NoAnswerTimeout = 15
    forward_always: Number | None = None
    forward_busy: Number | None = None
    forward_no_answer: Number | None = None
    dnd: bool = False
    restriction: ProfileName | None = Field(
        default=None, description="Restriction profile; left out: `default`."
    )
    login_code: LoginCode | None = None


class UserPatchIn(PatchModel):
    clearable: ClassVar[frozenset[str]] = frozenset(
        {"forward_always", "forward_busy", "forward_no_answer", "login_code", "voicemail_pin"}
    )

    display_name: DisplayName | None = None
    password: NewPassword | None = None
    sip_password: SipPassword | None = None
    is_admin: bool | None = None
    telecommuter_allowed: bool | None = None
    telecommuter_patterns: TelecommuterPatterns | None = None
    call_waiting: bool | None = None
    voicemail_enabled: bool | None = None
    no_answer_timeout: NoAnswerTimeout | None = None
    forward_always: Number | None = None
    forward_busy: Number | None = None
    forward_no_answer: Number | None = None
    dnd: bool | None = None
    restriction: ProfileName | None = None
    login_code: LoginCode | None = Field(default=None, description="null removes the code.")
    voicemail_pin: LoginCode | None = Field(
        default=None,
        description="The PIN for reaching the mailbox by phone (write only); null removes it.",
    )


class RestrictionOut(BaseModel):
    name: str
    description: str
    allowed: list[str]
    barred: list[str]
    emergency: list[str]
    users: list[str] = Field(description="Users the profile is assigned to explicitly.")
    created_at: datetime

    @classmethod
    def of(cls, record: RestrictionRecord) -> Self:
        return cls(
            name=record.name,
            description=record.description,
            allowed=list(record.allowed),
            barred=list(record.barred),
            emergency=list(record.emergency),
            users=list(record.users),
            created_at=record.created_at,
        )


class RestrictionCreateIn(InputModel):
    name: ProfileName
    description: Description = ""
    allowed: Rules = Field(default_factory=list)
    barred: Rules = Field(default_factory=list)
    emergency: Annotated[list[EmergencyNumber], Field(max_length=MAX_EMERGENCY_NUMBERS)] | None = (
        Field(default=None, description="Left out: the defaults (112, 911, 999).")
    )


class RestrictionPatchIn(PatchModel):
    description: Description | None = None
    allowed: Rules | None = None
    barred: Rules | None = None
    emergency: Annotated[list[EmergencyNumber], Field(max_length=MAX_EMERGENCY_NUMBERS)] | None = (
        None
    )


__all__ = [
    "AdminUserOut",
    "CallLogEntryOut",
    "CreatedUserOut",
    "LoginIn",
    "LoginOut",
    "PasswordChangeIn",
    "RestrictionCreateIn",
    "RestrictionOut",
    "RestrictionPatchIn",
    "SavedNumberIn",
    "SavedNumberOut",
    "SettingsPatch",
    "TokenOut",
    "UserCreateIn",
    "UserOut",
    "UserPatchIn",
]
