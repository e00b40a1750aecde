"""The webchat channel's hook implementations (entry point ``webchat``).

- ``channel_routes``: the widget's script and the visitor API (:mod:`omnichannel_webchat.routes`).
- ``send``: nothing leaves the server: an agent's message is ``sent`` as soon as the outbox
  hands it over, and each of the visitor's open widgets, on whichever worker or server,
  takes it from the event log (:mod:`omnichannel_webchat.stream`), then marks it
  ``delivered``; the widget marks it ``read``.
- ``send_policy``: unpaced, and safe to resend (a resend changes nothing).
- ``health``: the allowed sites, or what is missing.
- ``settings``: the ``WEBCHAT_*`` variables it reads (:mod:`omnichannel_webchat.settings`).
"""

from __future__ import annotations

from omnichannel_core.channel import (
    ChannelHealth,
    ChannelInbox,
    ChannelRoute,
    Config,
    OutboundMessage,
    SendPolicy,
    SendResult,
    Setting,
    hookimpl,
)
from omnichannel_webchat.routes import visitor_routes
from omnichannel_webchat.settings import SETTINGS, WebchatSettings
from omnichannel_webchat.visitors import Visitors


class WebchatChannel:
    """A chat widget on the business's own sites."""

    @hookimpl
    def channel_routes(
        self, channel: str, config: Config, inbox: ChannelInbox
    ) -> list[ChannelRoute]:
        visitors = Visitors(inbox, lambda: WebchatSettings.from_config(config))
        return visitor_routes(visitors, config)

    @hookimpl
    async def send(self, channel: str, message: OutboundMessage) -> SendResult:
        return SendResult(provider_message_id=message.id)

    @hookimpl
    async def send_policy(self, config: Config) -> SendPolicy:
        return SendPolicy(rate=0, resend_safe=True)

    @hookimpl
    async def health(self, config: Config) -> ChannelHealth:
        settings = WebchatSettings.from_config(config)
        if settings.problems:
            return ChannelHealth(ok=False, detail=settings.problems)
        return ChannelHealth(
            ok=True,
            detail="widget allowed on " + ", ".join(settings.origins),
            checks={
                "origins": list(settings.origins),
                "identity_verification": bool(settings.identity_secrets),
                "identity_required": settings.identity_required,
            },
        )

    @hookimpl
    async def settings(self) -> list[Setting]:
        return list(SETTINGS)
