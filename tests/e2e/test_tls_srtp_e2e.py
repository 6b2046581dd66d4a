"""Encryption end to end: SIP over TLS, SRTP with SDES keys, the portal over HTTPS.

Real softphones (baresip 1.0 with its `srtp` module) register over TLS with a
certificate teleoffice was configured with (generated here, as `serve --demo`
does), and call each other with SRTP.  Audio is proven by the recordings, as
in test_calls_baresip.py; what each phone received is proven by baresip's own
SIP trace (`-s`, through a wrapper found first on PATH), which shows the
messages after TLS has been taken off: RTP/SAVP and a=crypto in the SDP, and a
key of teleoffice's own on each leg (the two phones never see each other's).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import ssl
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from teleoffice.bench.processes import LOOPBACK, free_port, wait_until
from teleoffice.transport.tls import certificate_hosts, ensure_self_signed
from tests.e2e.calls_kit import CallLab, Phone, assert_only_tone, heard_tones, wait_for_log
from tests.e2e.harness import HarnessError, Server, write_tone

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

ALICE = ("201", "secret201")
BOB = ("202", "secret202")
ALICE_TONE = 600.0
BOB_TONE = 1000.0
TONES = (ALICE_TONE, BOB_TONE)


@pytest.fixture
def cert(tmp_path: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made the way `serve --demo` makes one."""
    return ensure_self_signed(tmp_path / "tls", certificate_hosts(LOOPBACK))


@pytest.fixture
def sip_trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every baresip of the test writes its SIP trace (`-s`) into its log."""
    real = shutil.which("baresip")
    if real is None:
        raise HarnessError("baresip is not installed (Debian package baresip-core)")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    wrapper = bindir / "baresip"
    wrapper.write_text(f'#!/bin/sh\nexec {real} -s "$@"\n')
    wrapper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}")


class SecurePhone(Phone):
    """A recording baresip that trusts our certificate for SIP over TLS (`sip_cafile`)
    and has the `srtp` module for SDES; accounts choose `mediaenc` themselves."""

    def __init__(self, workdir: Path, *, cafile: Path, audio_source: Path) -> None:
        super().__init__(workdir, audio_source=audio_source, record=True)
        self.cafile = cafile

    def write_config(self) -> None:
        super().write_config()
        with (self.config_dir / "config").open("a") as config:
            config.write(f"sip_cafile\t{self.cafile}\nmodule\tsrtp.so\n")

    def register_to(
        self,
        account: tuple[str, str],
        port: int,
        *,
        tls: bool,
        mediaenc: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        user, password = account
        transport = ";transport=tls" if tls else ""
        line = (
            f"<sip:{user}@{LOOPBACK}:{port}{transport}>;auth_user={user};auth_pass={password}"
            f";regint=600;answermode=auto" + (f";mediaenc={mediaenc}" if mediaenc else "")
        )
        reply = self.command("uanew", line)
        if not reply.get("ok"):
            raise HarnessError(f"baresip refused uanew: {reply}")
        outcome = self.wait_for(("REGISTER_OK", "REGISTER_FAIL"), timeout)
        if outcome is None or outcome.get("type") != "REGISTER_OK":
            raise HarnessError(f"{user} did not register over {'TLS' if tls else 'UDP'}: {outcome}")

    def call(self, number: str, port: int, *, tls: bool) -> None:
        transport = ";transport=tls" if tls else ""
        reply = self.command("dial", f"sip:{number}@{LOOPBACK}:{port}{transport}")
        if not reply.get("ok"):
            raise HarnessError(f"baresip refused to dial {number}: {reply}")

    def traced(self) -> list[str]:
        """The SIP messages of baresip's trace, as text (start line first)."""
        text = self.log_path.read_text(errors="replace")
        # libre's trace: a line naming transport and addresses, then the message.
        chunks = re.split(r"\n(?=(?:UDP|TCP|TLS) \S+ -> \S+)", text)
        messages = []
        for chunk in chunks:
            head, _, rest = chunk.partition("\n")
            if re.match(r"(?:UDP|TCP|TLS) \S+ -> \S+", head):
                messages.append(rest.strip("\r\n"))
        return messages


def secure_phone(lab: CallLab, cert: Path, tone: float, name: str) -> SecurePhone:
    workdir = lab.root / f"{name}-{len(lab.phones)}"
    workdir.mkdir(parents=True, exist_ok=True)
    phone = SecurePhone(
        workdir, cafile=cert, audio_source=write_tone(workdir / f"{tone:g}.wav", tone, 10)
    )
    lab.phones.append(phone)  # stopped by PID with the lab
    phone.start()
    return phone


