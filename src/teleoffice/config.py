"""The one settings object of a teleoffice process.

Values come from, highest priority first:

1. keyword arguments (the CLI turns its options into these),
2. environment variables ``TELEOFFICE_<FIELD>`` (``TELEOFFICE_SIP_PORT=5070``;
   ``__`` separates the levels of nested settings, should any appear),
3. a TOML file: the one named by ``TELEOFFICE_CONFIG`` (or the ``config`` keyword),
   else ``<data_dir>/teleoffice.toml`` when that file exists,
4. the defaults below, which are safe for a single machine: everything listens on
   loopback only until an administrator decides otherwise.

Nothing else in the code base reads the environment; the composition root builds a
`Settings` once and hands it down.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import Field, SecretBytes, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "TELEOFFICE_"
CONFIG_FILE_NAME = "teleoffice.toml"
SECRET_FILE_NAME = "secret.key"  # noqa: S105 (a file name, not a secret)
DB_FILE_NAME = "teleoffice.db"

# 32 bytes is the output size of SHA-256, the HMAC used for nonces: a longer key
# adds nothing, a much shorter one makes nonces forgeable by brute force.
SECRET_BYTES = 32
MIN_SECRET_BYTES = 16

LogLevel = Literal["CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG"]


class ConfigError(ValueError):
    """The configuration cannot work; the message says what to change."""


class Settings(BaseSettings):
    """Everything a teleoffice process can be told from outside."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        # A misspelt key in the TOML file must not be silently ignored.
        extra="forbid",
        validate_default=True,
    )

    config: Path | None = Field(
        default=None,
        description=(
            "TOML file the settings were read from (TELEOFFICE_CONFIG). When unset, "
            "<data_dir>/teleoffice.toml is read if it exists."
        ),
    )
    data_dir: Path = Field(
        default=Path("./data"),
        description="Directory holding the database, the secret key and recordings.",
    )
    database_url: str | None = Field(
        default=None,
        description=(
            "SQLAlchemy URL of the database. Unset means an SQLite file "
            "<data_dir>/teleoffice.db; see `Settings.db_url`."
        ),
    )
    sip_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the SIP UDP and TCP listeners bind to.",
    )
    sip_port: int = Field(
        default=5060,
        ge=0,
        le=65535,
        description="Port of the SIP listeners; 0 lets the system choose a free port.",
    )
    http_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Address the web portal and REST API bind to.",
    )
    http_port: int = Field(
        default=8080,
        ge=0,
        le=65535,
        description="Port of the web portal; 0 lets the system choose a free port.",
    )
    sip_tls_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "Port of SIP over TLS, on sip_host. Unset means sip_port + 1 (5061 beside "
            "5060; 0 when sip_port is 0). TLS listens only when a certificate is "
            "configured (tls_cert_file) or `serve --demo` made one."
        ),
    )
    tls_cert_file: Path | None = Field(
        default=None,
        description=(
            "PEM certificate (with its chain) for SIP over TLS and, unless http_tls is "
            "false, the portal over HTTPS. Unset: no TLS, except that `serve --demo` "
            "generates a self-signed one in <data_dir>/tls for SIP."
        ),
    )
    tls_key_file: Path | None = Field(
        default=None,
        description="PEM private key of tls_cert_file; unset means the key is in that file.",
    )
    http_tls: bool | None = Field(
        default=None,
        description=(
            "Serve the portal over HTTPS with tls_cert_file. Unset means yes when "
            "tls_cert_file is set (not for the certificate `serve --demo` generates)."
        ),
    )
    realm: str = Field(
        default="teleoffice",
        min_length=1,
        description=(
            "SIP digest realm (RFC 3261 section 22.1). Stored HA1 hashes depend on it: "
            "after changing it every SIP password must be set again."
        ),
    )
    domain: str = Field(
        default="",
        description=(
            "SIP domain of this PBX, the host part of its users' addresses. Empty means "
            "sip_host; set it when sip_host is a wildcard such as 0.0.0.0."
        ),
    )
    digest_algorithms: list[Literal["MD5", "SHA-256"]] = Field(
        default=["MD5"],
        min_length=1,
        description=(
            "Digest algorithms offered in challenges, strongest first. SHA-256 (RFC 8760) "
            "is stronger, but many phones (baresip, sipp, older desk phones) fail when "
            "offered it at all, so only MD5 is offered unless you list SHA-256. Both "
            "hashes are always stored, so switching needs no password change."
        ),
    )
    min_expires: int = Field(
        default=60,
        ge=1,
        description="Shortest registration the registrar accepts (423 Interval Too Brief).",
    )
    max_expires: int = Field(
        default=3600,
        ge=1,
        description="Longest registration granted; longer requests are shortened.",
    )
    default_expires: int = Field(
        default=3600,
        ge=1,
        description="Registration time granted when a REGISTER does not ask for one.",
    )
    max_contacts_per_account: int = Field(
        default=10,
        ge=1,
        description="Most contacts one phone account may have registered at once.",
    )
    nonce_ttl: float = Field(
        default=300.0,
        gt=0,
        description="Seconds a digest nonce stays valid before the client must get a new one.",
    )
    max_message_size: int = Field(
        default=65535,
        ge=1500,
        le=16 * 1024 * 1024,
        description="Largest SIP message accepted, in bytes (headers and body).",
    )
    sip_transaction_linger: float | None = Field(
        default=None,
        gt=0,
        description=(
            "Caps how long a finished UDP transaction waits to absorb retransmissions "
            "(RFC 3261 timers D, I, J, K and RFC 6026's M; up to 32 s by default). "
            "Only for loss-free networks such as test labs; leave unset in production."
        ),
    )
    tcp_idle_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds after which an idle SIP TCP connection is closed.",
    )
    media_host: str = Field(
        default="",
        description=(
            "Address teleoffice's RTP sockets bind to and that it writes into SDP. "
            "Empty means sip_host; set it when sip_host is a wildcard such as 0.0.0.0."
        ),
    )
    rtp_port_min: int = Field(
        default=20000,
        ge=1024,
        le=65534,
        description="Lowest UDP port for anchored media (each call uses two even ports).",
    )
    rtp_port_max: int = Field(
        default=29999,
        ge=1025,
        le=65535,
        description="Highest UDP port for anchored media.",
    )
    tone_set: Literal["eu", "na"] = Field(
        default="eu",
        description=(
            "Call progress tones (ringback, busy, call waiting): 'eu' for the European "
            "425 Hz plan, 'na' for the North American one."
        ),
    )
    portal_token_ttl: float = Field(
        default=12 * 3600.0,
        ge=60.0,
        le=30 * 86400.0,
        description="Seconds a portal login (API token or browser session) stays valid.",
    )
    voicemail_number: str = Field(
        default="*17",
        pattern=r"^\*?[0-9]{1,8}$",
        description=(
            "What a user dials (from a phone, or through the portal's callback) to reach "
            "their own mailbox."
        ),
    )
    voicemail_dir: Path | None = Field(
        default=None,
        description="Where voicemail audio is kept; empty means <data_dir>/voicemail.",
    )
    voicemail_max_seconds: float = Field(
        default=180.0, ge=5.0, le=3600.0, description="Longest voicemail message, in seconds."
    )
    voicemail_silence_seconds: float = Field(
        default=5.0,
        ge=1.0,
        le=60.0,
        description="A message ends after this many seconds of silence.",
    )
    prompt_dir: Path | None = Field(
        default=Path("/usr/share/asterisk/sounds/en"),
        description=(
            "Folder of voice prompts in Asterisk's layout (Debian: asterisk-core-sounds-en-wav). "
            "Missing prompts are synthesised with espeak-ng when it is installed; without "
            "either, voicemail works with tones only."
        ),
    )
    telecommuter_portal_timeout: float = Field(
        default=0.0,
        ge=0.0,
        description=(
            "Seconds after which a telecommuter with no portal connection open is "
            "returned to their base phone (or logged out); 0 turns this off (rule T8)."
        ),
    )
    session_interval: float = Field(
        default=1800.0,
        ge=2.0,
        description=(
            "Session timer (RFC 4028) in seconds: every established call leg is "
            "refreshed at half this interval, and a leg that does not answer ends the call."
        ),
    )
    # 20, not 10: a phone with a wrong password retries at once on every fresh
    # challenge (baresip 15 times in a burst before it reports the failure); it
    # should see its 401 rather than be silenced by its first attempt.
    auth_fail_limit: int = Field(
        default=20,
        ge=1,
        description=(
            "Failed digest authentications from one source address within "
            "auth_fail_window seconds after which the address is blocked (its requests "
            "are ignored) for auth_block_time seconds."
        ),
    )
    auth_account_fail_limit: int = Field(
        default=30,
        ge=1,
        description=(
            "Failed digest authentications for one account, from any addresses, within "
            "auth_fail_window seconds after which the account counts as under attack: "
            "every address that then fails on it is blocked at once. The account itself "
            "is never locked, so its phones keep working."
        ),
    )
    auth_fail_window: float = Field(
        default=60.0,
        gt=0,
        description="Seconds over which failed authentications are counted.",
    )
    auth_block_time: float = Field(
        default=900.0,
        gt=0,
        description="Seconds a source address stays blocked after too many failures.",
    )
    auth_guard_max_tracked: int = Field(
        default=10_000,
        ge=100,
        description=(
            "Most addresses (and accounts) the password-guessing guard remembers; the "
            "least recently seen are forgotten first. Bounds its memory."
        ),
    )
    overload_lag_high: float = Field(
        default=0.1,
        gt=0,
        le=10,
        description=(
            "Event-loop lag in seconds (smoothed) above which new INVITEs and REGISTERs "
            "are refused with 503 and Retry-After; calls already up are untouched."
        ),
    )
    overload_lag_low: float = Field(
        default=0.03,
        gt=0,
        description=(
            "Event-loop lag below which, together with the other signals, the server "
            "admits new work again (after a short calm period). Below overload_lag_high."
        ),
    )
    overload_busy_high: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description=(
            "Fraction of the time the SIP process spends on the CPU (smoothed) above "
            "which new work is refused: a UDP flood saturates the loop without lag."
        ),
    )
    overload_busy_low: float = Field(
        default=0.8,
        gt=0,
        le=1,
        description="CPU fraction below which new work may be admitted again.",
    )
    overload_max_transactions: int = Field(
        # Not lower: every 503 sent under overload is itself a transaction that
        # lives 32 s, so a flood of 3000/s leaves ~100,000 behind, and a lower
        # limit would keep the server shedding for 32 s after the flood ends.
        default=100_000,
        ge=100,
        description=(
            "SIP transactions in progress above which new INVITEs and REGISTERs get 503 "
            "(bounds memory: a non-INVITE transaction lives 32 s over UDP)."
        ),
    )
    overload_retry_after: int = Field(
        default=5,
        ge=1,
        le=3600,
        description=(
            "Base Retry-After in seconds of the 503s sent under overload; it grows with "
            "sustained overload and is jittered so refused phones do not return together."
        ),
    )
    # ---- limits (issue 9): each bounds what one client, user or flood can take ----
    max_calls: int = Field(
        default=2000,
        ge=1,
        description=(
            "Calls up at once in the whole PBX; one more gets 503 (from SIP and the API). "
            "Emergency numbers dialled from a phone are never refused."
        ),
    )
    max_calls_per_user: int = Field(
        default=100,
        ge=1,
        description=(
            "Calls one user may have placed at once (from phones or the portal); one more "
            "gets 403 Too Many Calls. Calls they receive are not counted, so outsiders "
            "cannot use up a user's allowance."
        ),
    )
    max_outside_calls_per_user: int = Field(
        default=4,
        ge=1,
        description=(
            "Calls through trunks one user may cause at once: dialled from a phone, the "
            "portal or a transfer, or sent out by their forward. One more gets 403 Too Many "
            "Outside Calls. Bounds what a stolen SIP password or a forward to a premium "
            "number can cost (toll fraud)."
        ),
    )
    allow_trunk_to_trunk: bool = Field(
        default=False,
        description=(
            "Let calls that come in from a trunk go out through a trunk (a gateway between "
            "carriers or branch offices). Off: they reach only users, else anyone who can "
            "reach a trunk address relays calls at your cost. Relayed calls are checked "
            "against the default restriction profile. A setting of the whole site rather "
            "than of one trunk: trunks are recognised by address only, so relaying is a "
            "decision about the network, made in the configuration file on purpose."
        ),
    )
    max_subscriptions_per_account: int = Field(
        default=200,
        ge=1,
        description=(
            "SIP subscriptions (message waiting, presence, busy lamps) one phone account "
            "may hold per event package; one more gets 403. A busy lamp field watches one "
            "extension per key, and expansion modules have 100 keys and more."
        ),
    )
    max_subscriptions: int = Field(
        default=20_000,
        ge=100,
        description="SIP subscriptions per event package in total; one more gets 503.",
    )
    max_portal_connections_per_user: int = Field(
        default=64,
        ge=1,
        description=(
            "Live portal connections (the events WebSocket) one user may hold; one more "
            "is closed at once with code 4409."
        ),
    )
    api_rate_limit: float = Field(
        default=50.0,
        gt=0,
        description=(
            "REST API requests a second one session may make on average (the source "
            "address gets four times as much); more get 429 with Retry-After. Logins "
            "have their own, stricter limit."
        ),
    )
    api_rate_burst: int = Field(
        default=500,
        ge=1,
        description="REST API requests one session may make at once after a quiet spell.",
    )
    log_level: LogLevel = Field(
        default="INFO",
        description="Least severe log level written (DEBUG, INFO, WARNING, ERROR, CRITICAL).",
    )
    secret_key: SecretBytes | None = Field(
        default=None,
        description=(
            "Key for the HMACs that make nonces unforgeable. Unset means the key kept in "
            "<data_dir>/secret.key, created on first use; see `load_or_create_secret`."
        ),
    )

    @field_validator("data_dir", "config", "tls_cert_file", "tls_key_file", mode="after")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_log_level(cls, value: object) -> object:
        # Accept `debug` as well as `DEBUG`: environment variables are often lower case.
        return value.upper() if isinstance(value, str) else value

    @field_validator("realm")
    @classmethod
    def _realm_is_quotable(cls, value: str) -> str:
        # The realm travels as a quoted-string in WWW-Authenticate; a quote, backslash
        # or line break in it would corrupt the header or allow header injection.
        if any(ch in value for ch in '"\\\r\n'):
            raise ValueError("must not contain quotes, backslashes or line breaks")
        return value

    @field_validator("database_url")
    @classmethod
    def _url_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            return None
        return value

    @field_validator("secret_key")
    @classmethod
    def _secret_long_enough(cls, value: SecretBytes | None) -> SecretBytes | None:
        if value is not None and len(value.get_secret_value()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes long")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> Self:
        if self.min_expires > self.max_expires:
            raise ValueError(
                f"min_expires ({self.min_expires}) is greater than max_expires ({self.max_expires})"
            )
        if not self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError(
                f"default_expires ({self.default_expires}) must lie between min_expires "
                f"({self.min_expires}) and max_expires ({self.max_expires})"
            )
        # SIP also listens on TCP, so it cannot share a port with the web server on an
        # address both bind to (port 0 is exempt: each gets its own ephemeral port).
        if self.sip_port == self.http_port != 0 and _addresses_overlap(
            self.sip_host, self.http_host
        ):
            raise ValueError(
                f"sip and http both want TCP port {self.sip_port} on overlapping "
                f"addresses ({self.sip_host}, {self.http_host})"
            )
        if self.rtp_port_max - self.rtp_port_min < 3:
            raise ValueError(
                f"rtp_port_min ({self.rtp_port_min}) to rtp_port_max ({self.rtp_port_max}) "
                "leaves no room for a call (it needs two even ports)"
            )
        if self.auth_block_time < self.auth_fail_window:
            # A block shorter than the counting window would let a guesser go on at
            # nearly the unblocked rate: blocked, released, blocked again at once.
            raise ValueError(
                f"auth_block_time ({self.auth_block_time}) must not be shorter than "
                f"auth_fail_window ({self.auth_fail_window})"
            )
        if self.overload_lag_low >= self.overload_lag_high:
            raise ValueError(
                f"overload_lag_low ({self.overload_lag_low}) must be below "
                f"overload_lag_high ({self.overload_lag_high})"
            )
        if self.overload_busy_low >= self.overload_busy_high:
            raise ValueError(
                f"overload_busy_low ({self.overload_busy_low}) must be below "
                f"overload_busy_high ({self.overload_busy_high})"
            )
        if not self.domain:
            self.domain = self.sip_host
        if not self.media_host:
            self.media_host = self.sip_host
        self._check_tls()
        return self

    def _check_tls(self) -> None:
        if self.sip_tls_port is None:
            # 5061 beside 5060 (RFC 3261 section 19.1.2); an ephemeral SIP port
            # gets an ephemeral TLS port, and 65535 has no neighbour.
            self.sip_tls_port = self.sip_port + 1 if 0 < self.sip_port < 65535 else 0
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_key_file is set but tls_cert_file is not")
        if self.http_tls and self.tls_cert_file is None:
            raise ValueError("http_tls needs a certificate: set tls_cert_file")
        if self.tls_cert_file is None or self.sip_tls_port == 0:
            return  # TLS is off (or on an ephemeral port): nothing to collide with
        # TLS is TCP: it cannot share a port with SIP over TCP or with the web
        # server on an address both bind to.
        if self.sip_tls_port == self.sip_port:
            raise ValueError(f"sip_tls_port and sip_port are both {self.sip_port}")
        if self.sip_tls_port == self.http_port and _addresses_overlap(
            self.sip_host, self.http_host
        ):
            raise ValueError(
                f"sip (TLS) and http both want TCP port {self.http_port} on overlapping "
                f"addresses ({self.sip_host}, {self.http_host})"
            )

    @property
    def portal_tls(self) -> bool:
        """Whether the portal is served over HTTPS: `http_tls`, else whether a
        certificate was configured."""
        if self.http_tls is not None:
            return self.http_tls
        return self.tls_cert_file is not None

    @property
    def db_url(self) -> str:
        """The database URL to connect to: `database_url`, else the SQLite file in
        `data_dir` (made absolute, so that a later change of working directory
        cannot point the process at another database)."""
        if self.database_url is not None:
            return self.database_url
        return f"sqlite:///{(self.data_dir / DB_FILE_NAME).resolve().as_posix()}"

    @property
    def voicemail_folder(self) -> Path:
        """Where voicemail audio lives: `voicemail_dir`, else <data_dir>/voicemail."""
        return self.voicemail_dir or self.data_dir / "voicemail"

    @property
    def secret_file(self) -> Path:
        """Where the generated nonce key is kept when `secret_key` is not given."""
        return self.data_dir / SECRET_FILE_NAME

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The TOML file's location itself depends on the higher-priority sources
        # (`config`, else `data_dir`), so look those up first. The .env and secrets-dir
        # sources are deliberately left out: one file format is enough to explain.
        early: dict[str, Any] = {}
        early.update(env_settings())
        if isinstance(init_settings, InitSettingsSource):
            early.update({k: v for k, v in init_settings.init_kwargs.items() if v is not None})
        toml_path = _find_toml(early)
        if toml_path is None:
            return (init_settings, env_settings)
        # Record which file was read, at the lowest priority so an explicit value wins.
        found = InitSettingsSource(settings_cls, init_kwargs={"config": toml_path})
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=toml_path),
            found,
        )


