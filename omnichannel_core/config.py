"""Configuration from environment variables and an optional ``.env`` file.

Every variable the core reads is declared here, once. A malformed value raises
:class:`ConfigError` naming the variable; start-up prints that one line and stops.
Channels read their own variables from ``Config.settings``: the environment, over what admins
stored through the settings API (`omnichannel_core.setting_values`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs
from dotenv import dotenv_values

from omnichannel_core.errors import ConfigError
from omnichannel_core.setting_values import SettingValues, StoredSettings

T = TypeVar("T")

LOG_LEVELS = ("debug", "info", "warning", "error")
LOG_FORMATS = ("auto", "json", "console")
RATE_LIMIT_MAX = 1_000_000
"""Requests per minute: far above any real need, low enough to catch a typo's extra zeros."""


def _parse_int(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ValueError(f"must be a whole number, got {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, got {value}")
        return value

    return parse


PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip")
"""The forwarding headers ``OMNICHANNEL_PROXY_HEADER`` may name (lower case)."""


def _parse_choice(choices: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _parse_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _parse_per_channel(low: float, high: float) -> Callable[[str], Mapping[str, float]]:
    """``channel=value`` pairs, comma separated; a key may name one sender of a channel as
    ``channel:sender`` (e.g. ``twilio:whatsapp:+14155238886=80``)."""

    def parse(raw: str) -> Mapping[str, float]:
        values: dict[str, float] = {}
        for item in _parse_list(raw):
            key, equals, number = item.rpartition("=")
            key = key.strip()
            channel = key.partition(":")[0]
            if not equals or not channel or not key:
                raise ValueError(f"{item!r} is not channel=number or channel:sender=number")
            try:
                value = float(number)
            except ValueError:
                raise ValueError(f"{item!r}: {number!r} is not a number") from None
            if not low <= value <= high or value != value:
                raise ValueError(f"{item!r}: must be between {low:g} and {high:g}")
            values[key] = value
        return values

    return parse


def _parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"must be true or false, got {raw!r}")


def _parse_proxy_hops(raw: str) -> int:
    """``OMNICHANNEL_TRUST_PROXY``: how many proxies stand in front of the server. A boolean
    still works, the setting having been one: false is 0 (off), true is 1."""
    value = raw.strip()
    if value.isascii() and value.isdigit():
        return int(value)
    try:
        return int(_parse_bool(value))
    except ValueError:
        raise ValueError(
            f"must be true, false or a number of proxies (0 or more), got {raw!r}"
        ) from None


def parse_origins(raw: str) -> tuple[str, ...]:
    """Exact browser origins (``scheme://host[:port]``, nothing after), comma-separated.
    Stored as browsers send them in ``Origin``: lower case, no trailing slash."""
    origins = tuple(origin.rstrip("/").lower() for origin in _parse_list(raw))
    for origin in origins:
        if "*" in origin:
            raise ValueError(
                "'*' is not allowed (a wildcard would let any site call the API with a"
                " user's token): list the exact origins, like https://app.example.com"
            )
        scheme, _, rest = origin.partition("://")
        if scheme not in ("http", "https") or not rest or "/" in rest:
            raise ValueError(
                f"each origin must be scheme://host[:port] with no path, like"
                f" https://app.example.com, got {origin!r}"
            )
    return origins


def _parse_secret(min_length: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if len(raw) < min_length:  # the value is never echoed: it is a secret
            raise ValueError(f"must be at least {min_length} characters, got {len(raw)}")
        return raw

    return parse


SECRET_KEY = re.compile(r"^[A-Za-z0-9_-]{43}=?$")
"""32 bytes in URL-safe base64 (``secrets.token_urlsafe(32)``, or ``base64.urlsafe_b64encode``
of 32 random bytes)."""


def _parse_key_ring(raw: str) -> tuple[str, ...]:
    """Keys, comma-separated, the first the current one: each 32 bytes in URL-safe base64."""
    keys = _parse_list(raw)
    for position, key in enumerate(keys, start=1):
        if not SECRET_KEY.match(key):  # the value is never echoed: it is a secret
            raise ValueError(
                f"key {position} is not 32 bytes in URL-safe base64 (43 characters); make one"
                " with: python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
    if len(set(keys)) != len(keys):
        raise ValueError("a key is given twice")
    return keys


def _parse_url(raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ValueError(f"must start with http:// or https://, got {raw!r}")
    return value


def _parse_event_bus(raw: str) -> str:
    value = raw.strip()
    if value == "poll" or (value.startswith("pubsub://") and value.count("/") == 3):
        project, _, topic = value.removeprefix("pubsub://").partition("/")
        if value == "poll" or (project and topic):
            return value
    raise ValueError(f"must be poll or pubsub://PROJECT/TOPIC, got {raw!r}")


MEDIA_TYPE = r"^[a-z0-9][a-z0-9!#$&^_.+-]*/([a-z0-9][a-z0-9!#$&^_.+-]*|\*)$"
DEFAULT_MEDIA_TYPES = (
    "image/jpeg",
    "image/png",
    "image/gif",
    "image/webp",
    "image/heic",
    "image/heif",
    "image/avif",
    "image/bmp",
    "image/tiff",
    "audio/*",
    "video/*",
    "application/pdf",
    "application/msword",
    "application/vnd.ms-excel",
    "application/vnd.ms-powerpoint",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "application/zip",
    "text/plain",
    "text/csv",
    "text/calendar",
    "text/vcard",
    "message/rfc822",
    "message/delivery-status",
    "text/rfc822-headers",
    "application/ms-tnef",
    "application/octet-stream",
)
"""What the media store keeps unless ``OMNICHANNEL_MEDIA_TYPES`` says otherwise: pictures
(no SVG: it can carry script), sound, video, PDF and office documents, plain text, calendar
invites and contact cards, whole emails and the parts of a bounce, Outlook's winmail.dat,
and other files as ``application/octet-stream`` (always served as a
download). docs/media.md explains the choice."""


def _parse_media_types(raw: str) -> tuple[str, ...]:
    """Content types, comma-separated, ``type/*`` for every subtype of a type."""
    types = tuple(item.lower() for item in _parse_list(raw))
    for item in types:
        if not re.match(MEDIA_TYPE, item):
            raise ValueError(f"{item!r} is not a content type like image/png or audio/*")
    return types


def _parse_media_store(raw: str) -> str:
    """``gs://BUCKET[/PREFIX]`` (Google Cloud Storage), or a folder (a path, or
    ``file:///absolute/path``)."""
    value = raw.strip()
    if value.startswith("gs://"):
        bucket = value.removeprefix("gs://").split("/", 1)[0]
        if not re.match(r"^[a-z0-9][a-z0-9._-]{1,221}[a-z0-9]$", bucket):
            raise ValueError(f"must be gs://BUCKET[/PREFIX] with a bucket's name, got {raw!r}")
        return value.rstrip("/")
    if "://" in value and not value.startswith("file:///"):
        raise ValueError(f"must be gs://BUCKET[/PREFIX], file:///PATH or a folder, got {raw!r}")
    return value


def _read(environ: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}", variable=name) from None


VARIABLE = "omnichannel.variable"
PARSE = "omnichannel.parse"


def setting(
    variable: str,
    parse: Callable[[str], Any],
    default: Any,
    *,
    secret: bool = False,
    converter: Callable[[Any], Any] | None = None,
) -> Any:
    """A field of :class:`Config` read from the environment variable ``variable`` with
    ``parse`` (which raises ValueError, with a sentence, for a malformed value), ``default``
    when it is unset or empty. The one place each default is written."""
    return attrs.field(
        default=default,
        repr=not secret,
        converter=converter,
        metadata={VARIABLE: variable, PARSE: parse},
    )


def _path(raw: str) -> Path:
    return Path(raw)


def _text(raw: str) -> str:
    return raw


DEFAULT_DATA_DIR = Path("omnichannel-data")


@attrs.frozen
class Config:
    """The server's settings, each read from its variable by :meth:`from_environ` (the
    ``setting(...)`` of each field names it, parses it and gives its default)."""

    host: str = setting("OMNICHANNEL_HOST", _text, "127.0.0.1")
    port: int = setting("PORT", _parse_int(1, 65535), 3000)
    workers: int = setting("OMNICHANNEL_WORKERS", _parse_int(1, 64), 2)
    data_dir: Path = setting("OMNICHANNEL_DATA_DIR", _path, DEFAULT_DATA_DIR, converter=Path)
    store_url: str = setting("OMNICHANNEL_STORE", _text, "")
    """Empty: ``sqlite:///<data_dir>/omnichannel.db``."""
    api_keys: tuple[str, ...] = setting("OMNICHANNEL_API_KEY", _parse_list, (), secret=True)
    log_level: str = setting("OMNICHANNEL_LOG_LEVEL", _parse_choice(LOG_LEVELS), "info")
    log_format: str = setting("OMNICHANNEL_LOG_FORMAT", _parse_choice(LOG_FORMATS), "auto")
    plugins_dir: Path = setting("OMNICHANNEL_PLUGINS_DIR", _path, Path("plugins"), converter=Path)
    disabled_plugins: tuple[str, ...] = setting("OMNICHANNEL_DISABLE_PLUGINS", _parse_list, ())
    max_body_bytes: int = setting(
        "OMNICHANNEL_MAX_BODY_BYTES", _parse_int(1024, 100 * 1024**2), 1_048_576
    )
    hook_threads: int = setting("OMNICHANNEL_HOOK_THREADS", _parse_int(1, 256), 16)
    public_url: str | None = setting("OMNICHANNEL_PUBLIC_URL", _parse_url, None)
    trust_proxy: int = setting("OMNICHANNEL_TRUST_PROXY", _parse_proxy_hops, 0)
    proxy_header: str = setting(
        "OMNICHANNEL_PROXY_HEADER", _parse_choice(PROXY_HEADERS), "x-forwarded-for"
    )
    rate_limit_per_minute: int = setting(
        "OMNICHANNEL_RATE_LIMIT", _parse_int(0, RATE_LIMIT_MAX), 600
    )
    credential_rate_limit_per_minute: int = setting(
        "OMNICHANNEL_CREDENTIAL_RATE_LIMIT", _parse_int(0, RATE_LIMIT_MAX), 1200
    )
    login_rate_limit_per_minute: int = setting(
        "OMNICHANNEL_LOGIN_RATE_LIMIT", _parse_int(0, RATE_LIMIT_MAX), 10
    )
    cors_origins: tuple[str, ...] = setting("OMNICHANNEL_CORS_ORIGINS", parse_origins, ())
    jwt_secret: str | None = setting("OMNICHANNEL_JWT_SECRET", _parse_secret(32), None, secret=True)
    secret_keys: tuple[str, ...] = setting(
        "OMNICHANNEL_SECRET_KEY", _parse_key_ring, (), secret=True
    )
    """The keys stored secrets (channel credentials) are sealed with, the first the current
    one; the others still open what they sealed, during a rotation. Empty: a key generated
    into the data dir, which only a server alone on its store may use (`secret_box`)."""
    access_token_minutes: int = setting("OMNICHANNEL_ACCESS_TOKEN_MINUTES", _parse_int(1, 1440), 15)
    refresh_token_days: int = setting("OMNICHANNEL_REFRESH_TOKEN_DAYS", _parse_int(1, 365), 30)
    login_lockout_failures: int = setting(
        "OMNICHANNEL_LOGIN_LOCKOUT_FAILURES", _parse_int(1, 100), 5
    )
    login_lockout_minutes: int = setting(
        "OMNICHANNEL_LOGIN_LOCKOUT_MINUTES", _parse_int(1, 1440), 15
    )
    event_bus: str = setting("OMNICHANNEL_EVENT_BUS", _parse_event_bus, "poll")
    event_poll_ms: int = setting("OMNICHANNEL_EVENT_POLL_MS", _parse_int(10, 60_000), 200)
    event_retention_hours: int = setting(
        "OMNICHANNEL_EVENT_RETENTION_HOURS", _parse_int(1, 24 * 365), 72
    )
    event_retention_max_hours: int = setting(
        "OMNICHANNEL_EVENT_RETENTION_MAX_HOURS", _parse_int(1, 24 * 365), 720
    )
    event_prune_seconds: int = setting(
        "OMNICHANNEL_EVENT_PRUNE_SECONDS", _parse_int(1, 86_400), 3600
    )
    """How often the job ``events.prune`` runs."""
    job_lease_seconds: int = setting("OMNICHANNEL_JOB_LEASE_SECONDS", _parse_int(3, 86_400), 30)
    """How long a singleton job's lease lasts without renewal: how long a runner that died
    keeps its jobs from the others."""
    run_worker: bool = setting("OMNICHANNEL_RUN_WORKER", _parse_bool, True)
    send_rates: Mapping[str, float] = setting(
        "OMNICHANNEL_SEND_RATES", _parse_per_channel(0, 100_000), {}
    )
    """Messages per second per channel, or per sender of a channel (``twilio=1,facebook=20,
    twilio:whatsapp:+14155238886=80``), ``*`` for every other channel; 0: unpaced. Unset ones
    take the channel's own default (its ``send_policy``). See docs/delivery.md."""
    send_retry_seconds: Mapping[str, float] = setting(
        "OMNICHANNEL_SEND_RETRY_SECONDS", _parse_per_channel(0, 7 * 86_400), {}
    )
    """Per channel: how long after a message is due its retryable failures are retried."""
    send_confirm_seconds: Mapping[str, float] = setting(
        "OMNICHANNEL_SEND_CONFIRM_SECONDS", _parse_per_channel(0, 7 * 86_400), {}
    )
    """Per channel: how long a message in doubt waits for the provider to confirm it."""
    send_backoff_ms: int = setting("OMNICHANNEL_SEND_BACKOFF_MS", _parse_int(1, 3_600_000), 1000)
    """The first retry's delay; each next one doubles (with jitter), up to 5 minutes."""
    send_lease_seconds: int = setting("OMNICHANNEL_SEND_LEASE_SECONDS", _parse_int(2, 3600), 60)
    """How long a runner holds a message it is sending; a runner that dies mid-send leaves
    it in doubt once this has passed."""
    send_concurrency: int = setting("OMNICHANNEL_SEND_CONCURRENCY", _parse_int(1, 1024), 32)
    """Sends in flight at once in each job runner."""
    outbox_max_age_seconds: int = setting(
        "OMNICHANNEL_OUTBOX_MAX_AGE_SECONDS", _parse_int(1, 30 * 86_400), 900
    )
    """``/health`` degrades when a message due this long ago is still not sent."""
    media_store: str = setting("OMNICHANNEL_MEDIA_STORE", _parse_media_store, "")
    """Where the media store keeps bytes: ``gs://BUCKET[/PREFIX]``, or a folder; empty:
    ``<data_dir>/media``."""
    media_max_bytes: int = setting(
        "OMNICHANNEL_MEDIA_MAX_BYTES", _parse_int(1024, 2 * 1024**3), 26_214_400
    )
    """The largest item the media store keeps (an upload, an attachment, a fetched file)."""
    media_types: tuple[str, ...] = setting(
        "OMNICHANNEL_MEDIA_TYPES", _parse_media_types, DEFAULT_MEDIA_TYPES
    )
    media_fetch_private: bool = setting("OMNICHANNEL_MEDIA_FETCH_PRIVATE", _parse_bool, False)
    """Let the media job fetch a provider's media from private, loopback and link-local
    addresses (tests, whose fake providers listen on 127.0.0.1); never in production."""
    media_fetch_retry_seconds: int = setting(
        "OMNICHANNEL_MEDIA_FETCH_RETRY_SECONDS", _parse_int(0, 7 * 86_400), 3600
    )
    """How long a provider's media that failed in a way worth retrying is tried again."""
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False)
    stored_settings: StoredSettings = attrs.field(factory=StoredSettings, eq=False, repr=False)
    """The channel settings admins stored, as this process last loaded them (the settings
    module replaces them when the store changes). Not part of equality, nor of ``repr``.
    ``attrs.evolve`` hands it on: a configuration derived from the server's (another key, a
    test's tweak) still sees the live stored values, where a fresh, empty one would
    silently drop every credential an admin stored; give ``stored_settings=StoredSettings()``
    for a configuration of its own."""

    @property
    def settings(self) -> SettingValues:
        """The channels' variables: the environment's value where it is set and not empty,
        else the stored one (`omnichannel_core.setting_values`). Server-wide variables (the
        fields above, ``OMNICHANNEL_PUBLIC_URL`` among them) are read from the environment
        only."""
        return SettingValues(self.environ, self.stored_settings.snapshot())

    def __attrs_post_init__(self) -> None:
        if not self.store_url:
            default = f"sqlite:///{self.data_dir / 'omnichannel.db'}"
            object.__setattr__(self, "store_url", default)
        if not self.media_store:
            object.__setattr__(self, "media_store", str(self.data_dir / "media"))

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
    ) -> Config:
        """Read the configuration; values in ``environ`` win over the ``.env`` file."""
        merged: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            merged.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        merged.update(os.environ if environ is None else environ)
        values = {
            field.name: _read(
                merged, field.metadata[VARIABLE], field.metadata[PARSE], field.default
            )
            for field in attrs.fields(cls)
            if VARIABLE in field.metadata
        }
        if values["event_retention_max_hours"] < values["event_retention_hours"]:
            raise ConfigError(
                "OMNICHANNEL_EVENT_RETENTION_MAX_HOURS must be at least"
                f" OMNICHANNEL_EVENT_RETENTION_HOURS ({values['event_retention_hours']}): it is"
                " how old an event a subscriber has not read may grow before it is pruned anyway",
                variable="OMNICHANNEL_EVENT_RETENTION_MAX_HOURS",
            )
        return cls(**values, environ=merged)

    @classmethod
    def variables(cls) -> dict[str, Any]:
        """Every variable the core reads, with its default (for the documentation's test)."""
        return {
            field.metadata[VARIABLE]: field.default
            for field in attrs.fields(cls)
            if VARIABLE in field.metadata
        }
