"""What a route declares: who may call each method, what it takes and answers, and how its
responses are protected. Modules return :class:`Route` objects from ``register_routes``.

A route's resource is a plain Falcon resource (``on_get``, ``on_post``...) with a class
attribute ``operations``, one :class:`Operation` per method it serves::

    class Greetings:
        operations = {
            "GET": Operation("List greetings", permission="greetings:read",
                             responses={200: Response(PageOf(Greeting), "One page.")}),
            "POST": Operation("Add a greeting", permission="greetings:write",
                              body=NewGreeting, responses={201: Response(Greeting, "Added.")}),
        }

        async def on_post(self, req, resp):
            greeting = req.context.body  # a NewGreeting, already checked
            ...

The kernel does the rest from the declaration, in one place each: it authenticates the caller
and checks the permission (`web.middleware`), reads and checks the body, query and headers
into ``req.context.body``, ``.query`` and ``.headers`` (`omnichannel_core.bodies`), applies
the route's :class:`RoutePolicy` (security headers, CORS), rate limits it, and writes the
route into the OpenAPI document (`web.openapi`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from omnichannel_core.bodies.schema import PageOf, Schema
from omnichannel_core.config import Config, parse_origins

JSON = "application/json"


class RateLimit(enum.Enum):
    """Which rate limits count a method's calls (`web.protection`)."""

    DEFAULT = "default"
    """Per client address and per credential."""
    STRICT = "strict"
    """Also the login limit per address (login, refresh: password guessing)."""
    NONE = "none"
    """Not counted: providers' callbacks, which burst from many addresses and which the
    channel authenticates by signature."""


@attrs.frozen
class Response:
    """One answer an operation may give.

    :param body: the body class (or :class:`~omnichannel_core.bodies.schema.PageOf` one),
        None for no body.
    :param schema: the body's schema when it is not a class (a provider's own format, a
        free-form document).
    :param media_type: of the body.
    :param headers: documented response headers, name to schema.
    :param alternatives: other media types the same answer may come in, each with its
        body's schema (an export as CSV, or as JSON with ``?format=json``).
    """

    body: type | PageOf | None = None
    description: str = ""
    schema: Schema | None = None
    media_type: str = JSON
    headers: Mapping[str, Schema] = attrs.field(factory=dict)
    alternatives: Mapping[str, Schema] = attrs.field(factory=dict)


@attrs.frozen
class Parameter:
    """A documented parameter the body classes cannot describe (a header read by hand)."""

    name: str
    location: str  # "header" | "query"
    description: str
    schema: Schema = attrs.field(factory=lambda: {"type": "string"})


@attrs.frozen
class Operation:
    """One method of a route.

    :param summary: one line, for the OpenAPI document.
    :param permission: the permission a caller needs (a name some module registered); every
        method that is not ``public`` needs one.
    :param public: callable without credentials (a provider's webhook, a login, a visitor's
        widget); the resource then authenticates what it must itself.
    :param body: the JSON body's class: checked before the responder runs and left in
        ``req.context.body``.
    :param query: the query string's class, left in ``req.context.query``.
    :param headers: a class of request headers (fields named with ``field(name=...)``), left
        in ``req.context.headers``.
    :param responses: status code to :class:`Response`.
    :param errors: names of the shared error responses it may give (``"NotFound"``...,
        `omnichannel_core.shared_errors`; another name unloads the plugin); ``Unauthorized``,
        ``Forbidden`` and ``TooManyRequests`` are added for every authenticated operation.
    :param notes: sentences added to the generated description.
    :param raw_body: the description of a body the resource reads itself (a provider's own
        format): documented as any media type.
    :param documented: False for a route the OpenAPI document leaves out.
    """

    summary: str
    permission: str | None = None
    public: bool = False
    body: type | None = None
    query: type | None = None
    headers: type | None = None
    responses: Mapping[int | str, Response] = attrs.field(factory=dict)
    errors: tuple[str, ...] = ()
    notes: str = ""
    operation_id: str = ""
    tags: tuple[str, ...] = ()
    parameters: tuple[Parameter, ...] = ()
    rate_limit: RateLimit = RateLimit.DEFAULT
    raw_body: str | None = None
    documented: bool = True


