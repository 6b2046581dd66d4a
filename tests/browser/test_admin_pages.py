"""The administrator's pages in a real browser: creating a user who can then
sign in (validation errors beside their field), pages out of reach of other
users (in the page and at the API), editing a user, the live view and phone
list with real SIP peers (a phone registered by sipp, a call between two sipp
phones, a telecommuter returned to their desk from the page), and screenshots
of every admin page at desktop and phone sizes.

One module, so one server: its start-up is most of the time these tests take.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from teleoffice.bench.processes import free_port
from tests.browser.kit import (
    DESKTOP,
    HOME,
    PHONE,
    Pages,
    PortalSite,
    go,
    shoot,
    wait_live,
)

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]

CSRF = {"X-Teleoffice-CSRF": "1"}
# The live page refreshes every few seconds; a call set up by two sipps on
# shared CPUs may take a while.
LIVE_TIMEOUT = 20_000
NEW_USER = ("dora", "205", "Dora Diaz", "dora-browser-pw")


def api(page: Page, method: str, path: str, body: Any = None) -> Any:
    """A request with the page's own session (cookie and CSRF header)."""
    response = page.context.request.fetch(path, method=method, data=body, headers=CSRF)
    assert response.ok, f"{method} {path}: {response.status} {response.text()}"
    return response.json() if response.text() else None


def at_top(page: Page) -> None:
    """Screenshots start at the top of the page, with nothing focused."""
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")


def register(site: PortalSite, port: int, expires: str) -> None:
    """Register (or with "0" unregister) alice's desk phone 201 as a sipp on `port`."""
    scenario = "register" if expires != "0" else "unregister"
    run = site.sipp(
        scenario, port=port, service="201", auth=("201", "secret201"), keys={"expires": expires}
    ).start()
    assert run.wait(15).returncode == 0, run.log_tail()


# --- users -----------------------------------------------------------------------------


def test_admin_creates_a_user_who_can_then_sign_in(pages: Pages, site: PortalSite) -> None:
    username, extension, name, password = NEW_USER
    admin = pages.signed_in("admin")
    try:
        go(admin, "#/admin/users")
        admin.get_by_role("link", name="New user").click()
        expect(admin.get_by_role("heading", name="New user", level=1)).to_be_visible()
        form = admin.locator('form[data-role="new-user"]')
        # Focus starts in the form; Tab moves through it in order.
        expect(form.get_by_label("Username")).to_be_focused()
        form.get_by_label("Username").fill(username)
        form.get_by_label("Extension").fill("2")  # too short: the API says so
        form.get_by_label("Display name").fill(name)
        form.get_by_label("Portal password").fill("short")
        form.get_by_role("button", name="Create user").click()
        # Each problem beside its own field, and focus on the first of them.
        extension_error = form.locator('[data-error-for="extension"]')
        expect(extension_error).to_be_visible()
        expect(form.get_by_label("Extension")).to_have_attribute("aria-invalid", "true")
        expect(form.locator('[data-error-for="password"]')).to_have_text("At least 8 characters.")
        expect(form.get_by_label("Extension")).to_be_focused()
        at_top(admin)
        shoot(admin, "admin-new-user")

        # Taken extension: the store's 409 lands beside the extension.
        form.get_by_label("Extension").fill("201")
        form.get_by_label("Portal password").fill(password)
        form.get_by_role("button", name="Create user").click()
        expect(extension_error).to_contain_text("201")

        form.get_by_label("Extension").fill(extension)
        form.get_by_label("Telecommuter").check()
        form.get_by_role("button", name="Create user").click()
        created = admin.locator('[data-role="user-created"]')
        expect(created).to_contain_text(f"Created {name}, extension {extension}")
        # The generated SIP password is shown once.
        expect(created.locator('[data-role="secret"]')).to_have_text(re.compile(r"\S{12,}"))
        expect(form.locator(".field-error")).to_have_count(0)

        # The new user is in the list and can be found by the search.
        go(admin, "#/admin/users")
        admin.get_by_label("Search users").fill("dora")
        rows = admin.locator('[data-role="users"] tbody tr')
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(extension)
        expect(rows.first).to_contain_text("Telecommuter")

        # In another browser, the new user signs in with the form.
        other = pages.new()
        other.goto("/")
        other.get_by_label("Username").fill(username)
        other.get_by_label("Password").fill(password)
        other.get_by_role("button", name="Sign in").click()
        wait_live(other)
        expect(other.locator(".user-name")).to_have_text(name)
        # Not an administrator: no admin navigation.
        expect(other.get_by_role("link", name="Users")).to_have_count(0)
    finally:
        admin.context.request.delete(f"/api/admin/users/{username}", headers=CSRF)