def _find_toml(early: dict[str, Any]) -> Path | None:
    explicit = early.get("config")
    if explicit is not None and str(explicit) != "":
        path = Path(str(explicit)).expanduser()
        # A file the user named but that is missing is a mistake worth stopping for;
        # silently running on defaults could expose the PBX on the wrong address.
        if not path.is_file():
            raise ConfigError(f"configuration file {path} does not exist")
        return path
    data_dir = Path(str(early.get("data_dir") or "./data")).expanduser()
    candidate = data_dir / CONFIG_FILE_NAME
    return candidate if candidate.is_file() else None


def _addresses_overlap(a: str, b: str) -> bool:
    """Whether two bind addresses can collide: equal, or one is a wildcard."""
    if a == b:
        return True
    wildcards = {ipaddress.ip_address("0.0.0.0"), ipaddress.ip_address("::")}  # noqa: S104
    for host in (a, b):
        try:
            if ipaddress.ip_address(host) in wildcards:
                return True
        except ValueError:
            continue  # a host name: it cannot be compared without resolving it
    return False


def load_settings(**overrides: Any) -> Settings:
    """Build the settings, raising `ConfigError` with one readable line per problem.

    `overrides` are field values with the highest priority; ``None`` values are
    dropped so callers can pass unset CLI options straight through.
    """
    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc)) from None
    except ValueError as exc:
        # TOML syntax errors surface as ValueError (tomllib.TOMLDecodeError).
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"cannot read configuration: {exc}") from None


