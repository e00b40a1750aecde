"""What a channel's ``receive`` is given: the raw body, lower-case headers, and the URL the
provider called as the provider saw it (``web/body.py``)."""

from __future__ import annotations

import json

import pytest
from falcon import testing

from omnichannel_core import hookimpl
from omnichannel_core.hooktypes import WebhookRequest, WebhookResponse, WebhookResult
from omnichannel_core.testing.in_process import run_app

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "chat.example.com"}


class Mirror:
    """Answers each webhook with what it was given."""

    @hookimpl
    async def receive(self, request: WebhookRequest) -> WebhookResult:
        seen = {
            "url": request.url,
            "body": request.body.decode(),
            "header": request.header("X-Custom"),
            "query": dict(request.query),
        }
        return WebhookResult(response=WebhookResponse(200, json.dumps(seen).encode()))


def mirrored(tmp_path, headers: dict[str, str], **settings) -> dict:
    seen: dict = {}

    async def scenario(conductor: testing.ASGIConductor) -> None:
        response = await conductor.simulate_post(
            "/api/channels/mirror/webhook",
            params={"a": "1"},
            body=b"raw=body&x=1",
            headers={"X-Custom": "yes", **headers},
        )
        seen.update(json.loads(response.text))

    run_app(tmp_path, {"mirror": Mirror()}, scenario, **settings)
    return seen


def test_channel_gets_raw_body_headers_and_query(tmp_path):
    """The body arrives byte for byte, headers by any case, query parameters parsed."""
    seen = mirrored(tmp_path, {})
    assert seen["body"] == "raw=body&x=1"
    assert seen["header"] == "yes"
    assert seen["query"] == {"a": "1"}


def test_url_is_the_public_url_when_configured(tmp_path):
    """With OMNICHANNEL_PUBLIC_URL the URL is that base plus the path and query, whatever the
    Host or forwarded headers say."""
    seen = mirrored(tmp_path, FORWARDED, public_url="https://hooks.example.org")
    assert seen["url"] == "https://hooks.example.org/api/channels/mirror/webhook?a=1"


@pytest.mark.parametrize(
    ("trust_proxy", "expected"),
    [
        (True, "https://chat.example.com/api/channels/mirror/webhook?a=1"),
        (False, "http://falconframework.org/api/channels/mirror/webhook?a=1"),
    ],
)
def test_forwarded_headers_count_only_when_the_proxy_is_trusted(tmp_path, trust_proxy, expected):
    """X-Forwarded-Proto/Host name the public URL only with OMNICHANNEL_TRUST_PROXY; otherwise
    anyone could send them to make a signature check pass against another URL."""
    assert mirrored(tmp_path, FORWARDED, trust_proxy=trust_proxy)["url"] == expected
