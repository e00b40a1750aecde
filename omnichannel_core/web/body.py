"""Reading request bodies: size limits (413), media types (415) and JSON syntax (400)."""

from __future__ import annotations

import tempfile
from typing import Any, BinaryIO

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
SPOOL_IN_MEMORY = 1024 * 1024
"""How much of a streamed webhook body (:func:`spool_raw`) is kept in memory; the rest goes
to a temporary file (in the system's temporary folder: ``TMPDIR``)."""


def _too_large(limit: int) -> falcon.HTTPContentTooLarge:
    return falcon.HTTPContentTooLarge(description=f"request body is larger than {limit} bytes")


async def read_raw(req: falcon.asgi.Request, limit: int) -> bytes:
    """The whole body, or 413 when it is (or announces to be) larger than ``limit``."""
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in req.stream:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def spool_raw(req: falcon.asgi.Request, limit: int) -> BinaryIO:
    """The whole body in a temporary file, rewound: in memory up to
    :data:`SPOOL_IN_MEMORY`, on disk beyond, so a large body (an email with its
    attachments) is never held whole. 413 before anything is read when the body announces
    more than ``limit`` bytes, and as soon as it passes ``limit`` otherwise. The caller
    closes the file.

    The file is written on the event loop: a chunk is at most as large as the server's read
    buffer, and a write to a temporary file lands in the page cache."""
    if req.content_length is not None and req.content_length > limit:
        raise _too_large(limit)
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned
    try:
        size = 0
        async for chunk in req.stream:
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool  # type: ignore[return-value]  # a SpooledTemporaryFile is a binary file


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


def webhook_head(req: falcon.asgi.Request, config: Config) -> WebhookRequest:
    """The request as a channel sees it before its body is read (``webhook_body_limit``):
    everything but the body."""
    return _webhook_request(req, config, b"", None)


def _webhook_request(
    req: falcon.asgi.Request, config: Config, body: bytes, body_file: BinaryIO | None
) -> WebhookRequest:
    return WebhookRequest(
        method=req.method,
        url=public_url(req, config),
        path=req.path,
        headers={name.lower(): value for name, value in req.headers.items()},
        query={k: v[-1] if isinstance(v, list) else v for k, v in req.params.items()},
        body=body,
        remote_addr=client_address(req, config.trust_proxy, config.proxy_header),
        body_file=body_file,
    )


async def webhook_request(
    req: falcon.asgi.Request, config: Config, body_limit: int | None = None
) -> WebhookRequest:
    """The framework-free request a channel's ``receive`` or ``status`` gets: the body in
    ``body``, up to ``OMNICHANNEL_MAX_BODY_BYTES``; or, with ``body_limit`` (the channel's
    ``webhook_body_limit``), streamed to ``body_file`` (:func:`spool_raw`; the caller
    closes it) up to that many bytes, with ``body`` empty."""
    if body_limit is None:
        return _webhook_request(req, config, await read_raw(req, config.max_body_bytes), None)
    body_file = await spool_raw(req, body_limit)
    try:
        return _webhook_request(req, config, b"", body_file)
    except BaseException:
        body_file.close()
        raise
