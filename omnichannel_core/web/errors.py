"""Every error becomes a JSON response here, and only here.

The body is always ``{"error": "<code>", "message": "<what is wrong>", ...details}``. Domain
errors are mapped by type; Falcon's own HTTP errors (unknown route, wrong method) go through
the same serializer; anything unexpected is logged with its traceback and answered with a
bare 500 that names the request id, never the traceback.
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable
from typing import Any

import falcon
import falcon.asgi
import structlog

from omnichannel_core.errors import (
    ChannelFailed,
    ChannelUnavailable,
    Conflict,
    DeliveryFailed,
    EventsExpired,
    Forbidden,
    HookNotImplemented,
    InvalidInput,
    NotFound,
    OmnichannelError,
    RateLimited,
    RecipientOptedOut,
    SendFailed,
    SendOutcomeUnknown,
    Unauthenticated,
    UnsupportedMediaType,
    WebhookRejected,
)
from omnichannel_core.serialization import to_json
from omnichannel_core.web.prefer import applied, prefer_wait

log = structlog.get_logger("omnichannel.web")

STATUS_BY_ERROR: list[tuple[type[OmnichannelError], int, str]] = [
    (UnsupportedMediaType, 415, "unsupported_media_type"),
    (InvalidInput, 400, "invalid_input"),
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (WebhookRejected, 403, "webhook_rejected"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (EventsExpired, 410, "events_expired"),
    (RecipientOptedOut, 422, "recipient_opted_out"),
    (RateLimited, 429, "too_many_requests"),
    (HookNotImplemented, 501, "not_implemented"),
    (ChannelFailed, 502, "channel_failed"),
    (ChannelUnavailable, 503, "channel_unavailable"),
]


# Codes that must not follow Python's phrase for the status, which changes between versions
# (413 is "Request Entity Too Large" before 3.13, "Content Too Large" from it).
FIXED_CODES = {413: "content_too_large"}


def _slug(status: int) -> str:
    if status in FIXED_CODES:
        return FIXED_CODES[status]
    try:
        return http.HTTPStatus(status).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def _write(resp: falcon.asgi.Response, status: int, body: dict[str, Any]) -> None:
    resp.status = status
    resp.media = body
    resp.content_type = falcon.MEDIA_JSON


def _status_of(error: OmnichannelError) -> tuple[int, str]:
    for error_type, status, code in STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return status, code
    return 400, "bad_request"


async def handle_domain_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: OmnichannelError, params: Any
) -> None:
    status, code = _status_of(error)
    _write(resp, status, {"error": code, "message": error.message, **error.details})
    if isinstance(error, Unauthenticated):
        resp.set_header("WWW-Authenticate", 'Bearer realm="omnichannel"')
    elif isinstance(error, RateLimited):
        resp.set_header("Retry-After", str(error.retry_after))


async def handle_delivery_failed(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: DeliveryFailed, params: Any
) -> None:
    cause = error.cause
    if isinstance(cause, SendOutcomeUnknown):
        status, code = 504, "send_outcome_unknown"
    elif isinstance(cause, SendFailed):
        status, code = (502, "provider_unavailable") if cause.retryable else (422, "send_rejected")
    else:
        status, code = _status_of(cause)
    body = {
        "error": code,
        "message": cause.message,
        **cause.details,
        "message_id": error.stored.id,
        "stored_message": to_json(error.stored),
    }
    _write(resp, status, body)
    waited = prefer_wait(req)  # a delivery failure is only answered to a caller who waited
    if waited:
        applied(resp, waited)


async def handle_http_error(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: falcon.HTTPError, params: Any
) -> None:
    status = error.status_code
    message = error.description or _slug(status).replace("_", " ")
    if status == 404 and not error.description:
        message = f"no route matches {req.path}"
    elif status == 405:
        message = f"{req.method} is not allowed on {req.path}"
    _write(resp, status, {"error": _slug(status), "message": message})
    if error.headers:  # a dict or a list of (name, value) pairs, as HTTPError takes them
        resp.set_headers(error.headers)


async def handle_unexpected(
    req: falcon.asgi.Request, resp: falcon.asgi.Response, error: Exception, params: Any
) -> None:
    log.exception("request_crashed", error_type=type(error).__name__)
    request_id = getattr(req.context, "request_id", None)
    _write(
        resp,
        500,
        {"error": "internal_error", "message": "internal error", "request_id": request_id},
    )


ErrorHandler = Callable[[falcon.asgi.Request, falcon.asgi.Response, Any, Any], Awaitable[None]]

WEBSOCKET_INTERNAL_ERROR = 1011
MAX_CLOSE_REASON = 123  # bytes: a close frame's payload is 125, two of them the code


def close_reason(message: str) -> str:
    """``message`` cut to what a WebSocket close frame carries (123 bytes of UTF-8, never
    half a character)."""
    return message.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")


def _also_for_websockets(handler: ErrorHandler) -> Callable[..., Awaitable[None]]:
    """``handler``, which also closes a WebSocket that failed: Falcon calls error handlers
    with no response and the socket as ``ws`` then. The close code is 3000 + the status the
    handler answers over HTTP (3401, 3403, 3429...), or 1011 for a crash, and the reason is
    the error's message, so that both kinds of request fail for the same reasons.

    A socket refused before it was accepted (authentication) is accepted and closed at
    once: closing it unaccepted makes the server answer the handshake with a bare 403,
    and a browser's WebSocket sees close codes and reasons, never HTTP statuses."""

    async def handle(
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response | None,
        error: Any,
        params: Any,
        ws: falcon.asgi.WebSocket | None = None,
    ) -> None:
        if ws is None:
            assert resp is not None
            await handler(req, resp, error, params)
            return
        if isinstance(error, falcon.WebSocketDisconnected | OSError) or ws.closed:
            # The client left: there is no one to tell. Falcon's close() does not translate
            # the ASGI server's error for that, which the ASGI spec makes an OSError.
            log.info("websocket_client_gone", error_type=type(error).__name__)
            return
        answer = falcon.asgi.Response()
        await handler(req, answer, error, params)
        status = answer.status_code
        message = answer.media.get("message", "") if isinstance(answer.media, dict) else ""
        if ws.unaccepted:
            await ws.accept()
        code = WEBSOCKET_INTERNAL_ERROR if status >= 500 else 3000 + status
        await ws.close(code, reason=close_reason(message))

    return handle


def install_error_handlers(app: falcon.asgi.App) -> None:
    app.add_error_handler(Exception, _also_for_websockets(handle_unexpected))
    app.add_error_handler(falcon.HTTPError, _also_for_websockets(handle_http_error))
    app.add_error_handler(OmnichannelError, _also_for_websockets(handle_domain_error))
    app.add_error_handler(DeliveryFailed, _also_for_websockets(handle_delivery_failed))
