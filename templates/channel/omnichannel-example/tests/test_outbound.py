"""Sending against a fake of the provider's API (the kit's ``fake_provider`` fixture): the
request the provider documents, one per call, and each of its answers turned into the
right error (the core's outbox retries what is retryable, at the channel's send policy)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from omnichannel_core.channel import (
    Media,
    OutboundMessage,
    SendFailed,
    SendOutcomeUnknown,
)
from omnichannel_core.testing import FakeProvider, ScriptedResponse, free_port

from omnichannel_example import outbound
from omnichannel_example.channel import ExampleChannel
from omnichannel_example.settings import ExampleSettings


def settings(base_url: str) -> ExampleSettings:
    return ExampleSettings(
        api_token="test-api-token",
        webhook_secret="test-webhook-secret",
        verify_token="test-verify-token",
        api_base_url=base_url,
    )


MESSAGE = OutboundMessage(
    id="msg_1",
    conversation_id="conv_1",
    to="user-42",
    text="Hello",
    media=(Media(url="https://files.test/a.png", content_type="image/png"),),
)


def send(base_url: str) -> str:
    result = asyncio.run(outbound.deliver(MESSAGE, settings(base_url), "example"))
    return result.provider_message_id


def test_send_posts_the_documented_request(fake_provider: FakeProvider) -> None:
    """One POST /v1/messages with the bearer token, the core's message id as the
    idempotency key and the message as JSON; the provider's id is the result."""
    fake_provider.queue(ScriptedResponse.json(201, {"id": "p-1"}))
    assert send(fake_provider.url) == "p-1"
    (request,) = fake_provider.requests
    assert (request.method, request.path) == ("POST", "/v1/messages")
    assert request.headers["authorization"] == "Bearer test-api-token"
    assert request.headers["idempotency-key"] == "msg_1"
    assert request.json() == {
        "to": "user-42",
        "text": "Hello",
        "attachments": [{"url": "https://files.test/a.png", "content_type": "image/png"}],
    }


def test_refusal_is_not_retried(fake_provider: FakeProvider) -> None:
    """A 4xx is final: SendFailed with the provider's error code, not retryable, after one
    request."""
    error = {"error": {"code": "invalid_recipient", "message": "no such user"}}
    fake_provider.queue(ScriptedResponse.json(400, error))
    with pytest.raises(SendFailed) as raised:
        send(fake_provider.url)
    assert (raised.value.code, raised.value.retryable) == ("invalid_recipient", False)
    assert "no such user" in raised.value.message
    assert len(fake_provider.requests) == 1


def test_rate_limit_is_retryable_and_throttled(fake_provider: FakeProvider) -> None:
    """A 429 is not retried here (the outbox does, at a slower pace): SendFailed, retryable
    and throttled, after one request."""
    fake_provider.queue(ScriptedResponse.json(429, {"error": {"code": "rate_limited"}}))
    with pytest.raises(SendFailed) as raised:
        send(fake_provider.url)
    failure = raised.value
    assert (failure.code, failure.retryable, failure.throttled) == ("rate_limited", True, True)
    assert len(fake_provider.requests) == 1


def test_retry_after_is_passed_on() -> None:
    """The provider's Retry-After (whole seconds) goes with the failure: the outbox does
    not try again sooner."""
    answer = httpx.Response(429, headers={"Retry-After": "7"}, json={"error": {}})
    assert outbound.refusal(answer).retry_after == 7.0
    assert outbound.refusal(httpx.Response(503, json={})).retry_after is None


def test_outage_is_retryable_after_one_request(fake_provider: FakeProvider) -> None:
    """A 503: SendFailed, retryable (the outbox tries again later), after one request."""
    fake_provider.queue(ScriptedResponse.json(503, {}))
    with pytest.raises(SendFailed) as raised:
        send(fake_provider.url)
    assert (raised.value.code, raised.value.retryable) == ("503", True)
    assert len(fake_provider.requests) == 1


def test_unreachable_provider_fails_retryable() -> None:
    """Nobody listening: SendFailed, code unreachable, retryable."""
    with pytest.raises(SendFailed) as raised:
        send(f"http://127.0.0.1:{free_port()}")
    assert (raised.value.code, raised.value.retryable) == ("unreachable", True)


def test_lost_answer_is_an_unknown_outcome(
    fake_provider: FakeProvider, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider got the request but its answer never came: SendOutcomeUnknown, and no
    second request here (the outbox sends it again later, with the same key)."""
    monkeypatch.setattr(outbound, "TIMEOUT", outbound.httpx.Timeout(0.2))
    fake_provider.queue(ScriptedResponse.json(201, {"id": "p-late"}, delay=1.0))
    with pytest.raises(SendOutcomeUnknown):
        send(fake_provider.url)
    assert len(fake_provider.requests) == 1


def test_send_policy_is_the_providers_limits() -> None:
    """The outbox paces the channel at the provider's 20 messages a second, and may resend a
    message in doubt: the provider keeps one message per Idempotency-Key."""
    policy = ExampleChannel().send_policy()
    assert (policy.rate, policy.resend_safe) == (20.0, True)