def format_validation_error(exc: ValidationError) -> str:
    """Render a pydantic ValidationError as ``setting X: problem`` lines."""
    lines: list[str] = []
    for err in exc.errors():
        where = ".".join(str(part) for part in err["loc"])
        message = err["msg"]
        # Model-level checks have no location and pydantic prefixes their message.
        message = message.removeprefix("Value error, ")
        lines.append(f"setting {where}: {message}" if where else f"invalid settings: {message}")
    return "; ".join(lines) if lines else str(exc)


def load_or_create_secret(settings: Settings) -> bytes:
    """The key for nonce HMACs.

    An explicit `secret_key` wins. Otherwise the key lives in ``<data_dir>/secret.key``
    (hex text, mode 0600) so that nonces handed out before a restart stay valid and
    several processes sharing a data directory agree; it is generated on first use.
    """
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = settings.secret_file
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(SECRET_BYTES)
    # Write a private temporary file (mkstemp creates it with mode 0600, so the key is
    # never readable by others) and hard-link it into place: the link either appears
    # complete or fails because another process won the race, whose key we then use.
    fd, tmp_name = tempfile.mkstemp(prefix=".secret-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(key.hex() + "\n")
        try:
            os.link(tmp_name, path)
        except FileExistsError:
            return _read_secret(path)
    finally:
        os.unlink(tmp_name)
    return key


def _read_secret(path: Path) -> bytes:
    text = path.read_text(encoding="ascii", errors="replace").strip()
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise ConfigError(f"{path} does not hold a hex-encoded key") from None
    if len(key) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"{path} holds a key shorter than {MIN_SECRET_BYTES} bytes; "
            "delete it to have a new one generated"
        )
    return key
