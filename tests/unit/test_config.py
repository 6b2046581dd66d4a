"""Settings: sources and their priority, validation, and the nonce key file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import SecretBytes

from teleoffice.config import (
    ConfigError,
    Settings,
    load_or_create_secret,
    load_settings,
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The default data directory is relative, and the developer's shell may have
    # TELEOFFICE_* variables set: neither may leak into these tests.
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.upper().startswith("TELEOFFICE_"):
            monkeypatch.delenv(name)


def test_defaults_are_local_and_consistent(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.data_dir == Path("data")
    assert settings.sip_host == "127.0.0.1"
    assert settings.http_host == "127.0.0.1"
    assert (settings.sip_port, settings.http_port) == (5060, 8080)
    assert settings.domain == settings.sip_host
    assert settings.realm == "teleoffice"
    assert settings.min_expires <= settings.default_expires <= settings.max_expires
    assert settings.db_url == f"sqlite:///{(tmp_path / 'data' / 'teleoffice.db').as_posix()}"
    assert settings.config is None


def test_database_url_and_domain_can_be_set() -> None:
    settings = load_settings(database_url="postgresql://u:p@db/tele", domain="pbx.example")
    assert settings.db_url == "postgresql://u:p@db/tele"
    assert settings.domain == "pbx.example"


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEOFFICE_SIP_PORT", "5070")
    monkeypatch.setenv("TELEOFFICE_LOG_LEVEL", "debug")
    monkeypatch.setenv("TELEOFFICE_SIP_HOST", "192.0.2.1")
    settings = load_settings()
    assert settings.sip_port == 5070
    assert settings.log_level == "DEBUG"
    assert settings.domain == "192.0.2.1"


def test_keyword_arguments_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEOFFICE_SIP_PORT", "5070")
    assert load_settings(sip_port=5080).sip_port == 5080
    # None means "not given" (an unset CLI option) and must not hide the env value.
    assert load_settings(sip_port=None).sip_port == 5070


def test_toml_in_data_dir_is_read_and_env_wins(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "site"
    data.mkdir()
    (data / "teleoffice.toml").write_text('realm = "acme"\nsip_port = 5070\nhttp_port = 8090\n')
    monkeypatch.setenv("TELEOFFICE_HTTP_PORT", "8100")
    settings = load_settings(data_dir=data)
    assert settings.realm == "acme"
    assert settings.sip_port == 5070
    assert settings.http_port == 8100
    assert settings.config == data / "teleoffice.toml"


def test_data_dir_from_environment_locates_toml(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data = tmp_path / "elsewhere"
    data.mkdir()
    (data / "teleoffice.toml").write_text('realm = "from-env-dir"\n')
    monkeypatch.setenv("TELEOFFICE_DATA_DIR", str(data))
    assert load_settings().realm == "from-env-dir"


def test_explicit_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "pbx.toml"
    path.write_text(f'data_dir = "{(tmp_path / "d").as_posix()}"\nmax_contacts_per_account = 3\n')
    monkeypatch.setenv("TELEOFFICE_CONFIG", str(path))
    settings = load_settings()
    assert settings.max_contacts_per_account == 3
    assert settings.data_dir == tmp_path / "d"
    assert settings.config == path
    # The keyword wins over the environment variable.
    other = tmp_path / "other.toml"
    other.write_text("max_contacts_per_account = 4\n")
    assert load_settings(config=other).max_contacts_per_account == 4


def test_missing_explicit_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(config=tmp_path / "nope.toml")


def test_unknown_toml_key_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("sip_prot = 5070\n")
    with pytest.raises(ConfigError, match="sip_prot"):
        load_settings(config=path)


def test_broken_toml_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("sip_port = \n")
    with pytest.raises(ConfigError, match="cannot read configuration"):
        load_settings(config=path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sip_port": 70000}, "sip_port"),
        ({"http_port": -1}, "http_port"),
        ({"min_expires": 7200}, "min_expires .* greater than max_expires"),
        ({"default_expires": 30}, "default_expires"),
        ({"min_expires": 0}, "min_expires"),
        ({"max_contacts_per_account": 0}, "max_contacts_per_account"),
        ({"nonce_ttl": 0}, "nonce_ttl"),
        ({"tcp_idle_timeout": -5}, "tcp_idle_timeout"),
        ({"max_message_size": 100}, "max_message_size"),
        ({"realm": 'a"b'}, "realm"),
        ({"realm": ""}, "realm"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"secret_key": b"short"}, "secret_key"),
        ({"http_port": 5060}, "both want TCP port 5060"),
        ({"http_port": 5060, "http_host": "0.0.0.0"}, "both want TCP port 5060"),
    ],
)
def test_impossible_configuration_is_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings(**overrides)


def test_same_port_on_different_addresses_is_allowed() -> None:
    settings = load_settings(sip_host="127.0.0.1", http_host="127.0.0.2", http_port=5060)
    assert settings.http_port == settings.sip_port


def test_port_zero_means_any_port() -> None:
    settings = load_settings(sip_port=0, http_port=0)
    assert settings.sip_port == settings.http_port == 0


def test_secret_is_created_once_with_private_mode(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "new")
    key = load_or_create_secret(settings)
    assert len(key) == 32
    path = tmp_path / "new" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_secret(settings) == key
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary left


def test_explicit_secret_wins_and_writes_nothing(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, secret_key=SecretBytes(b"k" * 32))
    assert load_or_create_secret(settings) == b"k" * 32
    assert not (tmp_path / "secret.key").exists()
    assert "kkkk" not in repr(settings)  # SecretBytes keeps it out of logs


def test_corrupt_secret_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "secret.key").write_text("not hex\n")
    with pytest.raises(ConfigError, match="hex"):
        load_or_create_secret(load_settings(data_dir=tmp_path))
    (tmp_path / "secret.key").write_text("abcd\n")
    with pytest.raises(ConfigError, match="shorter"):
        load_or_create_secret(load_settings(data_dir=tmp_path))
