"""Middleware: request context and summary logging, authentication and authorization."""

from __future__ import annotations

import functools
import random
import re
import time
from typing import Any

import falcon
import falcon.asgi
import structlog

from omnichannel_core.access.policy import Permission, Principal
from omnichannel_core.access.service import Access
from omnichannel_core.errors import Forbidden, Unauthenticated

log = structlog.get_logger("omnichannel.http")

REQUEST_ID_HEADER = "X-Request-ID"
WEBSOCKET = "WEBSOCKET"
"""The method name under which ``permissions`` and ``public_methods`` list ``on_websocket``."""
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _new_request_id() -> str:
    # Not a secret: random (seeded from os.urandom, reseeded in each worker) avoids a system
    # call per request, which would hand the GIL to the store's threads.
    return f"{random.getrandbits(128):032x}"


class RequestContext:
    """Accepts or makes a request id, binds it into every log line, echoes it, and writes one
    summary line per request."""

    async def process_request(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        given = req.get_header(REQUEST_ID_HEADER)
        request_id = given if given and VALID_REQUEST_ID.match(given) else _new_request_id()
        req.context.request_id = request_id
        req.context.started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        resp.set_header(REQUEST_ID_HEADER, request_id)

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: dict
    ) -> None:
        channel = getattr(resource, "channel", None)
        if channel:
            structlog.contextvars.bind_contextvars(channel=channel)

    async def process_response(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        resource: Any,
        req_succeeded: bool,
    ) -> None:
        started = getattr(req.context, "started", None)
        duration_ms = round((time.perf_counter() - started) * 1000, 2) if started else None
        log.info(
            "request_finished",
            method=req.method,
            path=req.path,
            status=resp.status_code,
            duration_ms=duration_ms,
        )
        structlog.contextvars.clear_contextvars()


class Authentication:
    """Deny by default: every route needs ``Authorization: Bearer <token>`` (a user's access
    token or an API key) except the methods its resource lists in ``public_methods`` (``/``,
    ``/health``, the OpenAPI document, login and refresh, and webhooks, which their channel
    authenticates), and CORS preflights (``OPTIONS``), which carry no credentials. The
    decision is made on the resource the router matched, never on the path's spelling, so
    ``//api/...`` cannot slip past it.

    Then authorization, in this one place: the resource declares, in ``permissions``, the
    permission each method needs (`omnichannel_core.access.policy`); a method it does not
    declare is refused. The caller is left in ``req.context.principal`` for the few rules
    about which records (an agent's conversations), which the resources apply.

    WebSocket connections (a resource's ``on_websocket``) go through the same check, before
    the connection is accepted, under the method name ``WEBSOCKET``; a refusal closes the
    handshake with code 3000 + the HTTP status (3401, 3403)."""

    def __init__(self, access: Access) -> None:
        self.access = access

    async def process_resource_ws(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, resource: Any, params: dict
    ) -> None:
        if resource is None or WEBSOCKET in getattr(resource, "public_methods", ()):
            return
        principal = await self._authenticate(req)
        if not callable(getattr(resource, "on_websocket", None)):
            return  # Falcon closes with 3405, as over HTTP
        principal.require(required_permission(resource, WEBSOCKET))

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: dict
    ) -> None:
        if resource is None:  # no route matched: the 404 reveals nothing
            return
        if req.method == "OPTIONS" or req.method in getattr(resource, "public_methods", ()):
            return
        principal = await self._authenticate(req)
        if not callable(getattr(resource, f"on_{req.method.lower()}", None)):
            return  # Falcon answers 405: told only to a caller who may use the API at all
        principal.require(required_permission(resource, req.method))

    async def _authenticate(self, req: falcon.asgi.Request) -> Principal:
        """Who is calling; leaves them in ``req.context.principal``, and in
        ``req.context.authenticate_again`` a coroutine function that checks the same
        credential again (for a long-lived stream or socket: a logout, a deactivation or a
        revoked key raises Unauthenticated, a role change shows in the Principal)."""
        token = bearer_token(req)
        principal = await self.access.authenticate(token)
        req.context.principal = principal
        req.context.authenticate_again = functools.partial(self.access.authenticate, token)
        return principal


def presented_bearer(req: falcon.asgi.Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``, or None when there is no such header;
    the one reading of it, for authentication and the per-credential rate limit."""
    scheme, _, token = (req.get_header("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def bearer_token(req: falcon.asgi.Request) -> str:
    token = presented_bearer(req)
    if token is None:
        if not req.get_header("Authorization"):
            raise Unauthenticated("send Authorization: Bearer <access token or API key>")
        raise Unauthenticated("the Authorization header must be: Bearer <access token or API key>")
    return token


def required_permission(resource: Any, method: str) -> Permission:
    """What ``method`` on ``resource`` needs: its own entry in ``permissions``, or for a HEAD
    that has none, the GET's (a resource answering HEAD like GET may declare only GET)."""
    permissions = getattr(resource, "permissions", {})
    needed = permissions.get(method)
    if needed is None and method == "HEAD":
        needed = permissions.get("GET")
    if needed is None:
        raise Forbidden(f"{method} on this route needs a permission no caller has")
    return needed
