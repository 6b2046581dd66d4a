"""sipvicious against a running teleoffice: no extension is enumerated, a 4-digit
SIP password is not cracked, the guessing address is blocked while a real phone
elsewhere keeps registering, and the logs carry no credentials.

sipvicious 0.3.8 ignores `-b` in svwar and svcrack (their `main` never hands the
binding address to the scanner), so both scan from 127.0.0.1 whatever we pass.
The scans therefore run first (svwar, then svcrack), and the legitimate phone
registers from 127.0.0.3, an address of its own on the loopback network.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from teleoffice.bench.processes import LOOPBACK, free_port
from tests.e2e.conftest import ServerFactory
from tests.e2e.harness import (
    Server,
    SipMessage,
    build_request,
    digest_authorization,
    options,
    parse_message,
    pick_challenge,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

PIN = "7391"  # alice's (201) SIP password for this test: four digits, as svcrack likes
FAIL_LIMIT = 5
PHONE_HOST = "127.0.0.3"
SCAN_TIMEOUT = 90.0
# svwar prints found extensions as a table: "| 201 | reqauth |".
_FOUND_ROW = re.compile(r"^\|\s*(\d+)\s*\|", re.MULTILINE)


def tool(name: str) -> str:
    """A sipvicious command next to the running interpreter (the venv), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    assert found is not None, f"{name} is not installed (pip install sipvicious)"
    return found


def run_tool(command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    cwd.mkdir(parents=True, exist_ok=True)
    # sipvicious keeps sessions under ~/.sipvicious: give it a home of its own.
    env = {"HOME": str(cwd), "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=SCAN_TIMEOUT,
        check=False,
    )


def metrics(server: Server) -> dict[str, float]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{LOOPBACK}:{server.http_port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    return values


def register_from(host: str, server_port: int, user: str, password: str) -> SipMessage | None:
    """REGISTER with digest over UDP from `host` (a loopback address of our choice)."""
    uri = f"sip:{LOOPBACK}:{server_port}"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        sock.settimeout(3.0)
        port = int(sock.getsockname()[1])

        def ask(cseq: int, *extra: tuple[str, str]) -> SipMessage | None:
            # The Via names 127.0.0.1; the server's received/rport stamp sends the
            # answer back to the address we really used.
            request = build_request(
                "REGISTER",
                uri,
                local_port=port,
                user=user,
                call_id=f"guard-{port}",
                cseq=cseq,
                headers=[("Contact", f"<sip:{user}@{host}:{port}>"), *extra],
            )
            sock.sendto(request, (LOOPBACK, server_port))
            while True:
                try:
                    data = sock.recv(65535)
                except TimeoutError:
                    return None
                message = parse_message(data)
                if message.is_response and message.status >= 200:
                    return message

        first = ask(1)
        if first is None or first.status != 401:
            return first
        authorization = digest_authorization(
            pick_challenge(first), method="REGISTER", uri=uri, username=user, password=password
        )
        return ask(2, ("Authorization", authorization))


def test_scans_find_nothing_and_guessing_is_blocked(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    server = server_factory(
        env={
            "TELEOFFICE_AUTH_FAIL_LIMIT": str(FAIL_LIMIT),
            "TELEOFFICE_AUTH_FAIL_WINDOW": "60",
            "TELEOFFICE_AUTH_BLOCK_TIME": "900",
        },
        start=False,
    )
    server.cli("user", "set", "alice", "--sip-password", PIN)
    server.start()
    target = f"udp://{LOOPBACK}:{server.sip_port}"

    # 1. Enumeration: 201 and 202 exist in 195-215, and nothing tells them apart.
    #    Plain runs stop at svwar's own sanity check (an unknown extension is
    #    challenged like a real one); forced runs compare every answer.
    for method in ("REGISTER", "OPTIONS", "INVITE"):
        for force in (False, True):
            command = [tool("sipvicious_svwar"), "-m", method, "-e", "195-215"]
            command += ["-b", LOOPBACK, "-P", str(free_port())]
            command += ["--force"] if force else []
            result = run_tool([*command, target], tmp_path / f"svwar-{method}-{force}")
            output = result.stdout + result.stderr
            assert result.returncode in (0, 30), output
            assert "found nothing" in output, output
            assert _FOUND_ROW.findall(result.stdout) == [], output
    assert metrics(server).get("teleoffice_sip_blocks_total", 0.0) == 0.0

    # 2. Password guessing: the whole 4-digit space against 201.
    crack_command = [tool("sipvicious_svcrack"), "-u", "201", "-r", "1000-9999"]
    crack_command += ["-b", LOOPBACK, "-P", str(free_port()), target]
    crack = run_tool(crack_command, tmp_path / "svcrack")
    output = crack.stdout + crack.stderr
    assert crack.returncode != 40, f"svcrack found the password:\n{output}"
    assert PIN not in output, output
    assert "found nothing" in output, output

    log = server.log_text()
    blocks = re.findall(r"WARNING teleoffice\.security: blocked source=(\S+) .*", log)
    assert blocks == [LOOPBACK], log[-3000:]
    failures = re.findall(
        r"INFO teleoffice\.security: digest authentication failed: source=127\.0\.0\.1:\d+ "
        r"method=REGISTER account='201' source_failures=(\d+)/5",
        log,
    )
    # Exactly the allowance was spent; every later guess met silence.
    assert failures == [str(n) for n in range(1, FAIL_LIMIT + 1)], log[-3000:]
    for secret in ("Digest", "response=", "nonce", "cnonce", "Authorization", PIN):
        assert secret not in log, f"{secret!r} in the server log"

    values = metrics(server)
    assert values["teleoffice_sip_blocks_total"] == 1.0
    assert values["teleoffice_sip_blocked_sources"] == 1.0
    assert values["teleoffice_sip_auth_guard_failures_total"] == float(FAIL_LIMIT)
    assert values["teleoffice_sip_blocked_dropped_total"] > 0

    # 3. During the block: the guessing address gets no answer at all...
    assert options(server.sip_port) is None
    # ...while alice's phone at another address registers with her password.
    answer = register_from(PHONE_HOST, server.sip_port, "201", PIN)
    assert answer is not None, "the phone got no answer"
    assert answer.status == 200, answer.text()
    assert metrics(server)["teleoffice_sip_blocked_sources"] == 1.0
