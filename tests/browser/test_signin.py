"""Signing in and out of the portal in a real browser, and what a session
survives (a reload; the live connection dropping)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser.kit import PASSWORDS, USERS, Pages, PortalSite, api, shoot, wait_live

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e")]


def test_sign_in_errors_then_success_and_sign_out(pages: Pages, site: PortalSite) -> None:
    page = pages.new()
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    shoot(page, "signin")

    # Nothing typed: said so, and nothing is sent.
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Enter your username and password.")

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill("not-her-password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong username or password.")
    # The password field is emptied and focused for another try.
    expect(page.get_by_label("Password")).to_have_value("")
    expect(page.get_by_label("Password")).to_be_focused()

    page.get_by_label("Password").fill(PASSWORDS["alice"])
    page.get_by_role("button", name="Sign in").click()
    wait_live(page)
    expect(page.get_by_role("heading", name="Home", level=1)).to_be_visible()
    expect(page.locator(".user-name")).to_have_text(USERS["alice"][1])
    # The session cookie is HttpOnly: the page's scripts cannot read it.
    assert page.evaluate("document.cookie") == ""

    # A reload keeps the session (the cookie), and the live connection comes back.
    page.reload()
    wait_live(page)
    expect(page.get_by_role("heading", name="Home", level=1)).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="You have signed out.")).to_be_visible()
    # Signed out for real: the API refuses the old cookie.
    assert page.context.request.get("/api/me").status == 401


def test_too_many_attempts_are_shown_with_the_wait(pages: Pages, site: PortalSite) -> None:
    page = pages.new()
    page.goto("/")

    # Failed logins are limited per username. Most of them go straight to the
    # API, a few at a time (each costs a password hash): what matters here is
    # what the page shows once the limit is reached.
    def attempt(_: int) -> int:
        with httpx.Client(base_url=site.base_url, trust_env=False, timeout=30) as client:
            body = {"username": "nobody-at-all", "password": "guess"}
            return client.post("/api/login", json=body).status_code

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert set(pool.map(attempt, range(8))) == {401}
    page.get_by_label("Username").fill("nobody-at-all")
    alert = page.get_by_role("alert")
    for _ in range(4):
        page.get_by_label("Password").fill("guess")
        page.get_by_role("button", name="Sign in").click()
        expect(alert).to_have_text(re.compile(r"Wrong username or password|Too many"))
        if "Too many" in (alert.text_content() or ""):
            break
    expect(alert).to_have_text(re.compile(r"Too many sign-in attempts\. Try again in \d+ s\."))
    expect(page.get_by_role("button", name="Sign in")).to_be_disabled()


def test_changing_the_password_keeps_this_page_signed_in(pages: Pages) -> None:
    page = pages.signed_in("bob", path="/#/settings")
    other = pages.signed_in("bob")
    new_password = "bob-new-browser-pw"
    page.get_by_label("Current password").fill(PASSWORDS["bob"])
    page.get_by_label("New password").fill(new_password)
    page.get_by_role("button", name="Change password").click()
    expect(page.get_by_text("Your password is changed.")).to_be_visible()
    # Every other session of bob ends (his other browser is sent to sign in) ...
    expect(other.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(other.get_by_text("Your session has ended. Please sign in again.")).to_be_visible()
    # ... but this page has the new session: it stays, and its live connection
    # comes back on it.
    expect(page.locator(".conn")).to_have_text("Live")
    expect(page.get_by_role("heading", name="Settings", level=1)).to_be_visible()
    api(
        page,
        "PUT",
        "/api/me/password",
        {"current_password": new_password, "new_password": PASSWORDS["bob"]},
    )
