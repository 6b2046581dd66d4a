"""Fixtures of the browser tests: chromium, one teleoffice per module, pages.

- `browser` (session): Debian's chromium, headless, driven by Playwright.
- `site` (module): a running teleoffice seeded with alice (201), bob (202) and
  an administrator, the trunks "home" and "pstn" (see kit.PortalSite). A
  module may define `site_setup` (a list of extra CLI commands) to change the
  seed. Tests of a module share the server, so each leaves it as it found it.
- `pages` (test): new browser contexts, signed in or not; closed after the
  test, which fails if any page logged a script error or a CSP violation.
  Any sipp a test started through `site.sipp` is stopped after it too.

When a test fails, the tail of the server's log is added to the report.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Sequence

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright

from tests.browser.kit import Pages, PortalSite, SiteSeed, launch_chromium


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        site = getattr(item, "funcargs", {}).get("site")
        if isinstance(site, PortalSite):
            report.sections.append((f"{site.server.log_name}: log tail", site.server.log_tail()))
            for run in site.sipps:
                report.sections.append((f"{run.log_name}: log tail", run.log_tail(30)))
    return report


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = launch_chromium(playwright)
    try:
        yield chromium
    finally:
        chromium.close()


@pytest.fixture(scope="session")
def site_seed(tmp_path_factory: pytest.TempPathFactory) -> SiteSeed:
    """The browser tests' users and trunks, set up once and copied per module."""
    return SiteSeed.create(tmp_path_factory.mktemp("browser-seed"))


@pytest.fixture(scope="module")
def site_setup() -> Sequence[Sequence[str]]:
    """Extra CLI commands for the module's server; override in a module."""
    return ()


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    site_seed: SiteSeed,
    site_setup: Sequence[Sequence[str]],
) -> Iterator[PortalSite]:
    site = PortalSite.start(tmp_path_factory.mktemp("browser-site"), site_seed, site_setup)
    try:
        yield site
    finally:
        found = site.stop()
    assert not found, "traceback in the server log:\n" + found[0]


@pytest.fixture
def pages(browser: Browser, site: PortalSite) -> Iterator[Pages]:
    pool = Pages(browser, site)
    try:
        yield pool
    finally:
        pool.close()
        site.stop_sipps()
    assert not pool.problems, "\n".join(pool.problems)
