"""The Twilio channel's settings, read from the server's configuration.

Each ``TWILIO_*`` variable comes from ``config.settings``: the environment, or else what an
admin stored through the settings API (:data:`SETTINGS` declares them);
``OMNICHANNEL_PUBLIC_URL`` is the server's own, from the environment only. Parsed once per
:class:`~omnichannel_core.config.Config` and version of the stored settings (through
:func:`~omnichannel_core.channel_settings.settings_for`) and never logged: the auth token is
kept out of ``repr`` and of every message built here.
"""

from __future__ import annotations

import re

import attrs

from omnichannel_core.channel import (
    ChannelSettings,
    ChannelUnavailable,
    Config,
    Setting,
    settings_for,
)

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
DEFAULT_API_BASE_URL = "https://api.twilio.com"
WHATSAPP_PREFIX = "whatsapp:"
SETTINGS = (
    Setting(
        "TWILIO_ACCOUNT_SID", "the account's SID (AC...), from Twilio's console", required=True
    ),
    Setting(
        "TWILIO_AUTH_TOKEN",
        "the account's auth token: signs Twilio's webhooks, authenticates every API call",
        secret=True,
        required=True,
    ),
    Setting(
        "TWILIO_PHONE_NUMBER",
        "the SMS number messages go out from (E.164, +15551234567); not needed when both"
        " TWILIO_MESSAGING_SERVICE_SID and TWILIO_WHATSAPP_NUMBER are set",
    ),
    Setting("TWILIO_WHATSAPP_NUMBER", "the WhatsApp sender (E.164); TWILIO_PHONE_NUMBER if unset"),
    Setting(
        "TWILIO_MESSAGING_SERVICE_SID",
        "a Messaging Service (MG...) SMS go out through, instead of TWILIO_PHONE_NUMBER",
    ),
    Setting(
        "TWILIO_API_BASE_URL",
        f"Twilio's API, {DEFAULT_API_BASE_URL} unless set (it gets the auth token)",
        storable=False,
    ),
    Setting(
        "TWILIO_MEDIA_HOSTS",
        "the hosts Twilio's media URLs redirect to (comma-separated, *.example.com for"
        " subdomains); Twilio's CDN unless set",
        storable=False,
    ),
)
"""Every variable the channel reads, for its ``settings`` hook; where it connects (the API,
the media hosts) from the environment only."""


@attrs.frozen
class TwilioSettings(ChannelSettings):
    """What the channel needs to receive and send.

    :param missing: the variables that are not set but must be, in the order an operator
        would set them.
    :param invalid: a sentence per variable that is set to something unusable.
    """

    account_sid: str | None
    auth_token: str | None = attrs.field(repr=False)
    phone_number: str | None
    whatsapp_number: str | None
    messaging_service_sid: str | None
    api_base_url: str
    public_url: str | None
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> TwilioSettings:
        """The settings of ``config``, parsed on first use and cached for that object."""
        return settings_for(config, parse_settings)

    def status_callback_url(self, channel: str) -> str:
        """Where Twilio posts delivery status for messages this server sends."""
        if not self.public_url:
            raise ChannelUnavailable("OMNICHANNEL_PUBLIC_URL is not set", channel=channel)
        return f"{self.public_url}/api/channels/{channel}/status"

    def require_credentials(self, channel: str) -> tuple[str, str]:
        """The account SID and auth token (what webhooks and API calls need), or
        ChannelUnavailable naming what is missing."""
        lacking = [name for name in CREDENTIALS if name in self.missing]
        if not self.account_sid or not self.auth_token:
            raise ChannelUnavailable(
                f"twilio channel not configured: missing {', '.join(lacking)}", channel=channel
            )
        return self.account_sid, self.auth_token

    def require_configured(self, channel: str) -> None:
        """ChannelUnavailable naming every missing or unusable variable, unless configured."""
        if not self.configured:
            raise ChannelUnavailable(
                f"twilio channel not configured: {self.problems}", channel=channel
            )


CREDENTIALS = ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN")


def _value(config: Config, name: str) -> str | None:
    value = config.settings.get(name, "").strip()
    return value or None


def parse_settings(config: Config) -> TwilioSettings:
    """Read the ``TWILIO_*`` variables and ``OMNICHANNEL_PUBLIC_URL`` from ``config``.

    Required: ``TWILIO_ACCOUNT_SID``, ``TWILIO_AUTH_TOKEN``, ``TWILIO_PHONE_NUMBER`` (not
    required when both ``TWILIO_MESSAGING_SERVICE_SID`` and ``TWILIO_WHATSAPP_NUMBER`` are
    set: SMS then go through the service, WhatsApp from that number) and
    ``OMNICHANNEL_PUBLIC_URL`` (the status callback URL of every send is built from it).
    """
    account_sid = _value(config, "TWILIO_ACCOUNT_SID")
    auth_token = _value(config, "TWILIO_AUTH_TOKEN")
    phone_number = _value(config, "TWILIO_PHONE_NUMBER")
    service_sid = _value(config, "TWILIO_MESSAGING_SERVICE_SID")
    whatsapp = _value(config, "TWILIO_WHATSAPP_NUMBER")
    if whatsapp and whatsapp.startswith(WHATSAPP_PREFIX):
        whatsapp = whatsapp.removeprefix(WHATSAPP_PREFIX)
    base_url = (_value(config, "TWILIO_API_BASE_URL") or DEFAULT_API_BASE_URL).rstrip("/")

    credentials = {"TWILIO_ACCOUNT_SID": account_sid, "TWILIO_AUTH_TOKEN": auth_token}
    missing = [name for name, value in credentials.items() if not value]
    if not phone_number and not (service_sid and whatsapp):
        missing.append("TWILIO_PHONE_NUMBER")
    if not config.public_url:
        missing.append("OMNICHANNEL_PUBLIC_URL")

    invalid = []
    numbers = {"TWILIO_PHONE_NUMBER": phone_number, "TWILIO_WHATSAPP_NUMBER": whatsapp}
    for name, number in numbers.items():
        if number and not E164.match(number):
            invalid.append(f"{name} must be an E.164 number like +15551234567")
    if not base_url.startswith(("https://", "http://")):
        invalid.append("TWILIO_API_BASE_URL must start with https:// or http://")

    return TwilioSettings(
        account_sid=account_sid,
        auth_token=auth_token,
        phone_number=phone_number,
        whatsapp_number=whatsapp or phone_number,
        messaging_service_sid=service_sid,
        api_base_url=base_url,
        public_url=config.public_url,
        missing=tuple(missing),
        invalid=tuple(invalid),
    )
