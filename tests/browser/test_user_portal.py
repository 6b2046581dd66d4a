"""The user's side of the portal in a real browser, against a real teleoffice
with sipp playing the telecommuter's home line, outside callers, colleagues'
phones and the destinations of calls (DESIGN.md T1-T9, T12).

Alice (201) works from her home line 0611, reached through the trunk "home"
(prefix 8: she types 80611); the trunk "pstn" (prefix 9) is the outside world.
The tests use the page as a person would (labels, buttons, what is shown) and
check with the API or what sipp received that it really happened.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Locator, Page, WebSocketRoute, expect

from tests.browser.kit import (
    DID,
    HOME,
    PASSWORDS,
    Pages,
    PortalSite,
    StageRecorder,
    api,
    go,
    shoot,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

DEST = "5551234"  # an outside number alice calls
CALLER = "5557777"  # an outside caller
CALL_TIMEOUT = 15_000  # ms: a call's stages take seconds, on a busy machine more


def card(page: Page, stage: str | None = None) -> Locator:
    """The call dock's card (of a call at `stage`)."""
    selector = ".dock [data-call-id]" + (f'[data-stage="{stage}"]' if stage else "")
    return page.locator(selector)


def telecommuting(page: Page) -> None:
    view = api(page, "PUT", "/api/me/telecommuter", {"number": HOME})
    assert view["active"] is True, view


@pytest.fixture
def alice(pages: Pages) -> Iterator[Page]:
    """Alice's page; whatever a test changed of her state is undone afterwards."""
    page = pages.signed_in("alice")
    yield page
    if api(page, "GET", "/api/me/telecommuter")["active"]:
        api(page, "DELETE", "/api/me/telecommuter")
    for call in api(page, "GET", "/api/calls"):
        page.context.request.delete(f"/api/calls/{call['id']}", headers={"X-Teleoffice-CSRF": "1"})


# --- T1-T3, T7: telecommuter mode ------------------------------------------------------------


def test_telecommuter_mode_is_started_and_stopped_from_the_home_page(
    pages: Pages, alice: Page
) -> None:
    other_tab = pages.signed_in("alice")
    where = alice.locator('[data-role="location"]')
    expect(where).to_have_attribute("data-kind", "phone")
    expect(where).to_contain_text("On your desk phone (201)")
    summary = alice.locator('[data-role="handling-summary"]')
    expect(summary).to_contain_text("Calls ring on your desk phone 201.")
    expect(summary).to_contain_text("If you do not answer within 15 seconds")

    # A number her restrictions bar: a clear refusal, and nothing changes.
    number = alice.get_by_label("Number to work from")
    number.fill("9004930123456")
    alice.get_by_role("button", name="Start telecommuter mode").click()
    expect(alice.locator('[data-role="tc-error"]')).to_contain_text(
        "Telecommuter mode could not start"
    )
    expect(number).to_be_focused()
    assert api(alice, "GET", "/api/me/location")["kind"] == "phone"

    number.fill(HOME)
    alice.get_by_label("Remember this number").check()
    alice.get_by_role("button", name="Start telecommuter mode").click()
    expect(where).to_have_attribute("data-kind", "telecommuter")
    expect(where).to_contain_text(f"On your telecommuter number {HOME}")
    # The button that did it is gone: keyboard focus lands on the news.
    expect(where).to_be_focused()
    expect(summary).to_contain_text(f"Calls ring at your telecommuter number {HOME}")
    location = api(alice, "GET", "/api/me/location")
    assert (location["kind"], location["number"], location["phone"]) == ("telecommuter", HOME, None)
    # Her other tab follows at once (location.changed on its own connection).
    expect(other_tab.locator('[data-role="location"]')).to_have_attribute(
        "data-kind", "telecommuter"
    )
    shoot(alice, "home-telecommuter")

    alice.get_by_role("button", name="Stop telecommuter mode").click()
    expect(where).to_have_attribute("data-kind", "phone")
    expect(where).to_contain_text("On your desk phone (201)")
    expect(other_tab.locator('[data-role="location"]')).to_have_attribute("data-kind", "phone")
    # The number was remembered: one click puts it back in the field.
    alice.locator(f'[data-role="saved-number"][data-number="{HOME}"]').click()
    expect(number).to_have_value(HOME)
    assert [s["number"] for s in api(alice, "GET", "/api/me/saved-numbers")] == [HOME]
    api(alice, "DELETE", f"/api/me/saved-numbers/{HOME}", expect=204)