def tls_server(lab: CallLab, cert: tuple[Path, Path]) -> tuple[Server, int]:
    tls_port = free_port()
    server = lab.server(
        env={
            "TELEOFFICE_SIP_TLS_PORT": str(tls_port),
            "TELEOFFICE_TLS_CERT_FILE": str(cert[0]),
            "TELEOFFICE_TLS_KEY_FILE": str(cert[1]),
            # The harness checks /healthz over plain HTTP; HTTPS has a test of its own.
            "TELEOFFICE_HTTP_TLS": "false",
        }
    )
    assert server.health()["sip"]["tls_port"] == tls_port
    return server, tls_port


def sdp_of(message: str) -> str:
    return message.replace("\r\n", "\n").partition("\n\n")[2]


def received(phone: SecurePhone, start: str, *, with_sdp: bool = True) -> list[str]:
    """Messages the phone received whose start line begins with `start`.

    The trace shows both directions; what came from teleoffice has its Server or
    User-Agent header (teleoffice's own messages say `Server: teleoffice` in
    responses, and requests carry our Contact)."""
    found = []
    for message in phone.traced():
        if not message.startswith(start):
            continue
        from_us = "Server: teleoffice" in message or "sip:teleoffice@" in message
        if from_us and (sdp_of(message) or not with_sdp):
            found.append(message)
    return found


def crypto_keys(sdp: str) -> list[str]:
    return re.findall(r"a=crypto:\d+ \S+ inline:([A-Za-z0-9+/=]+)", sdp)


def audio_proto(sdp: str) -> str:
    found = re.search(r"^m=audio \d+ (\S+) ", sdp, re.MULTILINE)
    assert found is not None, sdp
    return found.group(1)


def talk(caller: Phone, callee: Phone) -> None:
    for phone in (caller, callee):
        assert phone.wait_for("CALL_ESTABLISHED", 10) is not None, phone.call_events()
    time.sleep(3.5)
    caller.command("hangup")
    for phone in (caller, callee):
        assert phone.wait_for("CALL_CLOSED", 5) is not None, phone.call_events()


def test_two_phones_register_over_tls_and_talk_with_srtp(
    lab: CallLab, cert: tuple[Path, Path], sip_trace: None
) -> None:
    server, tls_port = tls_server(lab, cert)
    alice = secure_phone(lab, cert[0], ALICE_TONE, "alice")
    bob = secure_phone(lab, cert[0], BOB_TONE, "bob")
    alice.register_to(ALICE, tls_port, tls=True, mediaenc="srtp-mand")
    bob.register_to(BOB, tls_port, tls=True, mediaenc="srtp-mand")
    # The registrar remembers the TLS flows: that is how the call reaches Bob.
    bindings = server.registrations()
    assert wait_until(lambda: len(server.registrations()) == 2, 5), bindings
    assert all(" TLS 127.0.0.1:" in line for line in server.registrations())
    assert server.health()["tcp_connections"] >= 2

    alice.call("202", tls_port, tls=True)
    talk(alice, bob)
    assert_only_tone(heard_tones(bob, TONES), ALICE_TONE, TONES)
    assert_only_tone(heard_tones(alice, TONES), BOB_TONE, TONES)

    # What each phone received from teleoffice: SRTP offers and answers.
    [invite_to_bob] = received(bob, "INVITE ")
    offer = sdp_of(invite_to_bob)
    assert audio_proto(offer) == "RTP/SAVP", offer
    assert "AES_CM_128_HMAC_SHA1_80" in offer, offer
    assert re.search(rf"^Via: SIP/2.0/TLS {LOOPBACK}:{tls_port}", invite_to_bob, re.MULTILINE)
    assert f"{LOOPBACK}:{tls_port};transport=tls" in invite_to_bob
    answers_to_alice = [m for m in received(alice, "SIP/2.0 200") if "INVITE" in m]
    assert answers_to_alice, alice.traced()
    answer = sdp_of(answers_to_alice[0])
    assert audio_proto(answer) == "RTP/SAVP", answer
    [key_for_alice] = crypto_keys(answer)
    # Keys are per leg: teleoffice's keys are its own, and neither phone's key
    # reaches the other phone.
    alice_keys = {k for m in alice.traced() for k in crypto_keys(sdp_of(m))} - {key_for_alice}
    bob_keys = {k for m in bob.traced() for k in crypto_keys(sdp_of(m))} - set(crypto_keys(offer))
    assert alice_keys, "Alice's own offer had no key"
    assert bob_keys, "Bob's own answer had no key"
    assert not alice_keys & set(crypto_keys(offer))
    assert not bob_keys & {key_for_alice}
    for phone in (alice, bob):
        assert "SRTP is Enabled" in phone.log_path.read_text(errors="replace")

    lab.assert_idle(server)
    [call] = wait_for_log(server, 1)
    assert (call.caller_number, call.callee_number, call.outcome) == ("201", "202", "answered")


