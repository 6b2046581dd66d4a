"""What the browser tests share: Debian's chromium through Playwright, a
module's teleoffice with its trunks and users, signed-in pages, screenshots.

- `launch_chromium`: Playwright's chromium API driving /usr/bin/chromium
  (Debian's package, headless), never a browser Playwright downloaded.
- `PortalSite`: one running teleoffice for a module, seeded through the CLI
  with the users of `USERS` (portal passwords, alice may telecommute, both have
  voicemail, an administrator) and two trunks on ports of the module's own:
  "home" (prefix 8) where a telecommuter's home line answers, "pstn" (prefix 9)
  for the outside world. `site.sipp(...)` runs a sipp scenario of
  tests/e2e/scenarios against it.
- `Pages`: browser contexts (each its own cookie jar, like separate browsers)
  with a signed-in or fresh page; every JavaScript error and CSP violation a
  page logs fails the test that made it.
- `shoot`: screenshots of a page at desktop and phone sizes, into
  build/screenshots/<name>-desktop.png and <name>-phone.png.
- `StageRecorder`: what the page showed of a call over time (a
  MutationObserver on the call dock), so that stages which pass quickly are
  seen as the user saw them.

Every wait is bounded; every process is stopped by its own handle.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    ViewportSize,
)

from teleoffice.bench.processes import LOOPBACK, free_port
from tests.e2e.calls_kit import SippProcess, port_block, tracebacks
from tests.e2e.harness import DEFAULT_USERS, HarnessError, Server

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "screenshots"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
# Generous: two cores are shared with other tests and with the SIP peers.
TIMEOUT_MS = 10_000

# username -> (extension, display name, portal password, extra `user add/set` flags)
USERS: dict[str, tuple[str, str, str]] = {
    "alice": ("201", "Alice Archer", "alice-browser-pw"),
    "bob": ("202", "Bob Baker", "bob-browser-pw"),
    "admin": ("200", "Ada Admin", "admin-browser-pw"),
}
PASSWORDS = {name: user[2] for name, user in USERS.items()}
HOME_NUMBER = "0611"  # alice's home line, as the home trunk sends it
HOME = "8" + HOME_NUMBER  # as dialled from the desk
DID = "5550201"  # alice's outside number
SIPP_PCAPS = Path("/usr/share/sip-tester")


def launch_chromium(playwright: Playwright) -> Browser:
    """Debian's chromium, headless. --no-sandbox: tests may run as root, where
    chromium's sandbox refuses to start. Audio may play without a gesture, so a
    test can start a player the way a click would."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        headless=True,
        args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"],
    )


# --- the server ------------------------------------------------------------------------


def seed_commands(home_port: int, pstn_port: int) -> list[list[str]]:
    """CLI commands that turn a default data directory (alice 201, bob 202)
    into the browser tests' site."""
    alice, bob, admin = USERS["alice"], USERS["bob"], USERS["admin"]
    return [
        ["user", "set", "alice", "--display-name", alice[1], "--password", alice[2],
         "--telecommuter", "--voicemail"],
        ["user", "set", "bob", "--display-name", bob[1], "--password", bob[2], "--voicemail"],
        ["user", "add", "admin", "--extension", admin[0], "--display-name", admin[1],
         "--password", admin[2], "--sip-password", "secret200", "--admin"],
        ["did", "add", DID, "--user", "alice"],
        ["trunk", "add", "home", "--host", LOOPBACK, "--port", str(home_port), "--prefix", "8"],
        ["trunk", "add", "pstn", "--host", LOOPBACK, "--port", str(pstn_port), "--prefix", "9"],
    ]  # fmt: skip


