"""The Facebook Messenger channel's hook implementations: thin, each handing over to its module.

- ``receive``: ``POST /api/channels/facebook/webhook``, every event of a signed batch:
  messages, postbacks, referrals, receipts and echoes (:mod:`omnichannel_facebook.webhook`).
  Plain, not a coroutine: customers' names are looked up over the network.
- ``send``: the Send API, on the channel's thread pool (:mod:`omnichannel_facebook.outbound`).
- ``media_fetch``: an attachment's CDN URL, for the core's media store
  (:mod:`omnichannel_facebook.media`).
- ``health``: configuration, and the page token checked against the Graph API
  (:mod:`omnichannel_facebook.health`).
- ``settings``: the ``FACEBOOK_*`` variables it reads (:mod:`omnichannel_facebook.settings`).
- ``channel_routes``: the subscription handshake, ``GET webhook``
  (:mod:`omnichannel_facebook.routes`).

There is no ``status``: Messenger sends receipts to the webhook with everything else.
"""

from __future__ import annotations

from omnichannel_core.channel import (
    ChannelHealth,
    ChannelRoute,
    Config,
    Media,
    MediaFetch,
    OutboundMessage,
    SendPolicy,
    SendResult,
    Setting,
    WebhookRequest,
    WebhookResult,
    hookimpl,
)
from omnichannel_facebook.health import channel_health
from omnichannel_facebook.media import media_fetch_of
from omnichannel_facebook.outbound import deliver, send_policy
from omnichannel_facebook.routes import facebook_routes
from omnichannel_facebook.settings import SETTINGS, FacebookSettings
from omnichannel_facebook.webhook import receive_result


class FacebookChannel:
    """Facebook Messenger through the Graph API (entry point ``facebook``)."""

    @hookimpl
    def receive(self, channel: str, request: WebhookRequest, config: Config) -> WebhookResult:
        return receive_result(request, FacebookSettings.from_config(config), channel)

    @hookimpl
    def send(self, channel: str, message: OutboundMessage, config: Config) -> SendResult:
        return deliver(message, FacebookSettings.from_config(config), channel)

    @hookimpl
    async def send_policy(self) -> SendPolicy:
        return send_policy()

    @hookimpl
    async def media_fetch(self, media: Media, config: Config) -> MediaFetch:
        return media_fetch_of(media, config)

    @hookimpl
    def health(self, config: Config) -> ChannelHealth:
        return channel_health(FacebookSettings.from_config(config))

    @hookimpl
    async def settings(self) -> list[Setting]:
        return list(SETTINGS)

    @hookimpl
    def channel_routes(self, channel: str, config: Config) -> list[ChannelRoute]:
        return facebook_routes(channel, config)
