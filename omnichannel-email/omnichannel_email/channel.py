"""The email channel's hook implementations: thin, each handing over to its module.

- ``receive``: ``POST /api/channels/email/webhook``, a raw MIME message
  (``message/rfc822``) authenticated by ``EMAIL_INBOUND_SECRET``
  (:mod:`omnichannel_email.webhook`), parsed into a message or a bounce
  (:mod:`omnichannel_email.parse`); ``webhook_body_limit``: the secret checked on the
  headers, then mail up to ``EMAIL_MAX_MESSAGE_BYTES``, streamed to a file.
- ``send``: over SMTP, threaded on the conversation's earlier mail
  (:mod:`omnichannel_email.smtp`, :mod:`omnichannel_email.compose`); ``send_policy``;
  ``normalize_address``: one address, lower case, as mail that comes in is kept
  (:mod:`omnichannel_email.recipients`).
- ``health``: what is missing, and whether the mail servers take our credentials
  (:mod:`omnichannel_email.health`).
- ``settings``: the ``EMAIL_*`` variables it reads (:mod:`omnichannel_email.settings`).
- ``register_stores`` and ``register_jobs``: the IMAP poller and where it keeps its place
  (:mod:`omnichannel_email.imap`).
"""

from __future__ import annotations

from omnichannel_core.channel import (
    ChannelHealth,
    ChannelInbox,
    Config,
    OutboundMessage,
    SendPolicy,
    SendResult,
    Setting,
    WebhookRequest,
    WebhookResult,
    hookimpl,
)
from omnichannel_core.module import Job, ModuleContext, StoreSpec
from omnichannel_email import imap
from omnichannel_email.health import channel_health
from omnichannel_email.parse import mail_result
from omnichannel_email.recipients import normal_address
from omnichannel_email.settings import SETTINGS, EmailSettings
from omnichannel_email.smtp import deliver, send_policy
from omnichannel_email.webhook import authenticate, mail_source


class EmailChannel:
    """Email over SMTP and IMAP or a raw MIME webhook (entry point ``email``)."""

    @hookimpl
    def receive(self, channel: str, request: WebhookRequest, config: Config) -> WebhookResult:
        # plain: parsing a large mail is CPU work, so the core runs it on the channel's pool
        settings = EmailSettings.from_config(config)
        authenticate(request, settings, channel)
        return mail_result(mail_source(request), settings)

    @hookimpl
    def webhook_body_limit(self, channel: str, request: WebhookRequest, config: Config) -> int:
        # the secret is checked here, on the headers, before a byte of a mail is streamed
        settings = EmailSettings.from_config(config)
        authenticate(request, settings, channel)
        return settings.max_message_bytes

    @hookimpl
    async def send(
        self, channel: str, message: OutboundMessage, config: Config, inbox: ChannelInbox
    ) -> SendResult:
        return await deliver(message, EmailSettings.from_config(config), channel, inbox)

    @hookimpl
    async def normalize_address(self, address: str) -> str:
        return normal_address(address)

    @hookimpl
    async def send_policy(self, config: Config) -> SendPolicy:
        return send_policy(EmailSettings.from_config(config))

    @hookimpl
    async def health(self, config: Config) -> ChannelHealth:
        return await channel_health(EmailSettings.from_config(config))

    @hookimpl
    async def settings(self) -> list[Setting]:
        return list(SETTINGS)

    @hookimpl
    def register_stores(self, context: ModuleContext) -> list[StoreSpec]:
        return imap.stores()

    @hookimpl
    def register_jobs(self, context: ModuleContext) -> list[Job]:
        return imap.jobs(context)