def test_a_user_cannot_reach_admin_pages(pages: Pages, site: PortalSite) -> None:
    alice = pages.signed_in("alice")
    nav = alice.get_by_role("navigation")
    expect(nav.get_by_role("link", name="Home")).to_be_visible()
    for label in ("Live", "Users", "Phones", "Trunks", "Restrictions"):
        expect(nav.get_by_role("link", name=label)).to_have_count(0)
    for hash_ in ("#/admin/users", "#/admin/users/bob", "#/admin/live", "#/admin/trunks"):
        go(alice, hash_)
        expect(alice.locator("h1.page-title")).to_have_text("Not available")
        expect(alice.locator(".admin-table, .admin-form")).to_have_count(0)
    # The API itself refuses, whatever a page would do.
    statuses = alice.evaluate(
        """async () => {
          const paths = ["/api/admin/users", "/api/admin/users/bob", "/api/admin/live",
                         "/api/admin/phones", "/api/admin/trunks", "/api/admin/restrictions"];
          const out = [];
          for (const path of paths) out.push((await fetch(path)).status);
          const write = await fetch("/api/admin/users/bob", {
            method: "PATCH",
            headers: {"Content-Type": "application/json", "X-Teleoffice-CSRF": "1"},
            body: JSON.stringify({is_admin: true})});
          out.push(write.status);
          return out;
        }"""
    )
    assert statuses == [403] * 7
    # And someone not signed in gets 401.
    anonymous = pages.new()
    assert anonymous.context.request.get("/api/admin/users").status == 401


def test_edit_a_user(pages: Pages, site: PortalSite) -> None:
    admin = pages.signed_in("admin")
    go(admin, "#/admin/users/bob")
    expect(admin.locator(".user-name-big")).to_have_text("Bob Baker")
    telecommuter = admin.locator('form[data-role="telecommuter"]')
    try:
        telecommuter.get_by_label("May use telecommuter mode").check()
        patterns = telecommuter.get_by_label("Allowed telecommuter numbers")
        patterns.fill("80611\nnot a pattern")
        telecommuter.get_by_role("button", name="Save").click()
        expect(telecommuter.locator('[data-error-for="telecommuter_patterns"]')).to_be_visible()
        patterns.fill("061X\n0170.")
        telecommuter.get_by_role("button", name="Save").click()
        expect(admin.locator(".toast-success")).to_be_visible()
        expect(telecommuter.locator(".field-error")).to_have_count(0)
        shown = admin.context.request.get("/api/admin/users/bob").json()
        assert shown["telecommuter_allowed"] is True
        assert shown["telecommuter_patterns"] == ["061X", "0170."]

        # Voicemail PIN set from the keyboard alone.
        pin_form = admin.locator('form[data-role="pin"]')
        pin_form.get_by_label("New PIN").fill("12")
        pin_form.get_by_label("New PIN").press("Enter")
        expect(pin_form.locator('[data-error-for="pin"]')).to_be_visible()
        pin_form.get_by_label("New PIN").fill("2468")
        pin_form.get_by_label("New PIN").press("Enter")
        expect(admin.locator(".facts").filter(has_text="PIN")).to_contain_text("Set")
        at_top(admin)
        shoot(admin, "admin-user")
    finally:
        admin.context.request.patch(
            "/api/admin/users/bob",
            data={"telecommuter_allowed": False, "telecommuter_patterns": []},
            headers=CSRF,
        )
        admin.context.request.patch(
            "/api/admin/users/bob/voicemail", data={"pin": None}, headers=CSRF
        )


def test_admin_pages_at_both_sizes(pages: Pages, site: PortalSite) -> None:
    admin = pages.signed_in("admin", viewport=DESKTOP)
    nav = admin.get_by_role("navigation")
    for label in ("Live", "Users", "Phones", "Trunks", "Restrictions"):
        expect(nav.get_by_role("link", name=label)).to_be_visible()

    go(admin, "#/admin/users")
    expect(admin.locator('[data-role="users"] tbody tr')).to_have_count(3)
    at_top(admin)
    shoot(admin, "admin-users")

    go(admin, "#/admin/phones")
    expect(admin.locator('[data-role="phones"] tbody tr')).to_have_count(3)

    go(admin, "#/admin/trunks")
    expect(admin.locator('[data-role="trunks"] tbody tr')).to_have_count(2)
    at_top(admin)
    shoot(admin, "admin-trunks")
    admin.get_by_role("link", name="pstn").click()
    expect(admin.locator('form[data-role="trunk"]').get_by_label("Host")).to_have_value("127.0.0.1")
    at_top(admin)
    shoot(admin, "admin-trunk")

    go(admin, "#/admin/restrictions")
    expect(admin.locator('[data-role="restrictions"] tbody tr').first).to_be_visible()
    at_top(admin)
    shoot(admin, "admin-restrictions")
    admin.get_by_role("link", name="default").click()
    check = admin.locator('form[data-role="check"]')
    check.get_by_label("Number").fill("09001234567")
    check.get_by_role("button", name="Check").click()
    expect(admin.locator('[data-role="check-result"]')).to_contain_text("Barred")
    at_top(admin)
    shoot(admin, "admin-restriction")

    # On a phone-sized screen the tables are cards and nothing overflows.
    admin.set_viewport_size({"width": PHONE["width"], "height": PHONE["height"]})
    go(admin, "#/admin/users")
    width = admin.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], width