def test_a_user_not_allowed_to_telecommute_is_told_so(pages: Pages) -> None:
    bob = pages.signed_in("bob")
    expect(bob.locator('[data-role="tc-not-allowed"]')).to_have_text(
        re.compile("not enabled for you")
    )
    expect(bob.get_by_role("button", name="Start telecommuter mode")).to_have_count(0)


def test_hot_desking_and_logging_out_from_the_portal(pages: Pages, alice: Page) -> None:
    bob = pages.signed_in("bob")
    where = alice.locator('[data-role="location"]')
    summary = alice.locator('[data-role="handling-summary"]')
    try:
        # T10: alice sits at bob's desk; bob is logged out of his phone.
        alice.get_by_label("Log in on the phone").fill("202")
        alice.get_by_role("button", name="Log in there").click()
        expect(where).to_contain_text("On the hot desk phone 202")
        expect(summary).to_contain_text("Calls ring on the phone 202, where you are logged in.")
        bobs = bob.locator('[data-role="location"]')
        expect(bobs).to_have_attribute("data-kind", "logged-out")
        expect(bob.locator('[data-role="handling-summary"]')).to_contain_text(
            "You are logged out, so your calls go to your voicemail."
        )

        alice.get_by_role("button", name="Log out of this phone").click()
        expect(where).to_have_attribute("data-kind", "logged-out")
        expect(where).to_contain_text("Nowhere: you are logged out")
        alice.get_by_role("button", name="Log in on my desk phone (201)").click()
        expect(where).to_contain_text("On your desk phone (201)")
    finally:
        api(bob, "PUT", "/api/me/location", {"phone": "202"})
        api(alice, "PUT", "/api/me/location", {"phone": "201"})


# --- T8: the live connection -----------------------------------------------------------------


def test_a_dropped_connection_comes_back_by_itself_with_the_current_state(
    pages: Pages,
) -> None:
    page = pages.new()
    links: list[WebSocketRoute] = []
    allowed = [True]

    def relay(route: WebSocketRoute) -> None:
        # The page's WebSocket goes through the test, which can cut it (a
        # network change, a laptop going to sleep) and refuse reconnections.
        if not allowed[0]:
            route.close(code=1011, reason="network down")
            return
        route.connect_to_server()
        links.append(route)

    page.route_web_socket(re.compile(r"/api/events$"), relay)
    assert page.context.request.post(
        "/api/login", data={"username": "alice", "password": PASSWORDS["alice"]}
    ).ok
    page.goto("/")
    status = page.locator(".conn")
    expect(status).to_have_text("Live")
    where = page.locator('[data-role="location"]')
    expect(where).to_have_attribute("data-kind", "phone")

    allowed[0] = False
    links.pop().close(code=1011, reason="network down")
    expect(status).to_have_text("Offline: reconnecting")
    # Meanwhile her calls move (from another device): the page cannot know yet.
    telecommuting(page)
    expect(where).to_have_attribute("data-kind", "phone")

    allowed[0] = True
    # No reload: the page reconnects on its own and shows the state at once.
    expect(status).to_have_text("Live", timeout=CALL_TIMEOUT)
    expect(where).to_have_attribute("data-kind", "telecommuter")
    expect(where).to_contain_text(HOME)
    api(page, "DELETE", "/api/me/telecommuter")
    expect(where).to_have_attribute("data-kind", "phone")


# --- T4: calls placed from the portal ----------------------------------------------------------


