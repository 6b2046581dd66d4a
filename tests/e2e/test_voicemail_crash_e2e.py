"""Voicemail survives `kill -9` of the server (issue 5: "a crash mid-recording
leaves either a complete message or none, never a corrupt file").

Alice's baresip calls bob (202), who has a mailbox and no phone online, so the
call goes straight to it; she presses # to skip the greeting and talks (a
700 Hz tone).  A message is being recorded once its hidden temporary file
(`.NAME.*.part`) exists in bob's mailbox folder.  The server is killed with
SIGKILL by its PID, started again on the same data, and the mailbox is then
checked through the API and on disk: only complete messages are listed, each
downloads as a WAV holding the tone, no partial or stray file is left, and the
mailbox takes new messages.
"""

from __future__ import annotations

import os
import signal
import time
import wave
from pathlib import Path
from typing import Any

import pytest

from teleoffice.bench.processes import wait_until
from tests.e2e.calls_kit import CallLab, Phone, analyse_wav
from tests.e2e.harness import Server, write_tone
from tests.e2e.portal_kit import Portal, Portals

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

BOB_PW = "bob-portal-pw"
CALLER_TONE = 700.0
SETUP = (("user", "set", "bob", "--password", BOB_PW, "--voicemail"),)


def mailbox_dir(server: Server) -> Path:
    return server.data_dir / "voicemail" / "bob"


def files_of(server: Server) -> list[str]:
    """Every name in bob's mailbox folder, hidden ones included."""
    folder = mailbox_dir(server)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def partial_files(server: Server) -> list[str]:
    """Hidden (temporary) files anywhere under the voicemail folder."""
    root = server.data_dir / "voicemail"
    return sorted(str(p.relative_to(root)) for p in root.rglob(".*")) if root.is_dir() else []


def kill_9(server: Server) -> None:
    """SIGKILL the server by its PID: no shutdown code runs."""
    proc = server.proc
    assert proc is not None, "the server was never started"
    assert proc.poll() is None, "the server is not running"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def caller(lab: CallLab, server: Server, tmp_path: Path) -> Phone:
    source = write_tone(tmp_path / "700Hz.wav", CALLER_TONE, 60.0, amplitude=8000)
    phone = lab.phone(audio_source=source)
    phone.register("201", "secret201", server.sip_port)
    return phone


def start_message(phone: Phone, server: Server) -> int:
    """Call bob, skip the greeting, and return once the recording has begun; the
    phone's event mark from before the call."""
    mark = phone.mark()
    phone.dial("202", server.sip_port)
    established = phone.wait_for(("CALL_ESTABLISHED", "CALL_CLOSED"), 5, after=mark)
    assert established is not None, phone.call_events()
    assert established["type"] == "CALL_ESTABLISHED", established
    time.sleep(0.3)
    assert phone.command("sndcode", "#").get("ok")  # skip the greeting (RFC 4733)
    assert wait_until(lambda: bool(partial_files(server)), 5, interval=0.05), files_of(server)
    return mark


def hang_up(phone: Phone, mark: int) -> None:
    phone.command("hangup")
    assert phone.wait_for("CALL_CLOSED", 5, after=mark) is not None, phone.call_events()


def messages(portal: Portal) -> list[dict[str, Any]]:
    return list(portal.call("GET", "/api/me/voicemail")["messages"])


def assert_consistent(server: Server, bob: Portal, tmp_path: Path) -> list[dict[str, Any]]:
    """What a restarted server must show: every listed message downloads as a
    complete WAV holding the caller's tone; the folder holds exactly their files."""
    listed = messages(bob)
    for message in listed:
        reply = bob.request("GET", f"/api/me/voicemail/{message['id']}/audio")
        assert reply.status_code == 200, (message, reply.status_code)
        path = tmp_path / f"after-crash-{message['id']}.wav"
        path.write_bytes(reply.content)
        with wave.open(str(path), "rb") as wav:
            shape = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
            frames = wav.getnframes()
        assert shape == (1, 2, 8000), shape
        # The header's sizes are those of the data: the file was closed properly.
        assert 44 + 2 * frames == len(reply.content), (frames, len(reply.content))
        assert abs(frames / 8000 - message["duration"]) < 0.1, (frames, message)
        report = analyse_wav(path, (CALLER_TONE, 425.0), skip=0.0)
        assert report.dominant == CALLER_TONE, str(report)
        assert report.share(CALLER_TONE) > 0.8, str(report)
    assert partial_files(server) == [], files_of(server)
    assert len(files_of(server)) == len(listed), (files_of(server), listed)
    return listed


def test_kill_9_while_recording_leaves_a_consistent_mailbox(
    lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    server = lab.server(setup=SETUP)
    alice = caller(lab, server, tmp_path)
    bob = portals.login(server, "bob", BOB_PW)

    # A first message, complete.
    mark = start_message(alice, server)
    time.sleep(2.0)
    hang_up(alice, mark)
    assert wait_until(lambda: len(messages(bob)) == 1, 10, interval=0.2), messages(bob)
    [kept] = messages(bob)

    # A second one is being recorded when the server dies.
    mark = start_message(alice, server)
    time.sleep(1.5)
    in_progress = partial_files(server)
    assert len(in_progress) == 1, files_of(server)
    kill_9(server)
    # What the crash left on disk: the complete message and the partial one.
    assert len(files_of(server)) == 2, files_of(server)
    hang_up(alice, mark)  # her phone never heard of the crash

    server.start()
    portals.close()
    bob = portals.login(server, "bob", BOB_PW)
    listed = assert_consistent(server, bob, tmp_path)
    assert listed == [kept], listed

    # The mailbox works on: a new message is left and listed.
    mark = start_message(alice, server)
    time.sleep(2.0)
    hang_up(alice, mark)
    assert wait_until(lambda: len(messages(bob)) == 2, 10, interval=0.2), messages(bob)
    newest, oldest = assert_consistent(server, bob, tmp_path)
    assert oldest == kept, (oldest, kept)
    assert newest["id"] != kept["id"], newest
    assert newest["from"]["number"] == "201", newest
    lab.assert_idle(server)


def test_kill_9_right_after_a_message_is_committed_keeps_it(
    lab: CallLab, portals: Portals, tmp_path: Path
) -> None:
    server = lab.server(setup=SETUP)
    alice = caller(lab, server, tmp_path)
    bob = portals.login(server, "bob", BOB_PW)
    stream = bob.events()

    mark = start_message(alice, server)
    time.sleep(2.0)
    hang_up(alice, mark)
    # The portal hears of the message as soon as it is stored; the server dies then.
    new = stream.wait_for("voicemail.new", 10)
    assert new is not None, stream.types()
    kill_9(server)

    server.start()
    portals.close()
    bob = portals.login(server, "bob", BOB_PW)
    [message] = assert_consistent(server, bob, tmp_path)
    assert message["id"] == new["message"]["id"], (message, new)
    assert message["from"]["number"] == "201", message
    assert message["heard"] is False, message
    assert message["duration"] >= 1.5, message
    lab.assert_idle(server)
