"""Middleware: request context and summary logging, authentication and authorization, and
reading what each operation declares (body, query, headers)."""

from __future__ import annotations

import functools
import random
import re
import time
from collections.abc import Sequence
from typing import Any

import attrs
import falcon
import falcon.asgi
import structlog

from omnichannel_core.bodies.fields import wire_name
from omnichannel_core.bodies.reading import read_body, read_text_fields
from omnichannel_core.errors import Unauthenticated
from omnichannel_core.plugins.context import Authenticator
from omnichannel_core.policy import Principal
from omnichannel_core.routes import Operation
from omnichannel_core.web.body import read_json_object
from omnichannel_core.web.mounting import Mounts

log = structlog.get_logger("omnichannel.http")

REQUEST_ID_HEADER = "X-Request-ID"
WEBSOCKET = "WEBSOCKET"
"""The method name under which ``operations`` declare ``on_websocket``."""
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
    """Deny by default: every route needs ``Authorization: Bearer <token>`` except the
    methods its resource declares ``public`` (``/``, ``/health``, the OpenAPI document,
    login and refresh, webhooks, which their channel authenticates), and CORS preflights
    (``OPTIONS``), which carry no credentials. The decision is made on the resource the
    router matched, never on the path's spelling, so ``//api/...`` cannot slip past it.

    Then authorization, in this one place: the route's :class:`Operation` for the method
    names the permission it needs; the caller's :class:`Principal` must hold it. A method
    with no operation is not served (Falcon answers 405, told only to a caller who may use
    the API at all). The caller is left in ``req.context.principal`` for the rules about
    which records (an agent's conversations), which the resources apply.

    Who is calling is asked of the authenticators plugins contribute
    (``register_authenticators``), in turn: the first that answers wins.

    WebSocket connections (a resource's ``on_websocket``) go through the same check, before
    the connection is accepted, under the method name ``WEBSOCKET``; a refusal closes the
    handshake with code 3000 + the HTTP status (3401, 3403)."""

    def __init__(self, mounts: Mounts, authenticators: Sequence[Authenticator]) -> None:
        self.mounts = mounts
        self.authenticators = tuple(authenticators)

    async def process_resource_ws(
        self, req: falcon.asgi.Request, ws: falcon.asgi.WebSocket, resource: Any, params: dict
    ) -> None:
        if resource is None:
            return
        operation = self.mounts.operation(resource, WEBSOCKET)
        if operation is not None and operation.public:
            return
        principal = await self._authenticate(req)
        if operation is None:
            return  # Falcon closes with 3405, as over HTTP
        principal.require(_permission(operation))

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: dict
    ) -> None:
        if resource is None or req.method == "OPTIONS":  # no route: the 404 reveals nothing
            return
        operation = self.mounts.operation(resource, req.method)
        if operation is not None and operation.public:
            return
        principal = await self._authenticate(req)
        if operation is None:
            return  # Falcon answers 405: told only to a caller who may use the API at all
        principal.require(_permission(operation))

    async def _authenticate(self, req: falcon.asgi.Request) -> Principal:
        """Who is calling; leaves them in ``req.context.principal``, and in
        ``req.context.authenticate_again`` a coroutine function that checks the same
        credential again (for a long-lived stream or socket: a logout, a deactivation or a
        revoked key raises Unauthenticated, a role change shows in the Principal)."""
        token = bearer_token(req)
        principal = await self.authenticate(token)
        req.context.principal = principal
        req.context.authenticate_again = functools.partial(self.authenticate, token)
        return principal

    async def authenticate(self, token: str) -> Principal:
        """The first authenticator's answer for ``token``; Unauthenticated when none knows
        it."""
        for authenticator in self.authenticators:
            principal = await authenticator(token)
            if principal is not None:
                return principal
        raise Unauthenticated("the API key or access token is not valid")


def _permission(operation: Operation) -> str:
    assert operation.permission is not None  # checked when the route was registered
    return operation.permission


class BodyReading:
    """Reads what an operation declares, before its responder runs (after authentication,
    so a caller who may not call learns nothing about the body): the JSON body into its
    class (``req.context.body``), the query string (``req.context.query``) and the headers
    (``req.context.headers``). Anything wrong is a 400 naming the field; a body too large
    413; a body that is not JSON 415."""

    def __init__(self, mounts: Mounts, max_body_bytes: int) -> None:
        self.mounts = mounts
        self.max_body_bytes = max_body_bytes

    async def process_resource(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, resource: Any, params: dict
    ) -> None:
        operation = self.mounts.operation(resource, req.method)
        if operation is None:
            return
        if operation.headers is not None:
            names = [wire_name(attribute) for attribute in attrs.fields(operation.headers)]
            present = {name: req.get_header(name) for name in names}
            headers = {name: value for name, value in present.items() if value is not None}
            req.context.headers = read_text_fields(headers, operation.headers)
        if operation.query is not None:
            query = {
                name: value[-1] if isinstance(value, list) else value
                for name, value in req.params.items()
            }
            req.context.query = read_text_fields(query, operation.query)
        if operation.body is not None:
            data = await read_json_object(req, self.max_body_bytes)
            req.context.body = read_body(data, operation.body)


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
