"""Configuration from environment variables and an optional ``.env`` file.

Every variable the core reads is declared here, once. A malformed value raises
:class:`ConfigError` naming the variable; start-up prints that one line and stops.
Channels read their own variables from ``Config.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

import attrs
from dotenv import dotenv_values

from omnichannel_core.errors import ConfigError

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


def _parse_origins(raw: str) -> tuple[str, ...]:
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


def _read(environ: Mapping[str, str], name: str, parse: Callable[[str], T], default: T) -> T:
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return parse(raw)
    except ValueError as error:
        raise ConfigError(f"{name}: {error}", variable=name) from None


@attrs.frozen
class Config:
    """The server's settings. Build it with :meth:`from_environ`."""

    host: str = "127.0.0.1"
    port: int = 3000
    workers: int = 2
    data_dir: Path = Path("omnichannel-data")
    store_url: str = "sqlite:///omnichannel-data/omnichannel.db"
    api_keys: tuple[str, ...] = attrs.field(default=(), repr=False)
    log_level: str = "info"
    log_format: str = "auto"
    plugins_dir: Path = Path("plugins")
    disabled_plugins: tuple[str, ...] = ()
    max_body_bytes: int = 1_048_576
    hook_threads: int = 16
    public_url: str | None = None
    trust_proxy: int = 0
    proxy_header: str = "x-forwarded-for"
    rate_limit_per_minute: int = 600
    credential_rate_limit_per_minute: int = 1200
    login_rate_limit_per_minute: int = 10
    cors_origins: tuple[str, ...] = ()
    jwt_secret: str | None = attrs.field(default=None, repr=False)
    access_token_minutes: int = 15
    refresh_token_days: int = 30
    login_lockout_failures: int = 5
    login_lockout_minutes: int = 15
    event_bus: str = "poll"
    event_poll_ms: int = 200
    event_retention_hours: int = 72
    environ: Mapping[str, str] = attrs.field(factory=dict, repr=False)

    @classmethod
    def from_environ(
        cls, environ: Mapping[str, str] | None = None, dotenv: Path | None = Path(".env")
    ) -> Config:
        """Read the configuration; values in ``environ`` win over the ``.env`` file."""
        merged: dict[str, str] = {}
        if dotenv is not None and dotenv.is_file():
            merged.update({k: v for k, v in dotenv_values(dotenv).items() if v is not None})
        merged.update(os.environ if environ is None else environ)

        data_dir = Path(_read(merged, "OMNICHANNEL_DATA_DIR", str, "omnichannel-data"))
        return cls(
            host=_read(merged, "OMNICHANNEL_HOST", str, "127.0.0.1"),
            port=_read(merged, "PORT", _parse_int(1, 65535), 3000),
            workers=_read(merged, "OMNICHANNEL_WORKERS", _parse_int(1, 64), 2),
            data_dir=data_dir,
            store_url=_read(
                merged, "OMNICHANNEL_STORE", str, f"sqlite:///{data_dir / 'omnichannel.db'}"
            ),
            api_keys=_read(merged, "OMNICHANNEL_API_KEY", _parse_list, ()),
            log_level=_read(merged, "OMNICHANNEL_LOG_LEVEL", _parse_choice(LOG_LEVELS), "info"),
            log_format=_read(merged, "OMNICHANNEL_LOG_FORMAT", _parse_choice(LOG_FORMATS), "auto"),
            plugins_dir=Path(_read(merged, "OMNICHANNEL_PLUGINS_DIR", str, "plugins")),
            disabled_plugins=_read(merged, "OMNICHANNEL_DISABLE_PLUGINS", _parse_list, ()),
            max_body_bytes=_read(
                merged, "OMNICHANNEL_MAX_BODY_BYTES", _parse_int(1024, 100 * 1024**2), 1_048_576
            ),
            hook_threads=_read(merged, "OMNICHANNEL_HOOK_THREADS", _parse_int(1, 256), 16),
            public_url=_read(merged, "OMNICHANNEL_PUBLIC_URL", _parse_url, None),
            trust_proxy=_read(merged, "OMNICHANNEL_TRUST_PROXY", _parse_proxy_hops, 0),
            proxy_header=_read(
                merged,
                "OMNICHANNEL_PROXY_HEADER",
                _parse_choice(PROXY_HEADERS),
                "x-forwarded-for",
            ),
            rate_limit_per_minute=_read(
                merged, "OMNICHANNEL_RATE_LIMIT", _parse_int(0, RATE_LIMIT_MAX), 600
            ),
            credential_rate_limit_per_minute=_read(
                merged, "OMNICHANNEL_CREDENTIAL_RATE_LIMIT", _parse_int(0, RATE_LIMIT_MAX), 1200
            ),
            login_rate_limit_per_minute=_read(
                merged, "OMNICHANNEL_LOGIN_RATE_LIMIT", _parse_int(0, RATE_LIMIT_MAX), 10
            ),
            cors_origins=_read(merged, "OMNICHANNEL_CORS_ORIGINS", _parse_origins, ()),
            jwt_secret=_read(merged, "OMNICHANNEL_JWT_SECRET", _parse_secret(32), None),
            access_token_minutes=_read(
                merged, "OMNICHANNEL_ACCESS_TOKEN_MINUTES", _parse_int(1, 1440), 15
            ),
            refresh_token_days=_read(
                merged, "OMNICHANNEL_REFRESH_TOKEN_DAYS", _parse_int(1, 365), 30
            ),
            login_lockout_failures=_read(
                merged, "OMNICHANNEL_LOGIN_LOCKOUT_FAILURES", _parse_int(1, 100), 5
            ),
            login_lockout_minutes=_read(
                merged, "OMNICHANNEL_LOGIN_LOCKOUT_MINUTES", _parse_int(1, 1440), 15
            ),
            event_bus=_read(merged, "OMNICHANNEL_EVENT_BUS", _parse_event_bus, "poll"),
            event_poll_ms=_read(merged, "OMNICHANNEL_EVENT_POLL_MS", _parse_int(10, 60_000), 200),
            event_retention_hours=_read(
                merged, "OMNICHANNEL_EVENT_RETENTION_HOURS", _parse_int(1, 24 * 365), 72
            ),
            environ=merged,
        )
