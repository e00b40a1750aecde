"""The webchat channel's settings, read from the server's configuration.

Each ``WEBCHAT_*`` variable comes from ``config.settings``: the environment, or else what
an admin stored through the settings API (:data:`SETTINGS` declares them). Parsed once per
:class:`~omnichannel_core.channel.Config` and version of the stored settings (through
:func:`~omnichannel_core.channel.settings_for`). Secrets are kept out of ``repr``, and
:attr:`WebchatSettings.problems` names variables, never values.

``WEBCHAT_ALLOWED_ORIGINS`` is what the channel needs: the sites whose pages may embed the
widget. Without it the channel loads, answers no site, and its health says so.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from typing import TypeVar

import attrs

from omnichannel_core.channel import (
    ChannelSettings,
    Config,
    OriginsSetting,
    Setting,
    derived_secret,
    settings_for,
)

ORIGINS = "WEBCHAT_ALLOWED_ORIGINS"
ALLOWED_ORIGINS = OriginsSetting(ORIGINS)
TOKEN_PURPOSE = "webchat-visitor-tokens"  # noqa: S105 (a label, not a secret)
"""What the visitor tokens' key is derived for, from the server's signing secret."""
DEFAULT_TITLE = ""
"""No title: the widget shows its own, in the visitor's language."""
DEFAULT_COLOR = "#1f6feb"
DEFAULT_SESSION_DAYS = 30
DEFAULT_TEXT_MAX_CHARS = 4000
DEFAULT_UPLOAD_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MESSAGES_PER_MINUTE = 30
DEFAULT_SESSIONS_PER_MINUTE = 20
COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")
MIN_SECRET_LENGTH = 32
SETTINGS = (
    Setting(
        ORIGINS,
        "the sites whose pages may chat: exact origins (https://www.example.com), comma-separated",
        required=True,
    ),
    Setting(
        "WEBCHAT_IDENTITY_SECRET",
        "what your site signs its users' ids with (32 characters at least; two,"
        " comma-separated, during a rotation)",
        secret=True,
    ),
    Setting("WEBCHAT_IDENTITY_REQUIRED", "true: only visitors your site vouches for may chat"),
    Setting("WEBCHAT_TITLE", "the panel's title; the widget's own unless set"),
    Setting("WEBCHAT_GREETING", "a first line shown to every visitor"),
    Setting("WEBCHAT_COLOR", f"the widget's colour, #rrggbb; {DEFAULT_COLOR} unless set"),
    Setting("WEBCHAT_PRECHAT", "off (the default), optional or required: ask name and email"),
    Setting(
        "WEBCHAT_SESSION_DAYS", f"how long a visitor's token lasts, {DEFAULT_SESSION_DAYS} days"
    ),
    Setting(
        "WEBCHAT_TEXT_MAX_CHARS",
        f"the longest message a visitor may send, {DEFAULT_TEXT_MAX_CHARS}",
    ),
    Setting("WEBCHAT_UPLOAD_MAX_BYTES", "the largest file a visitor may send, 10 MB unless set"),
    Setting(
        "WEBCHAT_MESSAGES_PER_MINUTE",
        f"messages a visitor may send a minute, {DEFAULT_MESSAGES_PER_MINUTE}",
    ),
    Setting(
        "WEBCHAT_SESSIONS_PER_MINUTE",
        f"new visitors a minute per client address, {DEFAULT_SESSIONS_PER_MINUTE}",
    ),
    Setting(
        "WEBCHAT_VISITOR_SECRET",
        "the key visitor tokens are signed with (32 characters at least); derived from the"
        " server's signing secret unless set",
        secret=True,
    ),
)
"""Every variable the channel reads, for its ``settings`` hook."""


class Prechat(enum.StrEnum):
    """Whether the widget asks a new visitor's name and email before the chat."""

    OFF = "off"
    OPTIONAL = "optional"
    REQUIRED = "required"


