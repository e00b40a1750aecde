"""The Facebook channel's own route: the webhook subscription handshake.

``GET /api/channels/facebook/webhook?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...``
is how Facebook checks the callback URL when the webhook is set up in the app dashboard: the
answer must be the challenge, as plain text, and only for the verify token the operator
typed there (``FACEBOOK_VERIFY_TOKEN``, compared in constant time). Anything else is 403.
The route is public (Facebook sends no credentials); the core serves ``POST`` on the same
path (the events themselves).
"""

from __future__ import annotations

import hmac
import re

import falcon
import falcon.asgi

from omnichannel_core.channel import (
    ChannelRoute,
    Config,
    InvalidInput,
    WebhookRejected,
)
from omnichannel_facebook.settings import FacebookSettings

CHALLENGE = re.compile(r"^[\x21-\x7e]{1,256}$")
"""Facebook's challenge is a number; anything printable and short is echoed, nothing else."""


def verify_subscription(
    mode: str | None, token: str | None, challenge: str | None, verify_token: str
) -> str:
    """The challenge to echo; WebhookRejected unless the mode is ``subscribe`` and the token
    is the verify token, InvalidInput when the challenge is missing or unusable."""
    presented = (token or "").encode()
    if mode != "subscribe" or not hmac.compare_digest(presented, verify_token.encode()):
        raise WebhookRejected(
            "subscription not verified: hub.mode must be subscribe and hub.verify_token must"
            " be FACEBOOK_VERIFY_TOKEN"
        )
    if challenge is None or not CHALLENGE.match(challenge):
        raise InvalidInput(
            "hub.challenge: required, at most 256 printable characters", field="hub.challenge"
        )
    return challenge


class SubscriptionVerification:
    """``GET webhook``: answers Facebook's handshake with ``hub.challenge``."""

    def __init__(self, channel: str, config: Config) -> None:
        self.channel = channel
        self.config = config

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        settings = FacebookSettings.from_config(self.config)
        verify_token = settings.require_verify_token(self.channel)  # 503 when unset
        challenge = verify_subscription(
            req.get_param("hub.mode"),
            req.get_param("hub.verify_token"),
            req.get_param("hub.challenge"),
            verify_token,
        )
        resp.status = falcon.HTTP_200
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = challenge


def facebook_routes(channel: str, config: Config) -> list[ChannelRoute]:
    return [ChannelRoute("webhook", SubscriptionVerification(channel, config), public=True)]
