"""The browser portal's files as served (portal/ui.py) and checked statically:
security headers everywhere, no inline script or style, every module import
resolves, every text the user's pages ask for exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from teleoffice.portal.ui import CONTENT_SECURITY_POLICY, STATIC_DIR
from teleoffice.store import Sessions
from tests.unit.portal_kit import Portal, open_portal


@pytest.fixture
def portal(sessions: Sessions) -> Iterator[Portal]:
    yield from open_portal(sessions)


def test_the_shell_page_and_its_assets_are_served(portal: Portal) -> None:
    page = portal.client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/static/js/main.js"></script>' in page.text
    script = portal.client.get("/static/js/main.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    # Revalidated on every load, so a new version never mixes with an old one.
    assert script.headers["cache-control"] == "no-cache"
    assert portal.client.get("/static/css/app.css").headers["content-type"].startswith("text/css")
    assert portal.client.get("/static/nothing-here.js").status_code == 404
    # Nothing outside the folder.
    assert portal.client.get("/static/../ui.py").status_code == 404


@pytest.mark.parametrize("path", ["/", "/static/js/api.js", "/api/me", "/healthz", "/nowhere"])
def test_every_response_carries_the_security_headers(portal: Portal, path: str) -> None:
    headers = portal.client.get(path).headers
    assert headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"


def test_the_policy_allows_no_inline_code_and_no_other_origin() -> None:
    directives = {
        name: value
        for name, _, value in (part.partition(" ") for part in CONTENT_SECURITY_POLICY.split("; "))
    }
    assert directives["script-src"] == "'self'"
    assert directives["style-src"] == "'self'"
    assert directives["frame-ancestors"] == "'none'"
    assert "unsafe" not in CONTENT_SECURITY_POLICY
    assert "http" not in CONTENT_SECURITY_POLICY


class _Inline(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names:
            self.problems.append("inline <script>")
        if tag == "style":
            self.problems.append("<style> element")
        if "style" in names or any(name.startswith("on") for name in names):
            self.problems.append(f"inline style or handler on <{tag}>")


def test_the_shell_page_has_no_inline_script_or_style() -> None:
    parser = _Inline()
    parser.feed((STATIC_DIR / "index.html").read_text())
    assert parser.problems == []


def _modules() -> list[Path]:
    return sorted(STATIC_DIR.rglob("*.js"))


_IMPORT = re.compile(r"""^\s*(?:import|export)\s[^;]*?\sfrom\s+["']([^"']+)["']""", re.M)


def test_every_module_import_resolves() -> None:
    missing = [
        f"{module.relative_to(STATIC_DIR)} imports {target}"
        for module in _modules()
        for target in _IMPORT.findall(module.read_text())
        if not (module.parent / target).resolve().is_file()
    ]
    assert missing == []


def test_no_module_writes_html_from_strings() -> None:
    # Data reaches the page as text nodes only (dom.js); innerHTML would let a
    # caller's name or a status message inject markup.
    offenders = [
        str(module.relative_to(STATIC_DIR))
        for module in _modules()
        if re.search(
            r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", module.read_text()
        )
    ]
    assert offenders == []


def _user_texts() -> set[str]:
    source = (STATIC_DIR / "i18n" / "en" / "user.js").read_text()
    return set(re.findall(r'^\s*"([^"]+)":', source, re.M))


def test_every_text_the_user_pages_ask_for_exists() -> None:
    known = _user_texts()
    used: set[str] = set()
    for module in _modules():
        if "admin" in module.relative_to(STATIC_DIR).parts:
            continue
        used |= set(re.findall(r"""\bt\(\s*"([a-z_.-]+)"(?:\s*[,)])""", module.read_text()))
        for key in re.findall(r"""\btn\(\s*"([a-z_.-]+)\"""", module.read_text()):
            used |= {f"{key}.one", f"{key}.other"}
    assert used, "no t() calls found: the pattern is out of date"
    assert sorted(used - known) == []


def test_texts_for_every_call_stage_and_failure_exist() -> None:
    known = _user_texts()
    calls_js = (STATIC_DIR / "js" / "calls.js").read_text()
    stages = {
        "calling_you", "connecting", "ringing", "connected", "held", "incoming", "waiting",
        "voicemail",
    }  # fmt: skip
    reasons = set(re.findall(r'return "([a-z_-]+)";', calls_js)) - stages - {"calling", "ended"}
    reasons |= set(re.findall(r'"([a-z-]+)"', calls_js.split("const known = [")[1].split("]")[0]))
    reasons |= {"voicemail", "missed"}  # why an incoming call was missed
    assert {"busy", "callback_unanswered", "cancelled", "failed"} <= reasons
    missing = [f"calls.why.{r}" for r in reasons if f"calls.why.{r}" not in known]
    missing += [f"calls.announce.{s}" for s in stages if f"calls.announce.{s}" not in known]
    assert missing == []
