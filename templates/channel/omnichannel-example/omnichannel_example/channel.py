"""The channel's hook implementations: thin, each handing over to its module.

- ``receive``: ``POST /api/channels/example/webhook``, the customer's messages, signature
  checked (:mod:`omnichannel_example.signature`, :mod:`omnichannel_example.payloads`).
- ``status``: ``POST /api/channels/example/status``, delivery statuses of what we sent,
  signed the same way.
- ``send``: ``POST {base}/v1/messages`` through httpx, one attempt per call
  (:mod:`omnichannel_example.outbound`).
- ``send_policy``: the provider's rate limit, and that it dedupes on the Idempotency-Key,
  for the outbox that paces and retries the sends.
- ``health``: settings present, API token accepted (:mod:`omnichannel_example.health`).
- ``settings``: the variables the channel reads, which admins may also store through the
  settings API (:mod:`omnichannel_example.settings`).
- ``channel_routes``: ``GET webhook``, the provider's subscription handshake
  (:mod:`omnichannel_example.routes`).

Every hook here is a coroutine: the work is either a few microseconds of CPU or an httpx
call awaited on the event loop. A hook that must call a blocking SDK is a plain ``def``
instead, and the core runs it on the channel's own threads.
"""

from __future__ import annotations

from omnichannel_core.channel import (
    ChannelHealth,
    ChannelRoute,
    Config,
    OutboundMessage,
    SendPolicy,
    SendResult,
    Setting,
    WebhookRequest,
    WebhookResult,
    hookimpl,
)

from omnichannel_example.health import channel_health
from omnichannel_example.outbound import SEND_POLICY, deliver
from omnichannel_example.payloads import inbound_messages, parse_body, status_updates
from omnichannel_example.routes import channel_routes_for
from omnichannel_example.settings import SETTINGS, ExampleSettings
from omnichannel_example.signature import verify_signature


class ExampleChannel:
    """The Example Messaging channel (entry point ``example``). The server makes one
    instance per worker; the hooks keep no state on it."""

    @hookimpl
    async def receive(self, channel: str, request: WebhookRequest, config: Config) -> WebhookResult:
        secret = ExampleSettings.from_config(config).require_webhook_secret(channel)
        verify_signature(request, secret)
        return WebhookResult(messages=inbound_messages(parse_body(request.body)))

    @hookimpl
    async def status(self, channel: str, request: WebhookRequest, config: Config) -> WebhookResult:
        secret = ExampleSettings.from_config(config).require_webhook_secret(channel)
        verify_signature(request, secret)
        return WebhookResult(statuses=status_updates(parse_body(request.body)))

    @hookimpl
    async def send(self, channel: str, message: OutboundMessage, config: Config) -> SendResult:
        return await deliver(message, ExampleSettings.from_config(config), channel)

    @hookimpl
    def send_policy(self) -> SendPolicy:
        # read once in a while by each job runner, never per message
        return SEND_POLICY

    @hookimpl
    async def health(self, channel: str, config: Config) -> ChannelHealth:
        return await channel_health(ExampleSettings.from_config(config), channel)

    @hookimpl
    def settings(self) -> list[Setting]:
        return SETTINGS

    @hookimpl
    def channel_routes(self, channel: str, config: Config) -> list[ChannelRoute]:
        # a plain function, called once per worker at start-up
        return channel_routes_for(channel, config)
