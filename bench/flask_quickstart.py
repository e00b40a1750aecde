"""The Flask baseline of ``bench.twilio_webhooks``: an SMS webhook shaped like Twilio's quickstart.

It is what Twilio's Python docs lead to ("Receive and reply to SMS" plus "Secure your Flask
app by validating incoming Twilio requests"): a Flask route behind a decorator that checks
``X-Twilio-Signature`` with the SDK's ``RequestValidator``, answering TwiML built with
``MessagingResponse``. It stores nothing. Two differences from the tutorial, both so that it
gets the very requests omnichannel gets: the route is omnichannel's path rather than ``/sms``,
and the URL validated is the public URL the requests were signed for
(``OMNICHANNEL_PUBLIC_URL`` + path, as a server behind a proxy must do) rather than
``request.url`` (our loopback address). An empty reply, as omnichannel sends.

Served with ``gunicorn --config python:omnichannel_core.gunicorn_conf --worker-class sync
'bench.flask_quickstart:app'`` (and ``--worker-class gthread``) by ``bench.twilio_webhooks``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, Response, abort, request
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

WEBHOOK_PATH = "/api/channels/twilio/webhook"

app = Flask(__name__)


def public_request_url() -> str:
    """The URL Twilio called: the configured public URL, this request's path and query."""
    base = os.environ.get("OMNICHANNEL_PUBLIC_URL", "").rstrip("/")
    query = request.query_string.decode()
    return base + request.path + (f"?{query}" if query else "")


def validate_twilio_request(view: Callable[..., Any]) -> Callable[..., Any]:
    """The tutorial's decorator: 403 unless the request is signed with our auth token."""

    @wraps(view)
    def decorated(*args: Any, **kwargs: Any) -> Any:
        validator = RequestValidator(os.environ.get("TWILIO_AUTH_TOKEN", ""))
        signature = request.headers.get("X-Twilio-Signature", "")
        if not validator.validate(public_request_url(), request.form, signature):
            abort(403)
        return view(*args, **kwargs)

    return decorated


@app.post(WEBHOOK_PATH)
@validate_twilio_request
def incoming_sms() -> Response:
    """Acknowledge the message with empty TwiML (no reply is sent to the customer)."""
    return Response(str(MessagingResponse()), mimetype="text/xml")
