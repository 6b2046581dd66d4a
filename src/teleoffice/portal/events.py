"""The live events WebSocket, `/api/events`.

A client connects with its token (`?token=` or the session cookie). A bad,
expired or revoked token gets the connection accepted and closed at once with
code 4401, which browsers can see (a refused handshake only shows as a generic
failure). Otherwise the first message is
`{"type": "hello", "user": ..., "state": ..., "ping_interval": ...}`, the
user's current state from the composition root's snapshot, so a reconnecting
client is up to date at once (rule T8); then come the events published for the
user.

A user holds at most the hub's `max_per_user` connections; one more is
accepted and closed at once with code 4409 (see `hub.CLOSE_TOO_MANY`).

Keepalive: the server sends `{"type": "ping"}` every `ping_interval` seconds
and expects any message back (`{"type": "pong"}` is the polite one) within two
intervals, else it closes with 4408. Clients may send `{"type": "ping"}` and
get `{"type": "pong"}`. With each ping the token is checked again, so an
expired session ends its connection too.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import anyio
from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from teleoffice.portal.deps import (
    SESSION_COOKIE,
    ContextDep,
    PortalContext,
    resolve_user,
    same_origin,
)
from teleoffice.portal.hub import (
    CLOSE_INTERNAL,
    CLOSE_NO_PONG,
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHENTICATED,
    Close,
    EventHub,
    Subscription,
    TooManyConnections,
    encode_event,
)

__all__ = ["EventHub", "router"]

log = logging.getLogger("teleoffice.portal")

router = APIRouter()

PING = encode_event({"type": "ping"})
PONG = encode_event({"type": "pong"})
# Clients only ever send pings and pongs; anything longer is ignored unread.
MAX_CLIENT_MESSAGE = 1024


async def _authenticate(websocket: WebSocket, context: PortalContext) -> tuple[str, str] | None:
    """(username, token) of the connecting client, or None to refuse it."""
    token = websocket.query_params.get("token")
    if not token:
        token = websocket.cookies.get(SESSION_COOKIE)
        # A cookie rides along on any handshake the browser makes, whichever
        # page asked for it; only our own pages may use it.
        if token and not same_origin(websocket):
            return None
    if not token:
        return None
    user = await run_in_threadpool(resolve_user, context, token)
    return None if user is None else (user.username, token)


async def _snapshot(context: PortalContext, username: str) -> Mapping[str, Any]:
    state = context.snapshot(username)
    if inspect.isawaitable(state):
        return await state
    return state


async def _send(websocket: WebSocket, subscription: Subscription) -> None:
    """Queue -> socket, until a `Close` comes out of the queue."""
    while True:
        item = await subscription.queue.get()
        if isinstance(item, Close):
            await websocket.close(item.code, item.reason)
            return
        await websocket.send_text(item)


async def _receive(websocket: WebSocket, subscription: Subscription, seen: list[float]) -> None:
    """Socket -> pongs, until the client goes away."""
    loop = asyncio.get_running_loop()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        seen[0] = loop.time()
        text = message.get("text")
        if not isinstance(text, str) or len(text) > MAX_CLIENT_MESSAGE:
            continue
        try:
            data = json.loads(text)
        except ValueError:
            continue
        if isinstance(data, dict) and data.get("type") == "ping":
            subscription.offer(PONG)


async def _keepalive(
    context: PortalContext, subscription: Subscription, token: str, seen: list[float]
) -> None:
    loop = asyncio.get_running_loop()
    interval = context.ping_interval
    try:
        while True:
            await asyncio.sleep(interval)
            if loop.time() - seen[0] > 2 * interval:
                subscription.offer(Close(CLOSE_NO_PONG, "no answer to pings"))
                return
            user = await run_in_threadpool(resolve_user, context, token)
            if user is None:
                subscription.offer(Close(CLOSE_UNAUTHENTICATED, "session ended"))
                return
            subscription.offer(PING)
    except Exception:
        log.exception("keepalive of a portal connection failed")
        subscription.offer(Close(CLOSE_INTERNAL, "internal error"))


@router.websocket("/api/events")
async def events(websocket: WebSocket, context: ContextDep) -> None:
    who = await _authenticate(websocket, context)
    await websocket.accept()
    if who is None:
        await websocket.close(CLOSE_UNAUTHENTICATED, "unauthenticated")
        return
    username, token = who
    # Subscribe before taking the snapshot: an event in between then arrives
    # after the state it changes instead of being lost.
    try:
        subscription = context.hub.subscribe(username, token=token)
    except TooManyConnections as exc:
        log.warning("portal connection of %r refused: %s", username, exc)
        await websocket.close(CLOSE_TOO_MANY, "too many connections")
        return
    try:
        try:
            hello = encode_event(
                {
                    "type": "hello",
                    "user": username,
                    "state": await _snapshot(context, username),
                    "ping_interval": context.ping_interval,
                }
            )
        except Exception:
            log.exception("could not build the portal state of %r", username)
            await websocket.close(CLOSE_INTERNAL, "internal error")
            return
        try:
            await websocket.send_text(hello)
        except Exception as exc:
            if _is_disconnect(exc):
                return  # gone already
            raise
        seen = [asyncio.get_running_loop().time()]
        # anyio rather than bare asyncio tasks: the server (and the test client)
        # cancel the handler through anyio cancel scopes, which a task group
        # passes on to its children correctly.
        async with anyio.create_task_group() as group:
            scope = group.cancel_scope
            group.start_soon(_ending, scope, username, partial(_send, websocket, subscription))
            group.start_soon(
                _ending, scope, username, partial(_receive, websocket, subscription, seen)
            )
            group.start_soon(_keepalive, context, subscription, token, seen)
    finally:
        context.hub.unsubscribe(subscription)


async def _ending(
    scope: anyio.CancelScope, username: str, part: Callable[[], Awaitable[None]]
) -> None:
    """Run one direction of the connection; when it ends, so does the other."""
    try:
        await part()
    except Exception as exc:
        # A client that vanished mid-send is routine; anything else is a bug.
        if not _is_disconnect(exc):
            log.error("portal connection of %r failed: %r", username, exc)
    finally:
        scope.cancel()


def _is_disconnect(exc: BaseException) -> bool:
    # Starlette raises RuntimeError for a send after the client has gone.
    return isinstance(exc, WebSocketDisconnect | OSError | RuntimeError)
