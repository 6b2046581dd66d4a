"""A pjsua2 (PJSIP) presence client, run as a process of its own by the e2e tests.

PEERS.md: one pjsua2 Endpoint per process, a null audio device, everything bound
to 127.0.0.1.  It registers an account, PUBLISHes its own presence (RFC 3903) when
told to, and subscribes (RFC 3856) to one presentity - in the tests, the same user,
so it sees what the user's other clients do.

Protocol, one JSON object per line:
- stdout: {"event": "registered", "code": 200}, {"event": "buddy", "status": "online",
  "text": "...", "note": "...", "activity": "away"}, {"event": "published"}, ...
- stdin: {"command": "publish", "status": "online"|"offline", "activity": "away"|"busy"|"",
  "note": "..."} or {"command": "quit"}.

Run with: python pjsua_presence.py --server-port P --port Q --user 201 --password S --watch 201
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import select
import sys
import time
from typing import Any

import pjsua2 as pj  # type: ignore[import-untyped]

ACTIVITIES = {
    "": pj.PJRPID_ACTIVITY_UNKNOWN,
    "away": pj.PJRPID_ACTIVITY_AWAY,
    "busy": pj.PJRPID_ACTIVITY_BUSY,
}
ACTIVITY_NAMES = {
    pj.PJRPID_ACTIVITY_UNKNOWN: "",
    pj.PJRPID_ACTIVITY_AWAY: "away",
    pj.PJRPID_ACTIVITY_BUSY: "busy",
}
STATUS_NAMES = {
    pj.PJSUA_BUDDY_STATUS_UNKNOWN: "unknown",
    pj.PJSUA_BUDDY_STATUS_ONLINE: "online",
    pj.PJSUA_BUDDY_STATUS_OFFLINE: "offline",
}


def emit(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


class Account(pj.Account):  # type: ignore[misc]
    def onRegState(self, prm: Any) -> None:
        emit(event="registered", code=int(prm.code))


class Buddy(pj.Buddy):  # type: ignore[misc]
    def onBuddyState(self) -> None:
        info = self.getInfo()
        status = info.presStatus
        emit(
            event="buddy",
            uri=info.uri,
            status=STATUS_NAMES.get(status.status, str(status.status)),
            text=status.statusText,
            note=status.note,
            activity=ACTIVITY_NAMES.get(status.activity, str(status.activity)),
            subscription=info.subStateName,
        )


def publish(account: Account, command: dict[str, Any]) -> None:
    status = pj.PresenceStatus()
    status.status = (
        pj.PJSUA_BUDDY_STATUS_ONLINE
        if command.get("status", "online") == "online"
        else pj.PJSUA_BUDDY_STATUS_OFFLINE
    )
    status.activity = ACTIVITIES[str(command.get("activity", ""))]
    status.note = str(command.get("note", ""))
    account.setOnlineStatus(status)
    emit(event="published", status=command.get("status", "online"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server-port", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--watch", required=True, help="the extension to subscribe to")
    parser.add_argument("--seconds", type=float, default=60.0, help="exit after this long")
    args = parser.parse_args()
    server = f"127.0.0.1:{args.server_port}"

    endpoint = pj.Endpoint()
    endpoint.libCreate()
    config = pj.EpConfig()
    config.uaConfig.threadCnt = 0  # poll from this thread: no callbacks from elsewhere
    config.uaConfig.mainThreadOnly = True
    config.logConfig.level = 3
    config.logConfig.consoleLevel = 3
    config.logConfig.filename = os.environ.get("PJSUA_LOG", "")
    config.medConfig.noVad = True
    endpoint.libInit(config)
    transport = pj.TransportConfig()
    transport.port = args.port
    transport.boundAddress = "127.0.0.1"
    endpoint.transportCreate(pj.PJSIP_TRANSPORT_UDP, transport)
    endpoint.libStart()
    endpoint.audDevManager().setNullDev()

    account_config = pj.AccountConfig()
    account_config.idUri = f"sip:{args.user}@{server}"
    account_config.regConfig.registrarUri = f"sip:{server}"
    account_config.sipConfig.authCreds.append(
        pj.AuthCredInfo("digest", "*", args.user, 0, args.password)
    )
    account_config.presConfig.publishEnabled = True
    account_config.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
    account = Account()
    account.create(account_config)

    buddy_config = pj.BuddyConfig()
    buddy_config.uri = f"sip:{args.watch}@{server}"
    buddy_config.subscribe = True
    buddy = Buddy()
    buddy.create(account, buddy_config)

    deadline = time.monotonic() + args.seconds
    try:
        while time.monotonic() < deadline:
            endpoint.libHandleEvents(20)
            ready, _, _ = select.select([sys.stdin], [], [], 0)
            if not ready:
                continue
            line = sys.stdin.readline()
            if not line:
                break
            command = json.loads(line)
            if command.get("command") == "quit":
                break
            if command.get("command") == "publish":
                publish(account, command)
    finally:
        # PEERS.md: delete the objects pjsua2 holds before libDestroy, or it aborts.
        del buddy
        account.shutdown()
        del account
        gc.collect()
        endpoint.libDestroy()
    return 0


if __name__ == "__main__":
    sys.exit(main())
