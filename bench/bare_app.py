"""The baseline: a bare Falcon ASGI app that reads the body and answers an empty 200.

It is served by the same gunicorn settings as omnichannel (``bench.inbound_webhooks`` runs
``gunicorn --config python:omnichannel_core.gunicorn_conf 'bench.bare_app:app'``), so the
difference between the two is what omnichannel does per webhook: verify the signature, parse,
store durably, log.
"""

from __future__ import annotations

import falcon
import falcon.asgi

WEBHOOK_PATH = "/api/channels/http/webhook"
TWILIO_WEBHOOK_PATH = "/api/channels/twilio/webhook"  # bench.twilio_webhooks


class BareWebhook:
    """Reads the whole body and answers 200 with no body, as omnichannel's webhook does."""

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await req.stream.read()
        resp.status = falcon.HTTP_200
        resp.content_type = "text/plain"
        resp.data = b""


def create_bare_app() -> falcon.asgi.App:
    app = falcon.asgi.App()
    app.add_route(WEBHOOK_PATH, BareWebhook())
    app.add_route(TWILIO_WEBHOOK_PATH, BareWebhook())
    return app


app = create_bare_app()
