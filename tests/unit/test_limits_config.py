"""Every limit of issue 9 as a setting: safe defaults, refused nonsense, and wired by
the composition root to the place that enforces it."""

from __future__ import annotations

from pathlib import Path

import pytest

from teleoffice.app import Application
from teleoffice.calls.engine import CallLimits
from teleoffice.config import ConfigError, Settings, load_settings
from teleoffice.portal.request_limit import RequestLimits, RequestRateLimit
from teleoffice.server.presence_sip import PresenceAgent

LIMITS = {
    # setting: (default, a value it refuses)
    "max_message_size": (65535, 100),
    "max_contacts_per_account": (10, 0),
    "max_calls": (2000, 0),
    "max_calls_per_user": (100, 0),
    "max_outside_calls_per_user": (4, 0),
    "max_subscriptions_per_account": (200, 0),
    "max_subscriptions": (20_000, 10),
    "max_portal_connections_per_user": (64, 0),
    "api_rate_limit": (50.0, 0),
    "api_rate_burst": (500, 0),
}


def test_limits_have_safe_defaults_and_descriptions(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path)
    for name, (default, _) in LIMITS.items():
        assert getattr(settings, name) == default, name
        description = Settings.model_fields[name].description
        assert description, f"{name} has no description"
    assert settings.allow_trunk_to_trunk is False
    assert "toll fraud" in (Settings.model_fields["max_outside_calls_per_user"].description or "")


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_limits_refuse_values_that_cannot_work(name: str, tmp_path: Path) -> None:
    _, bad = LIMITS[name]
    with pytest.raises(ConfigError, match=name):
        load_settings(data_dir=tmp_path, **{name: bad})


def test_limits_come_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TELEOFFICE_MAX_OUTSIDE_CALLS_PER_USER", "2")
    monkeypatch.setenv("TELEOFFICE_ALLOW_TRUNK_TO_TRUNK", "true")
    settings = load_settings(data_dir=tmp_path)
    assert settings.max_outside_calls_per_user == 2
    assert settings.allow_trunk_to_trunk is True


def test_the_application_hands_each_limit_to_its_enforcer(tmp_path: Path) -> None:
    settings = load_settings(
        data_dir=tmp_path / "data",
        sip_port=0,
        http_port=0,
        prompt_dir=None,
        max_calls=50,
        max_calls_per_user=5,
        max_outside_calls_per_user=2,
        allow_trunk_to_trunk=True,
        max_subscriptions_per_account=7,
        max_subscriptions=300,
        max_portal_connections_per_user=3,
        api_rate_limit=9.0,
        api_rate_burst=90,
        max_contacts_per_account=4,
        max_message_size=4000,
    )
    app = Application(settings)
    try:
        assert app.calls.limits == CallLimits(50, 5, 2)
        assert app.calls.allow_trunk_to_trunk is True
        assert app.hub.max_per_user == 3
        presence = app.service.presence
        assert isinstance(presence, PresenceAgent)
        for notifier in (app.service.mwi, presence.presence, presence.dialogs):
            assert (notifier.limits.max_per_account, notifier.limits.max_total) == (7, 300)
        [rate] = [m for m in app.http.user_middleware if m.cls == RequestRateLimit]  # type: ignore[comparison-overlap]
        assert rate.kwargs["limits"] == RequestLimits(rate=9.0, burst=90)
        assert app.registrar.limits.max_contacts == 4
        assert app.sip.transport.max_message_size == 4000
    finally:
        app.engine.dispose()
