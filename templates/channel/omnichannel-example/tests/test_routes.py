"""The subscription handshake and the webhook's input checks, in-process (the kit's
``omnichannel_app`` fixture): the channel object is registered without installing it."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

import pytest
from omnichannel_core.testing import InProcessApp

from omnichannel_example.channel import ExampleChannel

ENVIRON = {
    "EXAMPLE_API_TOKEN": "test-api-token",
    "EXAMPLE_WEBHOOK_SECRET": "test-webhook-secret",
    "EXAMPLE_VERIFY_TOKEN": "test-verify-token",
}


@pytest.fixture
def app(omnichannel_app: Callable[..., InProcessApp]) -> InProcessApp:
    return omnichannel_app({"example": ExampleChannel()}, environ=ENVIRON)


def signed_post(body: bytes) -> dict[str, object]:
    digest = hmac.new(b"test-webhook-secret", body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Example-Signature": f"sha256={digest}"}
    return {"body": body, "headers": headers}


def test_handshake_answers_the_challenge(app: InProcessApp) -> None:
    """GET webhook with the verify token answers the challenge as plain text, without an
    API key; with a wrong token it answers 403."""

    async def scenario(conductor):
        path = "/api/channels/example/webhook"
        query = {"verify_token": "test-verify-token", "challenge": "c-42"}
        answered = await conductor.simulate_get(path, params=query)
        assert (answered.status_code, answered.text) == (200, "c-42")
        wrong = await conductor.simulate_get(path, params={**query, "verify_token": "no"})
        assert wrong.status_code == 403

    app.run(scenario)


def test_handshake_without_verify_token_says_why(
    omnichannel_app: Callable[..., InProcessApp],
) -> None:
    """Unconfigured, the handshake answers 503 naming the missing variable."""
    unconfigured = omnichannel_app({"example": ExampleChannel()})

    async def scenario(conductor):
        answered = await conductor.simulate_get(
            "/api/channels/example/webhook", params={"verify_token": "", "challenge": "c"}
        )
        assert answered.status_code == 503
        assert "EXAMPLE_VERIFY_TOKEN" in answered.json["message"]

    unconfigured.run(scenario)


def test_attachments_are_stored_as_media(app: InProcessApp) -> None:
    """A webhook message with an attachment and no text is stored with its media."""
    attachment = {"url": "https://files.test/a.png", "content_type": "image/png"}
    message = {"id": "m-media", "from": "user-7", "attachments": [attachment]}
    body = json.dumps({"messages": [message]}).encode()

    async def scenario(conductor):
        posted = await conductor.simulate_post("/api/channels/example/webhook", **signed_post(body))
        assert posted.status_code == 200, posted.text
        listed = await conductor.simulate_get(
            "/api/conversations", params={"channel": "example"}, headers=app.headers
        )
        (conversation,) = listed.json["items"]
        messages = await conductor.simulate_get(
            f"/api/conversations/{conversation['id']}/messages", headers=app.headers
        )
        (stored,) = messages.json["items"]
        # kept as a link: this channel has no media_fetch, so the media store holds no copy
        assert stored["media"] == [
            {
                **attachment,
                "filename": None,
                "id": None,
                "size": None,
                "role": "attachment",
                "content_id": None,
            }
        ]

    app.run(scenario)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"messages": [{"from": "user-7", "text": "no id"}]}, "id"),
        ({"messages": [{"id": "m-1", "from": "user-7"}]}, "text"),
        ({"messages": [{"id": "m-1", "from": "u", "text": "t", "sent_at": "May 1"}]}, "sent_at"),
        ({"messages": "not a list"}, "messages"),
    ],
)
def test_malformed_webhook_is_refused_naming_the_field(
    app: InProcessApp, payload: dict[str, object], field: str
) -> None:
    """A signed webhook the channel cannot read answers 400 naming the field, so the
    provider's (or your) mistake is plain; nothing is stored."""
    body = json.dumps(payload).encode()

    async def scenario(conductor):
        posted = await conductor.simulate_post("/api/channels/example/webhook", **signed_post(body))
        assert posted.status_code == 400
        assert posted.json["message"].startswith(field)
        listed = await conductor.simulate_get(
            "/api/conversations", params={"channel": "example"}, headers=app.headers
        )
        assert listed.json["items"] == []

    app.run(scenario)
