"""The Facebook channel's settings, read from the server's configuration.

Each ``FACEBOOK_*`` variable comes from ``config.settings``: the environment, or else what
an admin stored through the settings API (:data:`SETTINGS` declares them). Parsed once per
:class:`~omnichannel_core.config.Config` and version of the stored settings (through
:func:`~omnichannel_core.channel_settings.settings_for`) and never logged: the page access
token, the app secret and the verify token are kept out of ``repr`` and out of every message
built here.
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

DEFAULT_GRAPH_API_VERSION = "v21.0"
DEFAULT_GRAPH_API_BASE_URL = "https://graph.facebook.com"
GRAPH_API_VERSION = re.compile(r"^v\d{1,3}\.\d{1,3}$")
REQUIRED = ("FACEBOOK_PAGE_ACCESS_TOKEN", "FACEBOOK_APP_SECRET", "FACEBOOK_VERIFY_TOKEN")
"""In the order an operator sets them: the token to send, the secret that signs webhooks
(and every API call's ``appsecret_proof``), the token of the subscription handshake."""
SETTINGS = (
    Setting(
        "FACEBOOK_PAGE_ACCESS_TOKEN",
        "the page's access token, from the app's Messenger settings: sends as the page",
        secret=True,
        required=True,
    ),
    Setting(
        "FACEBOOK_APP_SECRET",
        "the app's secret: checks the webhooks' signatures, proves every API call",
        secret=True,
        required=True,
    ),
    Setting(
        "FACEBOOK_VERIFY_TOKEN",
        "a token of your choosing, given to Facebook for the webhook's subscription handshake",
        secret=True,
        required=True,
    ),
    Setting(
        "FACEBOOK_GRAPH_API_VERSION",
        f"the Graph API version, {DEFAULT_GRAPH_API_VERSION} unless set",
    ),
    Setting(
        "FACEBOOK_GRAPH_API_BASE_URL",
        f"the Graph API, {DEFAULT_GRAPH_API_BASE_URL} unless set (an egress proxy)",
        storable=False,
    ),
    Setting(
        "FACEBOOK_MEDIA_HOSTS",
        "the hosts attachments are fetched from (comma-separated, *.example.com for"
        " subdomains); Facebook's CDN unless set",
        storable=False,
    ),
)
"""Every variable the channel reads, for its ``settings`` hook; where it connects (the Graph
API, the media hosts) from the environment only."""


@attrs.frozen
class FacebookSettings(ChannelSettings):
    """What the channel needs to receive and send.

    :param missing: the required variables that are not set, in :data:`REQUIRED` order.
    :param invalid: a sentence per variable that is set to something unusable.
    """

    page_access_token: str | None = attrs.field(repr=False)
    app_secret: str | None = attrs.field(repr=False)
    verify_token: str | None = attrs.field(repr=False)
    graph_api_version: str = DEFAULT_GRAPH_API_VERSION
    graph_api_base_url: str = DEFAULT_GRAPH_API_BASE_URL
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> FacebookSettings:
        """The settings of ``config``, parsed on first use and cached for that object."""
        return settings_for(config, parse_settings)

    @property
    def can_call_graph(self) -> bool:
        """True when the Graph API can be called: token, secret and a usable URL."""
        usable = not any(problem.startswith("FACEBOOK_GRAPH_API") for problem in self.invalid)
        return bool(self.page_access_token and self.app_secret and usable)

    def require_app_secret(self, channel: str) -> str:
        """The app secret (webhook signatures need it), or ChannelUnavailable."""
        if not self.app_secret:
            raise ChannelUnavailable(
                "facebook channel not configured: missing FACEBOOK_APP_SECRET", channel=channel
            )
        return self.app_secret

    def require_verify_token(self, channel: str) -> str:
        """The verify token (the subscription handshake needs it), or ChannelUnavailable."""
        if not self.verify_token:
            raise ChannelUnavailable(
                "facebook channel not configured: missing FACEBOOK_VERIFY_TOKEN", channel=channel
            )
        return self.verify_token

    def require_graph(self, channel: str) -> None:
        """ChannelUnavailable naming what is missing or unusable, unless the Graph API can be
        called (sends need the token, the secret for ``appsecret_proof``, a usable URL)."""
        if not self.can_call_graph:
            raise ChannelUnavailable(
                f"facebook channel not configured: {self.problems}", channel=channel
            )


def _value(config: Config, name: str) -> str | None:
    value = config.settings.get(name, "").strip()
    return value or None


def parse_settings(config: Config) -> FacebookSettings:
    """Read the ``FACEBOOK_*`` variables from ``config``.

    Required: :data:`REQUIRED`. Optional: ``FACEBOOK_GRAPH_API_VERSION`` (``v21.0`` by
    default; ``vN.N``) and ``FACEBOOK_GRAPH_API_BASE_URL`` (``https://graph.facebook.com``;
    an egress proxy, or a local fake in tests).
    """
    values = {name: _value(config, name) for name in REQUIRED}
    version = _value(config, "FACEBOOK_GRAPH_API_VERSION") or DEFAULT_GRAPH_API_VERSION
    base_url = (_value(config, "FACEBOOK_GRAPH_API_BASE_URL") or DEFAULT_GRAPH_API_BASE_URL).rstrip(
        "/"
    )
    invalid = []
    if not GRAPH_API_VERSION.match(version):
        invalid.append("FACEBOOK_GRAPH_API_VERSION must look like v21.0")
    if not base_url.startswith(("https://", "http://")):
        invalid.append("FACEBOOK_GRAPH_API_BASE_URL must start with https:// or http://")
    return FacebookSettings(
        page_access_token=values["FACEBOOK_PAGE_ACCESS_TOKEN"],
        app_secret=values["FACEBOOK_APP_SECRET"],
        verify_token=values["FACEBOOK_VERIFY_TOKEN"],
        graph_api_version=version,
        graph_api_base_url=base_url,
        missing=tuple(name for name, value in values.items() if not value),
        invalid=tuple(invalid),
    )
