"""Logging in and out of the portal."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from teleoffice.portal.deps import COOKIE_PATH, SESSION_COOKIE, ContextDep, CurrentSession
from teleoffice.portal.errors import ApiError, error_responses, unauthenticated
from teleoffice.portal.ratelimit import RateLimited, TooBusy
from teleoffice.portal.schemas import LoginIn, LoginOut, UserOut

log = logging.getLogger("teleoffice.security")

router = APIRouter(prefix="/api", tags=["auth"])


def rate_limited(exc: RateLimited) -> ApiError:
    return ApiError(
        429,
        "rate_limited",
        f"too many attempts; try again in {exc.retry_after} s",
        headers={"Retry-After": str(exc.retry_after)},
    )


def too_busy() -> ApiError:
    return ApiError(
        503, "busy", "too many logins at once; try again shortly", headers={"Retry-After": "1"}
    )


def set_session_cookie(request: Request, response: Response, token: str, ttl: float) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=int(ttl),
        path=COOKIE_PATH,
        httponly=True,  # out of reach of scripts, so an XSS cannot steal it
        samesite="strict",
        secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


@router.post(
    "/login",
    summary="Log in",
    description=(
        "Checks the username and password and returns a bearer token for "
        "`Authorization: Bearer`, with its expiry and the user's settings. Browsers "
        "also get the token as an HttpOnly, SameSite=Strict cookie `teleoffice_session`. "
        "Unknown users and wrong passwords get the same 401. Attempts are limited per "
        "source address and failures per username: over the limit the answer is 429 "
        "with Retry-After."
    ),
    responses=error_responses(401, 422, 429, 503),
)
def login(body: LoginIn, request: Request, response: Response, context: ContextDep) -> LoginOut:
    address = request.client.host if request.client else "unknown"
    limiter = context.limiter
    try:
        limiter.admit(address, body.username, context.clock())
    except RateLimited as exc:
        log.warning("portal login rate limited: address %s, username %r", address, body.username)
        raise rate_limited(exc) from None
    try:
        with limiter.password_check():
            user = context.users.verify_password(body.username, body.password)
    except TooBusy:
        raise too_busy() from None
    if user is None:
        limiter.failed(body.username, context.clock())
        log.info("portal login failed: address %s, username %r", address, body.username)
        raise unauthenticated("wrong username or password")
    limiter.succeeded(body.username)
    now = context.now()
    token = context.tokens.issue(user.username, ttl=context.token_ttl, now=now)
    set_session_cookie(request, response, token, context.token_ttl)
    restriction = context.restrictions.profile_name_for(user.username)
    return LoginOut(
        token=token,
        expires_at=now + timedelta(seconds=context.token_ttl),
        user=UserOut.of(user, restriction),
    )


@router.post(
    "/logout",
    status_code=204,
    summary="Log out",
    description=(
        "Ends the session whose token the request carries (and closes its live "
        "connections); with `everywhere=true`, every session of the user. Clears the "
        "session cookie."
    ),
    responses=error_responses(401),
)
def logout(
    session: CurrentSession,
    response: Response,
    context: ContextDep,
    everywhere: Annotated[bool, Query(description="End all of the user's sessions.")] = False,
) -> None:
    username = session.user.username
    if everywhere:
        context.tokens.revoke_all(username)
        context.hub.disconnect(username)
    else:
        context.tokens.revoke(session.token)
        context.hub.disconnect(username, token=session.token)
    clear_session_cookie(response)