def test_click_to_dial_shows_each_stage_of_the_call(site: PortalSite, alice: Page) -> None:
    telecommuting(alice)
    home = site.sipp("browser_home_ring_answer", port=site.home_port).start()
    dest = site.sipp("tc_dest_ring_answer", port=site.pstn_port, service=DEST).start()
    go(alice, "#/dial")
    recorder = StageRecorder(alice)
    alice.get_by_label("Number or name").fill("9" + DEST)
    alice.locator('[data-action="dial-submit"]').click()

    # The home line rings first: the page says the system is calling her.
    calling = card(alice, "calling_you")
    expect(calling).to_be_visible()
    expect(calling.locator('[aria-current="step"]')).to_have_text("Calling you")
    shoot(alice, "call-calling-you", sizes=("desktop",), full_page=False)
    connected = card(alice, "connected")
    expect(connected).to_be_visible(timeout=CALL_TIMEOUT)
    expect(connected.locator('[data-role="party-name"]')).to_have_text(DEST)
    expect(connected.locator('[data-role="timer"]')).to_have_text(re.compile(r"^0:0\d$"))
    expect(alice.locator('[data-role="call-announcer"]')).to_have_text(f"Connected to {DEST}.")
    call_id = connected.get_attribute("data-call-id")
    assert call_id
    shoot(alice, "call-connected", full_page=False)

    connected.get_by_role("button", name="Hang up").click()
    expect(card(alice, "ended")).to_be_visible()
    assert home.wait(15).returncode == 0, home.log_tail()
    assert dest.wait(15).returncode == 0, dest.log_tail()
    # Every stage was shown, in order: her phone, then the destination.
    assert recorder.stages(call_id) == [
        "calling_you",
        "connecting",
        "ringing",
        "connected",
        "ended",
    ], recorder.seen()
    entry = next(e for e in api(alice, "GET", "/api/me/call-log") if e["id"] == call_id)
    # (The log keeps the number as she dialled it, trunk prefix included.)
    assert (entry["to"]["number"], entry["outcome"]) == ("9" + DEST, "answered"), entry


def test_a_busy_destination_is_shown_as_busy(site: PortalSite, alice: Page) -> None:
    telecommuting(alice)
    home = site.sipp("tc_home_answer", port=site.home_port).start()
    dest = site.sipp("call_uas_busy", port=site.pstn_port, service=DEST).start()
    go(alice, "#/dial")
    # This time on the dial pad, as on a phone.
    for digit in "9" + DEST:
        alice.get_by_role("button", name=f"Key {digit}", exact=True).click()
    expect(alice.get_by_label("Number or name")).to_have_value("9" + DEST)
    alice.get_by_label("Number or name").press("Enter")

    failed = card(alice, "failed")
    expect(failed).to_be_visible(timeout=CALL_TIMEOUT)
    expect(failed.locator('[data-role="reason"]')).to_have_text("The line is busy.")
    expect(alice.locator('[data-role="call-announcer"]')).to_have_text("The line is busy.")
    assert dest.wait(15).returncode == 0, dest.log_tail()
    # She hears busy tone on her line until she (or the system) hangs up.
    failed.get_by_role("button", name="Hang up").click()
    assert home.wait(15).returncode == 0, home.log_tail()
    failed.get_by_role("button", name="Dismiss").click()
    expect(card(alice)).to_have_count(0)


# --- T5, T6: calls to her ------------------------------------------------------------------------


def test_an_incoming_call_pops_up_and_is_hung_up_from_the_page(
    site: PortalSite, alice: Page
) -> None:
    telecommuting(alice)
    home = site.sipp("browser_home_ring_answer", port=site.home_port).start()
    caller = site.sipp(
        "browser_trunk_caller", port=site.pstn_port, service=DID, keys={"caller": CALLER}
    ).start()

    incoming = card(alice, "incoming")
    expect(incoming).to_be_visible(timeout=CALL_TIMEOUT)
    # Screen readers hear it at once (the dock's assertive live region).
    expect(alice.locator('[data-role="call-announcer"]')).to_have_text(
        f"Incoming call from {CALLER}."
    )
    expect(incoming.locator('[data-role="party-name"]')).to_have_text(CALLER)
    # T5: the number the caller dialled (her outside number), not only her extension.
    expect(incoming.locator('[data-role="called-number"]')).to_have_text(f"Called {DID}")
    shoot(alice, "call-incoming", full_page=False)

    connected = card(alice, "connected")
    expect(connected).to_be_visible(timeout=CALL_TIMEOUT)
    connected.get_by_role("button", name="Hang up").click()
    expect(card(alice, "ended")).to_be_visible()
    assert caller.wait(15).returncode == 0, caller.log_tail()
    assert home.wait(15).returncode == 0, home.log_tail()


