"""The portal's live telephony: telecommuter mode, hot desking and calls.

These handlers are `async def` on purpose: they run on the event loop's thread,
where the SIP side lives, so they may call `Telephony` directly (its store
writes go to worker threads).  Authentication is the same as every other
route's (`CurrentUser`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, ConfigDict, Field

from teleoffice.portal.deps import AdminUser, CurrentUser
from teleoffice.portal.errors import ApiError, ErrorOut
from teleoffice.server.telephony import Telephony, TelephonyError, call_view

NUMBER_PATTERN = r"^\+?[0-9*#]{1,32}$"
CALL_ID_PATTERN = r"^[A-Za-z0-9-]{1,64}$"
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 409, 422)
}


class TelecommuterIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    number: str = Field(
        pattern=NUMBER_PATTERN,
        description="The number to work from, dialled as from the desk (trunk prefix included).",
        examples=["90612345678"],
    )


class LocationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phone: str = Field(
        pattern=NAME_PATTERN, description="The phone account to log in on (hot desking)."
    )


class CallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    to: str = Field(pattern=NUMBER_PATTERN, description="The number to call, as from the desk.")


def _api_error(exc: TelephonyError) -> ApiError:
    return ApiError(exc.status, exc.code, exc.message)


def create_telephony_router(telephony: Telephony) -> APIRouter:
    router = APIRouter(prefix="/api", responses=_ERRORS)

    def telecommuter_view(username: str) -> dict[str, Any]:
        location = telephony.location_view(username)
        return {
            "active": location["kind"] == "telecommuter",
            "number": location["number"],
            "location": location,
        }

    @router.get(
        "/me/telecommuter",
        tags=["telecommuter"],
        summary="Whether telecommuter mode is on, and the number",
    )
    async def get_telecommuter(user: CurrentUser) -> dict[str, Any]:
        return {"allowed": user.telecommuter_allowed, **telecommuter_view(user.username)}

    @router.put(
        "/me/telecommuter",
        tags=["telecommuter"],
        summary="Start telecommuter mode on a number",
        description=(
            "Calls to you go to this number from now on, and your phone stops ringing "
            "(you are logged out of it). 403 when you are not allowed, the number is "
            "barred by your restrictions or not among the numbers allowed for you; 422 "
            "when no trunk can reach it."
        ),
    )
    async def start_telecommuter(body: TelecommuterIn, user: CurrentUser) -> dict[str, Any]:
        try:
            await telephony.start_telecommuter(user.username, body.number)
        except TelephonyError as exc:
            raise _api_error(exc) from None
        return {"allowed": user.telecommuter_allowed, **telecommuter_view(user.username)}

    @router.delete(
        "/me/telecommuter",
        tags=["telecommuter"],
        summary="End telecommuter mode",
        description=(
            "You go back to your base phone if nobody else is logged in on it, else you "
            "are logged out. A call in progress is not cut."
        ),
    )
    async def end_telecommuter(user: CurrentUser) -> dict[str, Any]:
        try:
            await telephony.end_telecommuter(user.username)
        except TelephonyError as exc:
            raise _api_error(exc) from None
        return {"allowed": user.telecommuter_allowed, **telecommuter_view(user.username)}

    @router.delete(
        "/admin/users/{username}/telecommuter",
        tags=["admin"],
        summary="End a user's telecommuter mode (administrators)",
    )
    async def admin_end_telecommuter(
        username: Annotated[str, Path(pattern=NAME_PATTERN)], admin: AdminUser
    ) -> dict[str, Any]:
        try:
            await telephony.end_telecommuter(username)
        except TelephonyError as exc:
            raise _api_error(exc) from None
        return telecommuter_view(username)

    @router.get("/me/location", tags=["location"], summary="Where your calls ring now")
    async def get_location(user: CurrentUser) -> dict[str, Any]:
        return telephony.location_view(user.username)

    @router.put(
        "/me/location",
        tags=["location"],
        summary="Log in on a phone (hot desking)",
        description="Whoever was logged in on that phone is logged out.",
    )
    async def log_in(body: LocationIn, user: CurrentUser) -> dict[str, Any]:
        try:
            await telephony.log_in(user.username, body.phone)
        except TelephonyError as exc:
            raise _api_error(exc) from None
        return telephony.location_view(user.username)

    @router.delete(
        "/me/location",
        tags=["location"],
        summary="Log out (calls to you get voicemail, else busy)",
    )
    async def log_out(user: CurrentUser) -> dict[str, Any]:
        await telephony.log_out(user.username)
        return telephony.location_view(user.username)

    @router.post(
        "/calls",
        tags=["calls"],
        status_code=status.HTTP_201_CREATED,
        summary="Place a call",
        description=(
            "Your dialling restrictions are checked first: a barred number gets 403 and "
            "nothing is dialled. Then your own line rings (your telecommuter number, or "
            "your phone), and once you answer the destination is called as if you had "
            "dialled it from your desk. Progress arrives on /api/events."
        ),
    )
    async def place_call(body: CallIn, user: CurrentUser) -> dict[str, Any]:
        try:
            call_id = telephony.place_call(user.username, body.to)
        except TelephonyError as exc:
            raise _api_error(exc) from None
        return {"id": call_id, "to": body.to, "state": "calling"}

    @router.get("/calls", tags=["calls"], summary="Your calls in progress")
    async def list_calls(user: CurrentUser) -> list[dict[str, Any]]:
        return [call_view(r, user.username) for r in telephony.calls_of(user.username)]

    @router.delete(
        "/calls/{call_id}",
        tags=["calls"],
        status_code=status.HTTP_204_NO_CONTENT,
        summary="Hang up one of your calls",
    )
    async def hang_up(
        call_id: Annotated[str, Path(pattern=CALL_ID_PATTERN)], user: CurrentUser
    ) -> None:
        try:
            telephony.hang_up(user.username, call_id)
        except TelephonyError as exc:
            raise _api_error(exc) from None

    @router.post(
        "/calls/{call_id}/transfer",
        tags=["calls"],
        summary="Blind transfer: hand the other party to another number",
        description=(
            "Checked against your restrictions as if you dialled the number (403 when "
            "barred, nothing is dialled). Your leg of the call ends at once; the other "
            "party hears ringback until the target answers, or busy if it does not."
        ),
    )
    async def transfer(
        call_id: Annotated[str, Path(pattern=CALL_ID_PATTERN)],
        body: CallIn,
        user: CurrentUser,
    ) -> dict[str, Any]:
        try:
            telephony.transfer(user.username, call_id, body.to)
        except TelephonyError as exc:
            raise _api_error(exc) from None
        return {"id": call_id, "to": body.to, "state": "transferring"}

    @router.post(
        "/calls/{call_id}/{action}",
        tags=["calls"],
        summary="Call control: answer, reject, hold or resume",
        description=(
            "`answer` takes a waiting call (call waiting): the call you are on goes on hold "
            "and the waiting caller is connected on the same line. `reject` turns it away "
            "(it gets your busy treatment). `hold` puts a connected call on hold; `resume` "
            "takes it back (on a telecommuter line, the other call goes on hold)."
        ),
    )
    async def control(
        call_id: Annotated[str, Path(pattern=CALL_ID_PATTERN)],
        action: Annotated[str, Path(pattern="^(answer|reject|hold|resume)$")],
        user: CurrentUser,
    ) -> list[dict[str, Any]]:
        try:
            telephony.control(user.username, call_id, action)
        except TelephonyError as exc:
            raise _api_error(exc) from None
        return [call_view(r, user.username) for r in telephony.calls_of(user.username)]

    return router