@dataclass(frozen=True)
class SiteSeed:
    """The seeded data directory every module's server is copied from, and
    the trunks' ports written into it (the session's peers listen there)."""

    data: Path
    home_port: int
    pstn_port: int

    @classmethod
    def create(cls, workdir: Path) -> SiteSeed:
        home_port, pstn_port = free_port(span=2), free_port()
        server = Server(workdir)
        server.data_dir.mkdir(parents=True)
        commands = [["init"]] + [
            ["user", "add", name, "--extension", ext, "--sip-password", password,
             "--display-name", display]
            for name, ext, password, display in DEFAULT_USERS
        ]  # fmt: skip
        run_cli(server, [*commands, *seed_commands(home_port, pstn_port)])
        return cls(server.data_dir, home_port, pstn_port)


# The commands run one after the other in one interpreter: the same command
# line (teleoffice.cli.main) without paying a Python start-up for each.
_RUN_CLI = """
import json, sys
from teleoffice.cli import main
data, commands = sys.argv[1], json.loads(sys.argv[2])
for args in commands:
    status = main(["--data", data, *args])
    if status != 0:
        sys.exit(f"teleoffice {' '.join(args)} exited {status}")
"""


def run_cli(server: Server, commands: Sequence[Sequence[str]]) -> None:
    """Run `teleoffice --data DIR <args>` for each of `commands` on `server`."""
    result = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, str(server.data_dir), json.dumps(commands)],
        capture_output=True,
        text=True,
        env=server.env,
        cwd=server.workdir,
        stdin=subprocess.DEVNULL,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise HarnessError(f"seeding failed:\n{result.stdout}\n{result.stderr}")


@dataclass
class PortalSite:
    """One running teleoffice for a module's browser tests."""

    server: Server
    workdir: Path
    home_port: int
    pstn_port: int
    sipps: list[SippProcess] = field(default_factory=list)

    @classmethod
    def start(
        cls, workdir: Path, seed: SiteSeed, extra: Sequence[Sequence[str]] = ()
    ) -> PortalSite:
        low, high = port_block("server", 200)
        server = Server(
            workdir / "server",
            env={"TELEOFFICE_RTP_PORT_MIN": str(low), "TELEOFFICE_RTP_PORT_MAX": str(high)},
        )
        server.prepare(seed.data)
        if extra:
            run_cli(server, extra)
        server.start()
        return cls(server, workdir, seed.home_port, seed.pstn_port)

    @property
    def base_url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.http_port}"

    def sipp(self, scenario: str, **options: Any) -> SippProcess:
        """A sipp run of tests/e2e/scenarios/<scenario>.xml against the server
        (not started yet); stopped by `stop_sipps` if still running."""
        run = SippProcess(
            scenario, server_port=self.server.sip_port, workdir=self.workdir / "sipp", **options
        )
        self.sipps.append(run)
        return run

    def with_pcaps(self, run: SippProcess) -> SippProcess:
        """sipp finds `play_pcap_audio="pcap/..."` files in its working directory."""
        os.symlink(SIPP_PCAPS, run.rundir / "pcap")
        return run

    def stop_sipps(self) -> None:
        for run in self.sipps:
            run.stop()
        self.sipps.clear()

    def stop(self) -> list[str]:
        """Stop everything; the tracebacks the server logged meanwhile."""
        self.stop_sipps()
        self.server.stop()
        return tracebacks(self.server)


# --- pages -----------------------------------------------------------------------------