def test_call_waiting_answer_holds_the_first_call(site: PortalSite, alice: Page) -> None:
    telecommuting(alice)
    home = site.sipp("tc_home_answer", port=site.home_port).start()
    first = site.sipp(
        "browser_trunk_caller", port=site.pstn_port, service=DID, keys={"caller": CALLER}
    ).start()
    expect(card(alice, "connected")).to_be_visible(timeout=CALL_TIMEOUT)

    # Bob calls her extension while she is on the line.
    second = site.sipp(
        "browser_phone_caller", service="202", auth=("202", "secret202"), keys={"callee": "201"}
    ).start()
    waiting = card(alice, "waiting")
    expect(waiting).to_be_visible(timeout=CALL_TIMEOUT)
    expect(waiting.locator('[data-role="party-name"]')).to_have_text("Bob Baker")
    expect(waiting.locator('[data-role="party-number"]')).to_have_text("202")
    expect(waiting.get_by_role("button", name="Reject")).to_be_visible()
    shoot(alice, "call-waiting", full_page=False)

    waiting.get_by_role("button", name="Answer").click()
    held = card(alice, "held")
    expect(held).to_be_visible()
    expect(held.locator('[data-role="party-name"]')).to_have_text(CALLER)
    bob = card(alice, "connected")
    expect(bob.locator('[data-role="party-name"]')).to_have_text("Bob Baker")
    calls = {c["from"]["number"]: c for c in api(alice, "GET", "/api/calls")}
    assert (calls[CALLER]["held"], calls["202"]["held"]) == (True, False), calls

    bob.get_by_role("button", name="Hang up").click()
    assert second.wait(15).returncode == 0, second.log_tail()
    held.get_by_role("button", name="Resume").click()
    back = card(alice, "connected")
    expect(back.locator('[data-role="party-name"]')).to_have_text(CALLER)
    back.get_by_role("button", name="Hang up").click()
    assert first.wait(15).returncode == 0, first.log_tail()
    assert home.wait(15).returncode == 0, home.log_tail()


# --- T9: presence ------------------------------------------------------------------------------


def test_a_presence_change_shows_in_another_browser(pages: Pages, alice: Page) -> None:
    bob = pages.signed_in("bob", path="/#/directory")
    row = bob.locator('[data-role="person"][data-username="alice"]')
    expect(row.locator('[data-role="person-presence"]')).to_have_text("Available")

    note = "Back at 3 pm · à tout à l'heure"
    alice.get_by_label("Status", exact=True).select_option("away")
    alice.get_by_label("Status message").fill(note)
    alice.get_by_role("button", name="Update status").click()
    expect(alice.locator('[data-role="my-presence"]')).to_contain_text("Away")

    # Bob's directory changes by itself (presence.changed on his connection).
    expect(row.locator('[data-role="person-presence"]')).to_have_text("Away")
    expect(row.locator('[data-role="person-note"]')).to_have_text(note)
    shoot(bob, "directory")

    api(alice, "PUT", "/api/me/presence", {"state": "available"})
    expect(row.locator('[data-role="person-presence"]')).to_have_text("Available")
    expect(row.locator('[data-role="person-note"]')).to_have_count(0)


# --- T12: voicemail; and nobody else's data ----------------------------------------------------


