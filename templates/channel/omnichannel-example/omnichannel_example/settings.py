"""The channel's settings, read from ``config.settings``: the server's environment, or else
the value an admin stored through the settings API (:data:`SETTINGS` declares them, through
the ``settings`` hook).

- ``EXAMPLE_API_TOKEN``: sent as ``Authorization: Bearer ...`` on every call to the API;
- ``EXAMPLE_WEBHOOK_SECRET``: the key of the HMAC-SHA256 signature the provider puts on
  webhooks and status callbacks;
- ``EXAMPLE_VERIFY_TOKEN``: what the provider presents when it checks the webhook URL;
- ``EXAMPLE_API_BASE_URL`` (optional): the provider's API; tests point it at a local fake.

A channel must load, and the server start, with none of its settings: the health report
then names what is missing, and a hook that needs a setting raises ChannelUnavailable
(503) naming it. So nothing here raises while reading; the ``require_*`` methods do, when
a hook needs the value. Secrets are kept out of ``repr`` and of every message.

The variables are read once per server configuration and version of the stored settings
(the core's ``settings_for``), not on every request: a value an admin changes is read anew
by the next hook call. ``configured`` and ``problems`` come from the core's
``ChannelSettings``.
"""

from __future__ import annotations

import attrs
from omnichannel_core.channel import (
    ChannelSettings,
    ChannelUnavailable,
    Config,
    Setting,
    settings_for,
)

REQUIRED = ("EXAMPLE_API_TOKEN", "EXAMPLE_WEBHOOK_SECRET", "EXAMPLE_VERIFY_TOKEN")
DEFAULT_API_BASE_URL = "https://api.example.com"
SETTINGS = [
    Setting("EXAMPLE_API_TOKEN", "the API token, sent on every call", secret=True, required=True),
    Setting(
        "EXAMPLE_WEBHOOK_SECRET", "the key webhooks are signed with", secret=True, required=True
    ),
    Setting(
        "EXAMPLE_VERIFY_TOKEN",
        "what the provider presents in the handshake",
        secret=True,
        required=True,
    ),
    Setting(
        "EXAMPLE_API_BASE_URL",
        f"the provider's API, {DEFAULT_API_BASE_URL} unless set",
        storable=False,
    ),
]
"""Every variable the channel reads, each with a line for the admins who set it. Where the
channel connects (it gets the token) is not storable: the environment's only."""


@attrs.frozen
class ExampleSettings(ChannelSettings):
    """What the channel needs to receive and send.

    :param missing: the required variables that are not set, in the order of :data:`REQUIRED`.
    :param invalid: a sentence for each variable that is set to something unusable.
    """

    api_token: str | None = attrs.field(repr=False)
    webhook_secret: str | None = attrs.field(repr=False)
    verify_token: str | None = attrs.field(repr=False)
    api_base_url: str
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> ExampleSettings:
        """The settings of ``config``: read on first use, then kept for that object."""
        return settings_for(config, parse_settings)

    def require_api(self, channel: str) -> tuple[str, str]:
        """The API's base URL and token, which sends and the health check need."""
        if self.invalid:
            raise ChannelUnavailable(
                f"{channel} channel not configured: {self.problems}", channel=channel
            )
        return self.api_base_url, _required(self.api_token, "EXAMPLE_API_TOKEN", channel)

    def require_webhook_secret(self, channel: str) -> str:
        return _required(self.webhook_secret, "EXAMPLE_WEBHOOK_SECRET", channel)

    def require_verify_token(self, channel: str) -> str:
        return _required(self.verify_token, "EXAMPLE_VERIFY_TOKEN", channel)


def _required(value: str | None, name: str, channel: str) -> str:
    if value is None:
        raise ChannelUnavailable(
            f"{channel} channel not configured: missing {name}", channel=channel
        )
    return value


def parse_settings(config: Config) -> ExampleSettings:
    """Read the ``EXAMPLE_*`` variables; what is missing or unusable is recorded, not raised."""
    values = {name: config.settings.get(name, "").strip() or None for name in REQUIRED}
    base_url = config.settings.get("EXAMPLE_API_BASE_URL", "").strip() or DEFAULT_API_BASE_URL
    invalid = []
    if not base_url.startswith(("https://", "http://")):
        invalid.append("EXAMPLE_API_BASE_URL must start with https:// or http://")
    return ExampleSettings(
        api_token=values["EXAMPLE_API_TOKEN"],
        webhook_secret=values["EXAMPLE_WEBHOOK_SECRET"],
        verify_token=values["EXAMPLE_VERIFY_TOKEN"],
        api_base_url=base_url.rstrip("/"),
        missing=tuple(name for name in REQUIRED if values[name] is None),
        invalid=tuple(invalid),
    )