# --- the live view and phones ------------------------------------------------------------


def test_live_view_shows_a_registered_phone_and_a_call(pages: Pages, site: PortalSite) -> None:
    port = free_port()
    register(site, port, "3600")  # alice's desk phone is this sipp's port
    try:
        admin = pages.signed_in("admin")
        go(admin, "#/admin/live")
        phone = admin.locator('[data-role="live-phones"] [data-role="phone-201"]')
        expect(phone).to_contain_text(f"UDP 127.0.0.1:{port}")
        expect(phone).to_contain_text("teleoffice-e2e-sipp")
        expect(phone).to_contain_text("alice")
        expect(admin.locator('[data-role="live-calls-empty"]')).to_be_visible()
        expect(admin.locator('[data-role="tile-phones"] .tile-value')).to_have_text("1")

        # Bob's phone calls alice; her phone (sipp, on the registered port) answers.
        answer = site.sipp("call_uas_answer", port=port).start()
        caller = site.sipp(
            "browser_phone_caller",
            service="202",
            auth=("202", "secret202"),
            keys={"callee": "201"},
        ).start()
        row = admin.locator('[data-role="live-calls"] tbody tr')
        expect(row.locator('[data-state="connected"]')).to_be_visible(timeout=LIVE_TIMEOUT)
        expect(row).to_have_count(1)
        expect(row.locator('[data-label="From"]')).to_contain_text("Bob Baker")
        expect(row.locator('[data-label="To"]')).to_contain_text("Alice Archer")
        expect(row.locator('[data-label="Type"]')).to_have_text("Internal")
        expect(admin.locator('[data-role="tile-calls"] .tile-value')).to_have_text("1")
        at_top(admin)
        shoot(admin, "admin-live")

        # The phone list shows the registration too.
        go(admin, "#/admin/phones")
        registered = admin.locator('[data-role="phones"] [data-role="phone-201"]')
        expect(registered.locator('[data-state="registered"]')).to_be_visible()
        expect(registered).to_contain_text(f"127.0.0.1:{port}")
        admin.get_by_label("Registered only").check()
        expect(admin.locator('[data-role="phones"] tbody tr')).to_have_count(1)
        at_top(admin)
        shoot(admin, "admin-phones")

        # Alice hangs up (her own call, through the API): the call leaves the view.
        alice = pages.signed_in("alice")
        (call,) = api(alice, "GET", "/api/calls")
        api(alice, "DELETE", f"/api/calls/{call['id']}")
        assert caller.wait(15).returncode == 0, caller.log_tail()
        assert answer.wait(15).returncode == 0, answer.log_tail()
        go(admin, "#/admin/live")
        expect(admin.locator('[data-role="live-calls-empty"]')).to_be_visible(timeout=LIVE_TIMEOUT)
    finally:
        register(site, port, "0")


def test_live_view_shows_and_ends_telecommuter_mode(pages: Pages, site: PortalSite) -> None:
    alice = pages.signed_in("alice")
    api(alice, "PUT", "/api/me/telecommuter", {"number": HOME})
    try:
        admin = pages.signed_in("admin")
        go(admin, "#/admin/live")
        row = admin.locator('[data-role="live-telecommuters"] [data-role="telecommuter-alice"]')
        expect(row).to_contain_text(HOME, timeout=LIVE_TIMEOUT)
        expect(row).to_contain_text("Alice Archer")
        expect(row.locator('[data-label="Portal"]')).to_have_text("Online")
        expect(admin.locator('[data-role="tile-telecommuters"] .tile-value')).to_have_text("1")

        # Ending it asks first, then alice is back on her desk phone.
        row.get_by_role("button", name="End telecommuter mode").click()
        confirm = row.get_by_role("button", name="End telecommuter mode")
        expect(row.get_by_role("alert")).to_contain_text("End telecommuter mode for alice?")
        expect(confirm).to_be_focused()
        confirm.press("Enter")
        expect(admin.locator(".toast-success")).to_contain_text("alice")
        expect(admin.locator('[data-role="live-telecommuters-empty"]')).to_be_visible(
            timeout=LIVE_TIMEOUT
        )
        assert api(alice, "GET", "/api/me/telecommuter")["active"] is False
    finally:
        alice.context.request.delete("/api/me/telecommuter", headers=CSRF)
