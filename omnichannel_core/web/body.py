"""Reading request bodies: size limits (413), media types (415) and JSON syntax (400)."""

from __future__ import annotations

from typing import Any

import falcon
import falcon.asgi

from omnichannel_core.bodies.common import IdempotencyHeaders
from omnichannel_core.bodies.reading import read_text_fields
from omnichannel_core.config import Config
from omnichannel_core.errors import InvalidInput
from omnichannel_core.hooktypes import WebhookRequest
from omnichannel_core.serialization import parse_json
from omnichannel_core.web.client_address import client_address

CHUNK = 64 * 1024


async def read_raw(req: falcon.asgi.Request, limit: int) -> bytes:
    """The whole body, or 413 when it is (or announces to be) larger than ``limit``."""
    if req.content_length is not None and req.content_length > limit:
        raise falcon.HTTPContentTooLarge(description=f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise falcon.HTTPContentTooLarge(
                description=f"request body is larger than {limit} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


async def read_json_object(req: falcon.asgi.Request, limit: int) -> dict[str, Any]:
    """The body as a JSON object; 415 unless it is sent as JSON, 400 unless it parses."""
    if not _is_json(req.content_type):
        raise falcon.HTTPUnsupportedMediaType(description="send the body as application/json")
    data = parse_json(await read_raw(req, limit))
    if not isinstance(data, dict):
        raise InvalidInput("request body must be a JSON object")
    return data


def idempotency_key(req: falcon.asgi.Request) -> str | None:
    """The ``Idempotency-Key`` header, checked (400 naming it when malformed); None when
    absent. Routes that declare ``headers=IdempotencyHeaders`` get it in
    ``req.context.headers`` instead."""
    value = req.get_header("Idempotency-Key")
    if value is None:
        return None
    headers = read_text_fields({"Idempotency-Key": value}, IdempotencyHeaders)
    return headers.idempotency_key


def public_url(req: falcon.asgi.Request, config: Config) -> str:
    """The URL the provider called, as the provider saw it (signatures such as Twilio's are
    computed over it): ``OMNICHANNEL_PUBLIC_URL`` plus the path and query when set; else the
    ``Forwarded``/``X-Forwarded-*`` headers when ``OMNICHANNEL_TRUST_PROXY`` is on; else the
    URL as this server saw it. Forwarded headers are ignored unless trusted: anyone can send
    them."""
    if config.public_url:
        return config.public_url + req.relative_uri
    if config.trust_proxy:
        return req.forwarded_uri
    return req.uri


async def webhook_request(req: falcon.asgi.Request, config: Config) -> WebhookRequest:
    """The framework-free request a channel's ``receive`` or ``status`` gets."""
    body = await read_raw(req, config.max_body_bytes)
    return WebhookRequest(
        method=req.method,
        url=public_url(req, config),
        path=req.path,
        headers={name.lower(): value for name, value in req.headers.items()},
        query={k: v[-1] if isinstance(v, list) else v for k, v in req.params.items()},
        body=body,
        remote_addr=client_address(req, config.trust_proxy, config.proxy_header),
    )
