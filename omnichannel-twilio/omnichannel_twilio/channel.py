"""The Twilio channel's hook implementations: thin, each handing over to its module.

- ``receive``: ``POST /api/channels/twilio/webhook`` (SMS and WhatsApp), signature checked,
  answered with empty TwiML once stored (:mod:`omnichannel_twilio.inbound`).
- ``status``: ``POST /api/channels/twilio/status``, Twilio's status callbacks
  (:mod:`omnichannel_twilio.status_callbacks`).
- ``send``: through the official SDK, on the channel's thread pool, once per call; and
  ``send_policy``: Twilio's rates, per sender (:mod:`omnichannel_twilio.outbound`).
- ``media_fetch``: an inbound message's ``MediaUrl``, with the account's basic auth, for
  the core's media store (:mod:`omnichannel_twilio.media`).
- ``health``: configuration, and credentials checked against Twilio's API
  (:mod:`omnichannel_twilio.health`).
- ``settings``: the ``TWILIO_*`` variables it reads (:mod:`omnichannel_twilio.settings`).
- ``channel_routes``: the seed's ``send/whatsapp``, ``send/sms`` and ``message/{id}/status``
  (:mod:`omnichannel_twilio.routes`).
"""

from __future__ import annotations

from omnichannel_core.channel import (
    ChannelHealth,
    ChannelInbox,
    ChannelRoute,
    Config,
    Media,
    MediaFetch,
    OutboundMessage,
    SendPolicy,
    SendResult,
    Setting,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
    hookimpl,
)
from omnichannel_twilio.health import channel_health
from omnichannel_twilio.inbound import EMPTY_TWIML, TWIML_CONTENT_TYPE, inbound_message
from omnichannel_twilio.media import media_fetch_of
from omnichannel_twilio.outbound import deliver, send_policy
from omnichannel_twilio.routes import twilio_routes
from omnichannel_twilio.settings import SETTINGS, TwilioSettings
from omnichannel_twilio.signature import verify_signature
from omnichannel_twilio.status_callbacks import status_result

TWIML_RESPONSE = WebhookResponse(200, EMPTY_TWIML, TWIML_CONTENT_TYPE)


class TwilioChannel:
    """WhatsApp and SMS through Twilio (entry point ``twilio``)."""

    @hookimpl
    async def receive(self, channel: str, request: WebhookRequest, config: Config) -> WebhookResult:
        # a coroutine: the work is a few microseconds of CPU, not worth a thread hop
        _, auth_token = TwilioSettings.from_config(config).require_credentials(channel)
        params = verify_signature(request, auth_token)
        return WebhookResult(messages=(inbound_message(params),), response=TWIML_RESPONSE)

    @hookimpl
    async def status(self, channel: str, request: WebhookRequest, config: Config) -> WebhookResult:
        _, auth_token = TwilioSettings.from_config(config).require_credentials(channel)
        params = verify_signature(request, auth_token)
        return status_result(params, message_id=request.query.get("message_id"))

    @hookimpl
    async def send_policy(self, config: Config) -> SendPolicy:
        return send_policy(TwilioSettings.from_config(config))

    @hookimpl
    def send(self, channel: str, message: OutboundMessage, config: Config) -> SendResult:
        # plain: the SDK blocks, so the core runs this on the channel's thread pool
        return deliver(message, TwilioSettings.from_config(config), channel)

    @hookimpl
    async def media_fetch(self, channel: str, media: Media, config: Config) -> MediaFetch:
        return media_fetch_of(media, config, channel)

    @hookimpl
    def health(self, config: Config) -> ChannelHealth:
        return channel_health(TwilioSettings.from_config(config))

    @hookimpl
    async def settings(self) -> list[Setting]:
        return list(SETTINGS)

    @hookimpl
    def channel_routes(
        self, channel: str, config: Config, inbox: ChannelInbox
    ) -> list[ChannelRoute]:
        return twilio_routes(channel, inbox, config)