def test_a_plain_rtp_phone_calls_an_srtp_phone(
    lab: CallLab, cert: tuple[Path, Path], sip_trace: None
) -> None:
    server, tls_port = tls_server(lab, cert)
    alice = secure_phone(lab, cert[0], ALICE_TONE, "alice")
    bob = secure_phone(lab, cert[0], BOB_TONE, "bob")
    alice.register_to(ALICE, server.sip_port, tls=False)  # plain UDP, plain RTP
    bob.register_to(BOB, tls_port, tls=True, mediaenc="srtp-mand")

    alice.call("202", server.sip_port, tls=False)
    talk(alice, bob)
    assert_only_tone(heard_tones(bob, TONES), ALICE_TONE, TONES)
    assert_only_tone(heard_tones(alice, TONES), BOB_TONE, TONES)

    [invite_to_bob] = received(bob, "INVITE ")
    assert audio_proto(sdp_of(invite_to_bob)) == "RTP/SAVP"
    assert crypto_keys(sdp_of(invite_to_bob))
    answers_to_alice = [m for m in received(alice, "SIP/2.0 200") if "INVITE" in m]
    assert answers_to_alice, alice.traced()
    answer = sdp_of(answers_to_alice[0])
    assert audio_proto(answer) == "RTP/AVP", answer
    assert "a=crypto" not in answer, answer
    assert "SRTP is Enabled" in bob.log_path.read_text(errors="replace")
    assert "SRTP is Enabled" not in alice.log_path.read_text(errors="replace")
    lab.assert_idle(server)


class HttpsServer(Server):
    """A server whose portal is HTTPS: /healthz is read over TLS, trusting `cafile`."""

    def __init__(self, workdir: Path, *, cafile: Path, env: dict[str, str]) -> None:
        super().__init__(workdir, env=env)
        self.context = ssl.create_default_context(cafile=str(cafile))
        self.peer_certificates: list[bytes] = []

    def health(self, timeout: float = 3.0) -> dict[str, Any]:
        url = f"https://{LOOPBACK}:{self.http_port}/healthz"
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.context)
        )
        with opener.open(url, timeout=timeout) as reply:
            if reply.status != 200:
                raise HarnessError(f"/healthz answered {reply.status}")
            payload = json.loads(reply.read())
        if not isinstance(payload, dict):
            raise HarnessError(f"/healthz returned {payload!r}")
        return payload


def test_portal_over_https_with_the_configured_certificate(
    tmp_path: Path, seeded_data: Path, cert: tuple[Path, Path]
) -> None:
    tls_port = free_port()
    server = HttpsServer(
        tmp_path / "https-server",
        cafile=cert[0],
        env={
            "TELEOFFICE_TLS_CERT_FILE": str(cert[0]),
            "TELEOFFICE_TLS_KEY_FILE": str(cert[1]),
            "TELEOFFICE_SIP_TLS_PORT": str(tls_port),
        },
    )
    server.prepare(seeded_data)
    try:
        server.start()  # ready once /healthz answers over verified HTTPS
        assert server.health()["status"] == "ok"
        # The certificate served is the configured one, over TLS 1.2 or newer.
        with socket.create_connection((LOOPBACK, server.http_port), timeout=5) as raw:
            context = ssl.create_default_context(cafile=str(cert[0]))
            with context.wrap_socket(raw, server_hostname=LOOPBACK) as tls:
                served = tls.getpeercert(binary_form=True)
                assert tls.version() in ("TLSv1.2", "TLSv1.3")
        configured = ssl.PEM_cert_to_DER_cert(cert[0].read_text())
        assert served is not None
        assert hashlib.sha256(served).digest() == hashlib.sha256(configured).digest()
        # Plain HTTP is not answered on that port.
        with pytest.raises(OSError):  # noqa: PT011 - any failure of the plain request
            urllib.request.build_opener(urllib.request.ProxyHandler({})).open(
                f"http://{LOOPBACK}:{server.http_port}/healthz", timeout=3
            ).read()
        # SIP over TLS runs beside it with the same certificate.
        assert server.health()["sip"]["tls_port"] == tls_port
    finally:
        assert server.stop() == 0