@dataclass
class Pages:
    """Browser contexts of one test; each is a separate browser as far as the
    server can tell (own cookies, own WebSocket)."""

    browser: Browser
    site: PortalSite
    contexts: list[BrowserContext] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def new(self, *, viewport: ViewportSize | None = None) -> Page:
        """A fresh page at the portal (not signed in)."""
        context = self.browser.new_context(
            base_url=self.site.base_url, viewport=viewport or DESKTOP, locale="en-GB"
        )
        context.set_default_timeout(TIMEOUT_MS)
        self.contexts.append(context)
        page = context.new_page()
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.problems.append(f"page error: {exc}"))
        return page

    def _console(self, message: ConsoleMessage) -> None:
        text = message.text
        # A refused request is the API saying no (the test checks what the page
        # shows for it), and a WebSocket dropped by a test is expected; a CSP
        # violation or a script error is a bug.
        if message.type == "error" and not re.search(
            r"Failed to load resource|WebSocket connection to", text
        ):
            self.problems.append(f"console error: {text}")

    def signed_in(
        self, username: str, *, viewport: ViewportSize | None = None, path: str = "/"
    ) -> Page:
        """A page of `username`, signed in through the API (the cookie lands in
        the context's jar, as a sign-in by the form would put it) and showing
        the portal with its live connection up."""
        page = self.new(viewport=viewport)
        reply = page.context.request.post(
            "/api/login", data={"username": username, "password": PASSWORDS[username]}
        )
        assert reply.ok, f"login of {username}: {reply.status} {reply.text()}"
        page.goto(path)
        wait_live(page)
        return page

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):
                context.close()
        self.contexts.clear()


def api(page: Page, method: str, path: str, body: Any = None, *, expect: int = 200) -> Any:
    """A request with the page's session cookie (and the CSRF header the page's
    own script sends), for setting up or checking what the UI did."""
    reply = page.context.request.fetch(
        path, method=method, data=body, headers={"X-Teleoffice-CSRF": "1"}
    )
    assert reply.status == expect, f"{method} {path}: {reply.status} {reply.text()}"
    return reply.json() if reply.body() else None


def wait_live(page: Page) -> None:
    """Wait until the shell is up and its WebSocket has had its hello."""
    page.locator(".conn-open").wait_for(state="attached")


def go(page: Page, hash_: str) -> None:
    """Open a page of the portal by its hash route and wait for its heading."""
    page.evaluate("hash => { location.hash = hash; }", hash_)
    page.locator("h1.page-title").wait_for()


# --- screenshots ------------------------------------------------------------------------


def shoot(
    page: Page,
    name: str,
    *,
    sizes: Sequence[str] = ("desktop", "phone"),
    full_page: bool = True,
) -> list[Path]:
    """Screenshots of what `page` shows now, at each size (the viewport is put
    back afterwards): build/screenshots/<name>-<size>.png. `full_page=False`
    shows the screen as the user sees it, with the call dock where it floats."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    # The page as it first appears: from the top, no focus ring left by the test.
    page.evaluate("() => { window.scrollTo(0, 0); document.activeElement?.blur(); }")
    original = page.viewport_size
    written: list[Path] = []
    for size in sizes:
        page.set_viewport_size(DESKTOP if size == "desktop" else PHONE)
        # Let the layout settle and any entrance animation finish.
        page.wait_for_timeout(250)
        path = SCREENSHOTS / f"{name}-{size}.png"
        page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        written.append(path)
    if original is not None:
        page.set_viewport_size(original)
    return written


# --- what the page showed of calls -------------------------------------------------------

_RECORD_STAGES = """
() => {
  window.__stages = [];
  const seen = (card) => {
    const entry = { id: card.dataset.callId, stage: card.dataset.stage,
                    text: card.innerText };
    const last = window.__stages[window.__stages.length - 1];
    if (!last || last.id !== entry.id || last.stage !== entry.stage) window.__stages.push(entry);
  };
  const dock = document.querySelector(".dock");
  const scan = () => dock.querySelectorAll("[data-call-id]").forEach(seen);
  new MutationObserver(scan).observe(dock, { childList: true, subtree: true, attributes: true });
  scan();
}
"""


class StageRecorder:
    """Records every (call, stage) the call dock shows, in order."""

    def __init__(self, page: Page) -> None:
        self.page = page
        page.evaluate(_RECORD_STAGES)

    def seen(self) -> list[dict[str, str]]:
        return list(self.page.evaluate("() => window.__stages"))

    def stages(self, call_id: str | None = None) -> list[str]:
        return [e["stage"] for e in self.seen() if call_id is None or e["id"] == call_id]


def iter_problems(pages: Pages) -> Iterator[str]:
    yield from pages.problems