def test_voicemail_plays_downloads_and_deletes(pages: Pages, site: PortalSite, alice: Page) -> None:
    bob = pages.signed_in("bob")
    # Do not disturb sends alice's call straight to bob's mailbox.
    api(bob, "PATCH", "/api/me/settings", {"dnd": True})
    try:
        deposit = site.with_pcaps(
            site.sipp(
                "vm_deposit_speech",
                service="201",
                auth=("201", "secret201"),
                keys={"callee": "202"},
            )
        )
        assert deposit.start().wait(40).returncode == 0, deposit.log_tail()
    finally:
        api(bob, "PATCH", "/api/me/settings", {"dnd": False})

    badge = bob.locator('[data-badge="voicemail"]')
    expect(badge).to_have_text("1")
    go(bob, "#/voicemail")
    message = bob.locator('[data-role="voicemail-message"]')
    expect(message).to_have_count(1)
    expect(message).to_contain_text("Alice Archer")
    expect(message.locator(".tag-new")).to_have_text("New")
    message_id = message.get_attribute("data-id")
    shoot(bob, "voicemail")

    # The player really loads the recording (metadata: about 7 s of speech) and plays it.
    audio = message.locator("audio")
    audio.evaluate(
        "a => a.readyState >= 1 || new Promise(r => a.addEventListener('loadedmetadata', r))"
    )
    duration = audio.evaluate("a => a.duration")
    assert 5.0 <= duration <= 10.0, duration
    audio.evaluate("a => a.play()")
    bob.wait_for_function(
        "a => a.currentTime > 0.3 && !a.paused", arg=audio.element_handle(), timeout=10_000
    )
    audio.evaluate("a => a.pause()")
    # Playing marks it heard, as listening by phone does.
    expect(badge).to_be_hidden()
    assert api(bob, "GET", "/api/me/voicemail")["messages"][0]["heard"] is True

    href = message.get_by_role("link", name="Download").get_attribute("href")
    download = bob.context.request.get(str(href))
    assert download.status == 200
    assert download.headers["content-type"] == "audio/wav"
    assert download.body()[:4] == b"RIFF"

    # Alice cannot reach bob's message, by its address or through the API.
    assert alice.context.request.get(str(href)).status == 404
    refused = alice.context.request.delete(
        f"/api/me/voicemail/{message_id}", headers={"X-Teleoffice-CSRF": "1"}
    )
    assert refused.status == 404

    message.get_by_role("button", name="Delete").click()
    message.get_by_role("button", name="Delete for good").click()
    expect(bob.get_by_text("Your mailbox is empty.")).to_be_visible()
    assert api(bob, "GET", "/api/me/voicemail")["messages"] == []


def test_the_session_cookie_needs_the_pages_own_header_to_change_anything(
    alice: Page,
) -> None:
    # A write with the session cookie but without the header the portal's own
    # script sends (what a forged cross-site form could do) is refused.
    status, code = alice.evaluate(
        """async () => {
            const r = await fetch('/api/me/settings', {method: 'PATCH',
                headers: {'Content-Type': 'application/json'}, body: '{"dnd": true}'});
            return [r.status, (await r.json()).error.code];
        }"""
    )
    assert (status, code) == (403, "csrf")
    assert api(alice, "GET", "/api/me")["dnd"] is False
    # Every response carries the security headers, the API's included.
    for path in ("/", "/api/me", "/static/js/main.js"):
        headers = alice.context.request.get(path).headers
        assert "script-src 'self'" in headers["content-security-policy"], path
        assert headers["x-content-type-options"] == "nosniff", path
        assert headers["x-frame-options"] == "DENY", path


def test_screenshots_of_the_main_pages(pages: Pages) -> None:
    # Last in the module: the call log has the calls of the tests above.
    page = pages.signed_in("alice")
    expect(page.locator('[data-role="handling-summary"]')).to_be_visible()
    shoot(page, "home")
    go(page, "#/calls")
    expect(page.locator('[data-role="log-row"]').first).to_be_visible()
    shoot(page, "call-log")
    go(page, "#/dial")
    page.get_by_label("Number or name").fill("b")
    expect(page.locator('[data-role="search-result"]').first).to_be_visible()
    shoot(page, "dial")
    go(page, "#/settings")
    expect(page.locator('[data-role="settings-form"]')).to_be_visible()
    shoot(page, "settings")
    # Keyboard users see where they are: the focused control has a visible ring.
    page.get_by_label("Call waiting").focus()
    page.keyboard.press("Tab")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid", outline
