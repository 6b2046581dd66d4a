"""A small demo directory for `teleoffice serve --demo`.

The passwords are printed and documented, so the demo must only ever fill an
empty database: `seed` refuses to touch a directory that already has users.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from teleoffice.config import Settings
from teleoffice.store.repos import Sessions, UserRepo
from teleoffice.store.telecommuter import TelecommuterRepo


@dataclass(frozen=True, slots=True)
class DemoUser:
    username: str
    display_name: str
    extension: str
    password: str  # portal login
    sip_password: str  # base phone
    is_admin: bool = False
    login_code: str = ""  # hot desking: *11<extension>*<code> from any phone


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "Administrator", "200", "admin", "sip200", is_admin=True),
    DemoUser("alice", "Alice Adams", "201", "alice", "sip201", login_code="2011"),
    DemoUser("bob", "Bob Brown", "202", "bob", "sip202", login_code="2022"),
    DemoUser("carol", "Carol Clark", "203", "carol", "sip203", login_code="2033"),
)


def _display_host(host: str) -> str:
    """A host a person can type: wildcard binds are reachable on loopback, and IPv6
    literals need brackets inside URLs."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if address.is_unspecified:
        return "127.0.0.1" if address.version == 4 else "[::1]"
    return f"[{host}]" if address.version == 6 else host


def seed(session_factory: Sessions, settings: Settings) -> list[str]:
    """Create the demo users when the users table is empty.

    Returns the lines to print (how to log in to the portal and register a phone),
    or an empty list when the database already had users and nothing was done.
    """
    repo = UserRepo(session_factory, realm=settings.realm)
    if repo.count() > 0:
        return []
    codes = TelecommuterRepo(session_factory)
    for demo in DEMO_USERS:
        repo.add_user(
            demo.username,
            extension=demo.extension,
            sip_password=demo.sip_password,
            display_name=demo.display_name,
            password=demo.password,
            is_admin=demo.is_admin,
            # The demo exists to show telecommuter mode, so people may try it at once.
            telecommuter_allowed=not demo.is_admin,
            voicemail_enabled=not demo.is_admin,
        )
        if demo.login_code:
            codes.set_login_code(demo.username, demo.login_code)
    scheme = "https" if settings.portal_tls and settings.tls_cert_file is not None else "http"
    base = f"{scheme}://{_display_host(settings.http_host)}:{settings.http_port}"
    health = f"{base}/healthz"
    registrar = f"{_display_host(settings.domain)}:{settings.sip_port}"
    lines = [
        "Demo directory created (these passwords are public: do not expose this server).",
        f"Portal: open {base}/ in a browser and sign in as (the same logins work for the",
        f"API: POST {base}/api/login; API reference at {base}/docs):",
    ]
    lines += [
        f"  {d.username:<6} / {d.password:<6}  {d.display_name}, extension {d.extension}"
        + (" (administrator)" if d.is_admin else "")
        for d in DEMO_USERS
    ]
    lines += [
        f"Phones: register to {registrar} (UDP or TCP; TLS on port {settings.sip_tls_port} "
        f"when enabled), realm {settings.realm!r}, with",
    ]
    lines += [
        f"  user {d.extension}  password {d.sip_password}  ({d.username})" for d in DEMO_USERS
    ]
    lines.append("Then dial an extension, e.g. 202 from alice's phone to reach bob.")
    lines.append(
        f"Voicemail: unanswered calls reach the user's mailbox; dial {settings.voicemail_number} "
        "for your own (keys as in Asterisk: 1 play, 6 next, 7 delete, # goodbye)."
    )
    codes_text = ", ".join(f"{d.username} {d.login_code}" for d in DEMO_USERS if d.login_code)
    lines.append(
        f"Hot desking: dial *11<extension>*<login code> on any phone ({codes_text}); *12 logs out."
    )
    lines.append(f"Status: {health} (and /metrics for Prometheus).")
    return lines