@attrs.frozen
class WebchatSettings(ChannelSettings):
    """What the widget and the visitor routes need.

    :param origins: the sites that may embed the widget (``WEBCHAT_ALLOWED_ORIGINS``).
    :param token_key: signs visitor tokens: ``WEBCHAT_VISITOR_SECRET``, or a key derived from
        the server's signing secret (the same on every server that shares it).
    :param identity_secrets: ``WEBCHAT_IDENTITY_SECRET``, comma-separated during a rotation
        (the first is current): a site's HMAC of its user id proves who the visitor is.
    :param identity_required: ``WEBCHAT_IDENTITY_REQUIRED``: only verified visitors may chat.
    """

    origins: tuple[str, ...]
    token_key: bytes = attrs.field(repr=False)
    identity_secrets: tuple[bytes, ...] = attrs.field(repr=False)
    identity_required: bool
    title: str
    greeting: str | None
    color: str
    prechat: Prechat
    session_days: int
    text_max_chars: int
    upload_max_bytes: int
    upload_types: tuple[str, ...]
    messages_per_minute: int
    sessions_per_minute: int
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> WebchatSettings:
        """The settings of ``config``, parsed on first use and cached for that object."""
        return settings_for(config, parse_settings)

    def for_widget(self) -> dict[str, object]:
        """What a visitor's widget is told (``settings`` of ``POST session``): no secret."""
        return {
            "title": self.title,
            "greeting": self.greeting,
            "color": self.color,
            "prechat": str(self.prechat),
            "identity_required": self.identity_required,
            "text_max_chars": self.text_max_chars,
            "upload_max_bytes": self.upload_max_bytes,
            "upload_types": list(self.upload_types),
        }


T = TypeVar("T")


def parse_settings(config: Config) -> WebchatSettings:
    env = config.settings
    invalid: list[str] = []

    def read(name: str, parse: Callable[[str], T], default: T) -> T:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError as error:
            invalid.append(f"{name}: {error}")
            return default

    try:
        origins = ALLOWED_ORIGINS(config)
    except ValueError as error:  # it names the variable
        invalid.append(str(error))
        origins = ()
    visitor_secret = read("WEBCHAT_VISITOR_SECRET", _secret, None)
    identity_required = read("WEBCHAT_IDENTITY_REQUIRED", _bool, False)
    identity_secrets: tuple[bytes, ...] = read("WEBCHAT_IDENTITY_SECRET", _secrets, ())
    if identity_required and not identity_secrets:
        invalid.append(
            "WEBCHAT_IDENTITY_REQUIRED: needs WEBCHAT_IDENTITY_SECRET, or nobody can chat"
        )
    upload_max = min(
        read("WEBCHAT_UPLOAD_MAX_BYTES", _whole(1, 2**31), DEFAULT_UPLOAD_MAX_BYTES),
        config.media_max_bytes,
    )
    return WebchatSettings(
        origins=origins,
        token_key=(
            visitor_secret.encode() if visitor_secret else derived_secret(config, TOKEN_PURPOSE)
        ),
        identity_secrets=identity_secrets,
        identity_required=identity_required,
        title=read("WEBCHAT_TITLE", _text(80), DEFAULT_TITLE),
        greeting=read("WEBCHAT_GREETING", _text(500), None),
        color=read("WEBCHAT_COLOR", _color, DEFAULT_COLOR),
        prechat=read("WEBCHAT_PRECHAT", _prechat, Prechat.OFF),
        session_days=read("WEBCHAT_SESSION_DAYS", _whole(1, 365), DEFAULT_SESSION_DAYS),
        text_max_chars=read("WEBCHAT_TEXT_MAX_CHARS", _whole(1, 20_000), DEFAULT_TEXT_MAX_CHARS),
        upload_max_bytes=upload_max,
        upload_types=config.media_types,
        messages_per_minute=read(
            "WEBCHAT_MESSAGES_PER_MINUTE", _whole(1, 10_000), DEFAULT_MESSAGES_PER_MINUTE
        ),
        sessions_per_minute=read(
            "WEBCHAT_SESSIONS_PER_MINUTE", _whole(1, 100_000), DEFAULT_SESSIONS_PER_MINUTE
        ),
        missing=() if origins or any(ORIGINS in problem for problem in invalid) else (ORIGINS,),
        invalid=tuple(invalid),
    )


def _secret(raw: str) -> str:
    if len(raw) < MIN_SECRET_LENGTH:  # the value is never echoed: it is a secret
        raise ValueError(f"must be at least {MIN_SECRET_LENGTH} characters")
    return raw


def _secrets(raw: str) -> tuple[bytes, ...]:
    return tuple(_secret(part.strip()).encode() for part in raw.split(",") if part.strip())


def _bool(raw: str) -> bool:
    value = raw.lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _whole(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return int(raw)

    return parse


def _text(limit: int) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if len(raw) > limit:
            raise ValueError(f"must be at most {limit} characters")
        return raw

    return parse


def _color(raw: str) -> str:
    if not COLOR.match(raw):
        raise ValueError("must be a colour written #rrggbb")
    return raw.lower()


def _prechat(raw: str) -> Prechat:
    try:
        return Prechat(raw.lower())
    except ValueError:
        raise ValueError("must be off, optional or required") from None
