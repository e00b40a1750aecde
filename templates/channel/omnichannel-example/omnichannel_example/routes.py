"""The channel's own route: the provider's subscription handshake.

Before it sends webhooks to a URL, the provider checks it: ``GET webhook?verify_token=...
&challenge=...`` must answer the challenge, as plain text, and only when the token is the
one set in ``EXAMPLE_VERIFY_TOKEN``. The route shares its path with the core's ``POST
webhook`` and adds only ``GET``, which the core allows; it is public (the provider sends no
API key), so it authenticates the call itself.
"""

from __future__ import annotations

import hmac

import falcon
import falcon.asgi
from omnichannel_core.channel import (
    ChannelRoute,
    Config,
    InvalidInput,
    WebhookRejected,
)

from omnichannel_example.settings import ExampleSettings

MAX_CHALLENGE = 256


class WebhookVerification:
    """``GET webhook``: answers the challenge when the verify token matches, else 403."""

    def __init__(self, channel: str, config: Config) -> None:
        self.channel = channel
        self.config = config

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        expected = ExampleSettings.from_config(self.config).require_verify_token(self.channel)
        presented = req.get_param("verify_token") or ""
        if not hmac.compare_digest(presented.encode(), expected.encode()):
            raise WebhookRejected("missing or wrong verify_token", channel=self.channel)
        challenge = req.get_param("challenge") or ""
        if not challenge or len(challenge) > MAX_CHALLENGE:
            raise InvalidInput(f"challenge: required, at most {MAX_CHALLENGE} characters")
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = challenge


def channel_routes_for(channel: str, config: Config) -> list[ChannelRoute]:
    return [ChannelRoute("webhook", WebhookVerification(channel, config), public=True)]