SECURITY_HEADERS: Mapping[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    # A JSON API loads nothing and is framed by no one; a response rendered as a page by
    # mistake gets no scripts, styles or frames.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}


def agent_origins(config: Config) -> Iterable[str]:
    """The origins of ``OMNICHANNEL_CORS_ORIGINS``: where the agents' browser apps run."""
    return config.cors_origins


@attrs.frozen
class OriginsSetting:
    """A :class:`CorsPolicy`'s ``origins`` read from the channel variable ``variable``
    (``config.settings``: the environment, or else the value an admin stored),
    written as ``OMNICHANNEL_CORS_ORIGINS`` is (exact ``scheme://host[:port]`` origins,
    comma-separated, no ``*``), e.g.
    ``CorsPolicy(origins=OriginsSetting("WEBCHAT_ALLOWED_ORIGINS"))``. Unset or empty: none.
    A value that is not such a list raises ValueError naming the variable."""

    variable: str

    def __call__(self, config: Config) -> tuple[str, ...]:
        try:
            return parse_origins(config.settings.get(self.variable, ""))
        except ValueError as error:
            raise ValueError(f"{self.variable}: {error}") from None


@attrs.frozen
class CorsPolicy:
    """Which browser origins may call a route, and what they may send.

    :param origins: the allowed origins, from the configuration (evaluated once, when the
        route is mounted): exact ``scheme://host[:port]`` values; :class:`OriginsSetting`
        reads them from a variable of the environment. A route's WebSockets take browsers
        from these origins (and the server's own) only, once there is one
        (`web.protection.Cors`).
    :param refuse_others: over HTTP too, a request a browser sends from any other origin
        (its ``Origin`` neither listed nor the server's own) is refused with 403 before the
        route runs, not only left without CORS headers: for a route other sites' pages
        call (a chat widget's), where a request must not even be acted on; with no origin
        listed, every other site's is refused, on WebSockets too. Requests without
        ``Origin`` (programs) pass, as on a WebSocket.
    """

    origins: Callable[[Config], Iterable[str]] = agent_origins
    methods: str = "GET, POST, PUT, PATCH, DELETE"
    allow_headers: str = "Authorization, Content-Type, Idempotency-Key, Prefer, X-Request-ID"
    expose_headers: str = "X-Request-ID, Retry-After, Preference-Applied"
    max_age_seconds: int = 600
    refuse_others: bool = False


@attrs.frozen
class RoutePolicy:
    """How a route's responses are protected.

    :param headers: the security headers every response of the route carries.
    :param cors: who may call it from a browser.
    :param no_store: answers are per caller: ``Cache-Control: no-store`` unless the
        resource set its own caching; None (the default): for routes under ``/api/``.
    """

    headers: Mapping[str, str] = SECURITY_HEADERS
    cors: CorsPolicy = CorsPolicy()
    no_store: bool | None = None


API_POLICY = RoutePolicy()
"""The agents' API: strict headers, ``OMNICHANNEL_CORS_ORIGINS``, never cached."""


@attrs.frozen
class Route:
    """A route a module serves.

    :param path: a Falcon URI template, e.g. ``/api/greetings/{greeting_id}``. Agents' API
        routes live under ``/api/``; pages, assets and visitor APIs may live anywhere else
        that is free, each with its own ``policy``.
    :param resource: the Falcon resource, whose ``operations`` declare its methods.
    :param policy: headers and CORS for its responses.
    :param document_as: the template it is documented under (the inbox mounts each channel's
        routes once per channel and documents them once, under ``{channel}``); None: its
        own path.
    """

    path: str
    resource: Any
    policy: RoutePolicy = API_POLICY
    document_as: str | None = None


def operations_of(resource: Any) -> Mapping[str, Operation]:
    """The operations a resource declares, by upper-case method (``WEBSOCKET`` for
    ``on_websocket``)."""
    declared: Mapping[str, Operation] = getattr(resource, "operations", {})
    return declared


RESPONDER_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "WEBSOCKET")


def responders_of(resource: Any) -> dict[str, Any]:
    """The responder of each method the resource serves (``OPTIONS`` is the kernel's)."""
    return {
        method: getattr(resource, f"on_{method.lower()}")
        for method in RESPONDER_METHODS
        if callable(getattr(resource, f"on_{method.lower()}", None))
    }
