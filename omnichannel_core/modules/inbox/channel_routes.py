"""The routes every channel gets, and the mounting of the routes a channel contributes.

``/api/channels/{name}/webhook``, ``/status``, ``/messages`` and ``/health`` are mounted for
every channel, each bound to its channel, and documented once under ``{channel}``. A
webhook's body is read whole, or streamed to a file for a channel that declares
``webhook_body_limit`` (an email with its attachments). A
channel's own routes (``channel_routes`` hook) go under the same prefix, each method with
the operation its resource declares or a generic one (`channel_operations`), documented
under the channel's own path; one that shares a path with a generic route is merged into
it, adding only methods the generic route does not serve. A route's ``policy`` (headers,
CORS origins, for a route browsers call) is its own: never on a generic path, which every
provider calls, and the agents' API's when it gives none. A channel whose routes cannot be
mounted (its ``channel_routes`` raises, or returns a route that is not valid) is mounted not
at all, and unloaded: :func:`channel_resources` raises before anything of it is returned.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import falcon
import falcon.asgi
import structlog

from omnichannel_core.channel import ChannelRoute, WebhookRequest, WebhookResponse
from omnichannel_core.module import (
    API_POLICY,
    ChannelFailed,
    Config,
    HookNotImplemented,
    IdempotencyHeaders,
    LiveEvents,
    ModuleContext,
    NotFound,
    OmnichannelError,
    Operation,
    PluginLoadError,
    Policy,
    RateLimit,
    Response,
    Route,
    RoutePolicy,
    RouteProblem,
    answer_sent,
    check_route,
    prefer_wait,
    to_json,
    webhook_head,
    webhook_request,
)
from omnichannel_core.modules.inbox.bodies import ChannelHealthReport, ChannelSend
from omnichannel_core.modules.inbox.channel_inbox import ChannelInboxService
from omnichannel_core.modules.inbox.channel_operations import (
    check_operation_ids,
    route_operations,
)
from omnichannel_core.modules.inbox.permissions import CHANNELS_READ, MESSAGES_SEND
from omnichannel_core.modules.inbox.routes import SEND_ERRORS, SENT
from omnichannel_core.modules.inbox.service import Inbox

log = structlog.get_logger("omnichannel.inbox")

METHODS = ("get", "post", "put", "patch", "delete", "head", "websocket")
ROUTE_PATH = re.compile(r"^[A-Za-z0-9_.~{}:-]+(/[A-Za-z0-9_.~{}:-]+)*$")
TEMPLATE = "/api/channels/{channel}/"


def channel_prefix(channel: str) -> str:
    return f"/api/channels/{channel}"


def provider_callback(hook: str, summary: str, operation_id: str) -> Operation:
    """A public POST whose body and answer are the provider's, authenticated by the channel.
    Never rate limited: providers burst from many addresses."""
    return Operation(
        summary,
        public=True,
        raw_body="The provider's own format.",
        responses={
            "2XX": Response(
                None,
                "Accepted. Status (200 unless the channel says otherwise), body and media type"
                " are the channel's: what its provider expects (the `http` channel answers 200"
                " with an empty text/plain body).",
                schema={},
                media_type="*/*",
            )
        },
        errors=(
            "BadRequest",
            "WebhookRejected",
            "NotFound",
            "PayloadTooLarge",
            "UnsupportedMediaType",
            "NotImplemented",
            "ChannelFailed",
            "ChannelUnavailable",
        ),
        notes=f"Handled by the channel's `{hook}` hook, which authenticates the request itself"
        " (signature, token). What is accepted is stored before the answer. The generic `http`"
        " channel takes JSON signed with `X-Omnichannel-Signature: sha256=<hex HMAC-SHA256 of"
        " the raw body with WEBHOOK_SECRET>`. Not rate limited.",
        operation_id=operation_id,
        tags=("channels",),
        rate_limit=RateLimit.NONE,
    )


class _ChannelResource:
    operations: dict[str, Operation] = {}

    def __init__(self, channel: str, inbox: Inbox) -> None:
        self.channel = channel
        self.inbox = inbox


class _ProviderCallback(_ChannelResource):
    """A route whose body is the provider's: read whole (up to
    ``OMNICHANNEL_MAX_BODY_BYTES``), or, for a channel that declares
    ``webhook_body_limit``, streamed to a file once the hook, asked with the request's
    headers, admitted it. A channel without the route's ``hook`` answers 501 before its
    body is read. What the channel implements is asked once per process: the usual webhook
    pays one comparison."""

    hook = "receive"

    def __init__(self, channel: str, inbox: Inbox) -> None:
        super().__init__(channel, inbox)
        self._limits: bool | None = None
        self._implemented = False

    async def answer(
        self,
        req: falcon.asgi.Request,
        resp: falcon.asgi.Response,
        handle: Callable[[str, WebhookRequest], Awaitable[WebhookResponse]],
    ) -> None:
        if self._limits is None:  # the first call in this process
            self._limits = self.inbox.channels.implements(self.channel, "webhook_body_limit")
            self._implemented = self.inbox.channels.implements(self.channel, self.hook)
        if not self._implemented:
            raise HookNotImplemented(self.channel, self.hook)
        limit = None
        if self._limits:
            head = webhook_head(req, self.inbox.config)
            limit = await webhook_body_limit(self.inbox, self.channel, head)
        request = await webhook_request(req, self.inbox.config, limit)
        try:
            response = await handle(self.channel, request)
        finally:
            if request.body_file is not None:
                request.body_file.close()
        _write_webhook_response(resp, response)


async def webhook_body_limit(inbox: Inbox, channel: str, head: WebhookRequest) -> int | None:
    """What the channel's ``webhook_body_limit`` answers for the request ``head`` (its body
    unread): its refusal (WebhookRejected, ChannelUnavailable...) as it raised it;
    ChannelFailed (502) when it crashes or answers anything but a positive whole number."""
    try:
        limit = await inbox.channels.call(
            channel, "webhook_body_limit", request=head, config=inbox.config
        )
    except OmnichannelError:
        raise
    except Exception as error:
        log.exception("channel_hook_crashed", channel=channel, hook="webhook_body_limit")
        raise ChannelFailed(
            f"channel {channel!r} webhook_body_limit failed: {type(error).__name__}",
            channel=channel,
        ) from None
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ChannelFailed(
            f"channel {channel!r} webhook_body_limit returned {limit!r}, not a number of bytes",
            channel=channel,
        )
    return limit


def _write_webhook_response(resp: falcon.asgi.Response, response: WebhookResponse) -> None:
    resp.status = response.status
    resp.content_type = response.content_type
    resp.data = response.body


class ChannelWebhook(_ProviderCallback):
    """``POST .../webhook``: the provider's inbound messages, through ``receive``."""

    operations = {
        "POST": provider_callback(
            "receive", "Take the provider's inbound messages", "receiveWebhook"
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.answer(req, resp, self.inbox.receive_webhook)


class ChannelStatus(_ProviderCallback):
    """``POST .../status``: the provider's delivery-status callbacks, through ``status``."""

    hook = "status"

    operations = {
        "POST": provider_callback(
            "status", "Take the provider's delivery statuses", "receiveStatus"
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        await self.answer(req, resp, self.inbox.receive_status)


class ChannelMessages(_ChannelResource):
    """``POST .../messages``: send to an address on this channel, through ``send``."""

    operations = {
        "POST": Operation(
            "Send to an address on this channel",
            permission=MESSAGES_SEND,
            body=ChannelSend,
            headers=IdempotencyHeaders,
            responses=SENT,
            errors=SEND_ERRORS,
            operation_id="sendOnChannel",
            tags=("channels",),
        )
    }

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        body: ChannelSend = req.context.body
        key = req.context.headers.idempotency_key
        message, created = await self.inbox.send_to(
            self.channel,
            body.to.strip(),
            body.request(),
            key,
            body.name,
            new_conversation=body.new_conversation,
            principal=req.context.principal,
        )
        wait = prefer_wait(req)
        if created and wait:
            message = await self.inbox.outcome(message, wait)
        answer_sent(resp, message, created, wait)


class ChannelHealthResource(_ChannelResource):
    """``GET .../health``: the channel's own health report."""

    operations = {
        "GET": Operation(
            "The channel's own health report",
            permission=CHANNELS_READ,
            responses={
                200: Response(ChannelHealthReport, "The channel is ready."),
                503: Response(ChannelHealthReport, "The channel is not ready."),
            },
            errors=("NotFound",),
            operation_id="getChannelHealth",
            tags=("channels",),
        )
    }

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        # 501 without the hook
        health = await self.inbox.channels.health(self.channel, config=self.inbox.config)
        resp.status = 200 if health.ok else 503
        report = ChannelHealthReport(self.channel, health.ok, health.detail, dict(health.checks))
        resp.media = to_json(report)


class UnknownChannel:
    """Anything under ``/api/channels/`` that no channel route matched: an unknown channel,
    a channel that failed to load or was disabled, or a path a known channel does not
    serve."""

    operations = {
        method.upper(): Operation("No such channel route", public=True, documented=False)
        for method in ("get", "post", "put", "patch", "delete")
    }

    def __init__(
        self, channels: Iterable[str], failed: Iterable[str] = (), disabled: Iterable[str] = ()
    ) -> None:
        self.channels = frozenset(channels)
        self.failed = frozenset(failed)
        self.disabled = frozenset(disabled)

    async def _answer(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str, rest: str = ""
    ) -> None:
        if name in self.channels:
            raise NotFound(f"channel {name!r} has no route {rest!r}", channel=name)
        if name in self.failed:
            raise NotFound(
                f"channel {name!r} failed to load; GET /api/plugins says why", channel=name
            )
        if name in self.disabled:
            raise NotFound(
                f"channel {name!r} is disabled: OMNICHANNEL_DISABLE_PLUGINS names it",
                channel=name,
            )
        raise NotFound(f"unknown channel {name!r}", channel=name)

    on_get = on_post = on_put = on_patch = on_delete = _answer


GENERIC_ROUTES: dict[str, type[_ChannelResource]] = {
    "webhook": ChannelWebhook,
    "status": ChannelStatus,
    "messages": ChannelMessages,
    "health": ChannelHealthResource,
}


class MergedResource:
    """A generic route plus the methods a channel adds on the same path."""

    def __init__(self, channel: str, operations: dict[str, Operation]) -> None:
        self.channel = channel
        self.operations = operations


def _responders(resource: object) -> dict[str, Any]:
    return {
        method: getattr(resource, f"on_{method}")
        for method in METHODS
        if callable(getattr(resource, f"on_{method}", None))
    }


def _merge(channel: str, generic: _ChannelResource | None, route: ChannelRoute) -> MergedResource:
    """One resource serving the generic route's methods (if any) and the route's own."""
    own = _responders(generic) if generic is not None else {}
    added = _responders(route.resource)
    clash = sorted(set(own) & set(added))
    if clash:
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r} redefines {', '.join(clash).upper()},"
            " which the core serves",
            channel=channel,
        )
    operations = dict(generic.operations) if generic is not None else {}
    # a method added to a generic path is not documented: the document describes that path
    # once, for every channel, under {channel}
    operations.update(
        route_operations(
            channel, route, [method.upper() for method in added], documented=generic is None
        )
    )
    merged = MergedResource(channel, operations)
    for method, responder in {**own, **added}.items():
        setattr(merged, f"on_{method}", responder)
    return merged


def _check_route(channel: str, route: Any, seen: set[str]) -> ChannelRoute:
    if not isinstance(route, ChannelRoute):
        raise PluginLoadError(
            f"channel {channel!r} channel_routes returned {type(route).__name__}, not ChannelRoute",
            channel=channel,
        )
    if not ROUTE_PATH.match(route.path) or ".." in route.path:
        raise PluginLoadError(
            f"channel {channel!r} route path {route.path!r} must be relative, like 'send/sms'",
            channel=channel,
        )
    if route.path in seen:
        raise PluginLoadError(
            f"channel {channel!r} contributes route {route.path!r} twice", channel=channel
        )
    if not route.public and route.permission is None:
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r} is not public, so it must name the"
            " permission a caller needs (ChannelRoute(..., permission='conversations:read'));"
            " a route that reads conversations or messages must also check them with"
            " inbox.check_visible(principal, message), since agents see only their own or"
            " unassigned conversations",
            channel=channel,
        )
    if not _responders(route.resource):
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r} has no on_<method> responder",
            channel=channel,
        )
    if callable(getattr(route.resource, "on_options", None)):
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r} defines on_options: OPTIONS is the"
            " core's (CORS preflights, answered without credentials)",
            channel=channel,
        )
    seen.add(route.path)
    return route


def _check_policy(channel: str, route: ChannelRoute, config: Config) -> None:
    """PluginLoadError for a ``policy`` that is not a RoutePolicy, one on a path the core
    serves for every channel (a provider's webhook must not take a site's CORS), or one
    whose origins cannot be read from the configuration (the channel's setting is wrong:
    the channel is unloaded, naming it, rather than the server failing to start)."""
    if route.policy is None:
        return
    where = f"channel {channel!r} route {route.path!r}"
    if not isinstance(route.policy, RoutePolicy):
        raise PluginLoadError(
            f"{where}: policy must be a RoutePolicy, not {type(route.policy).__name__}",
            channel=channel,
        )
    if route.path in GENERIC_ROUTES:
        raise PluginLoadError(
            f"{where}: the core serves {route.path!r} for every channel under the agents'"
            " API's policy; give a route with its own policy a path of its own",
            channel=channel,
        )
    try:
        origins = list(route.policy.cors.origins(config))
    except Exception as error:
        raise PluginLoadError(
            f"{where}: its CORS origins cannot be read: {error}", channel=channel
        ) from None
    if not all(isinstance(origin, str) for origin in origins):
        raise PluginLoadError(f"{where}: CORS origins must be strings", channel=channel)


def channel_resources(
    channel: str, inbox: Inbox, policy: Policy, live: Callable[[], LiveEvents] | None = None
) -> list[Route]:
    """The generic and contributed routes of one channel, all checked (``live``: what its
    ``ChannelInbox.follow`` draws on).

    Raises :class:`PluginLoadError` when the contributed routes are not valid, and lets
    through whatever the channel's ``channel_routes`` raises.
    """
    resources: dict[str, Any] = {path: cls(channel, inbox) for path, cls in GENERIC_ROUTES.items()}
    seen: set[str] = set()
    contributed = inbox.channels.contributed_routes(
        channel, config=inbox.config, inbox=ChannelInboxService(channel, inbox, live)
    )
    policies: dict[str, RoutePolicy] = {}
    for route in contributed:
        route = _check_route(channel, route, seen)
        _check_policy(channel, route, inbox.config)
        policies[route.path] = route.policy or API_POLICY
        generic = resources.get(route.path)
        resources[route.path] = _merge(
            channel, generic if isinstance(generic, _ChannelResource) else None, route
        )
    own = {path: resource.operations for path, resource in resources.items()}
    check_operation_ids(channel, {path: own[path] for path in own if path not in GENERIC_ROUTES})
    routes = [
        Route(
            f"{channel_prefix(channel)}/{path}",
            resource,
            policies.get(path, API_POLICY),
            document_as=TEMPLATE + path if path in GENERIC_ROUTES else None,
        )
        for path, resource in resources.items()
    ]
    for route in routes:
        try:
            check_route(route, policy)
        except RouteProblem as problem:
            raise PluginLoadError(f"channel {channel!r}: {problem}", channel=channel) from None
    return routes


def channels_routes(inbox: Inbox, context: ModuleContext) -> list[Route]:
    """Every loaded channel's routes, and the catch-all. A channel whose routes cannot be
    mounted is unloaded and recorded as a failed plugin; the other channels serve."""
    routes: list[Route] = []
    channels = context.channels
    for channel in list(channels.names):
        try:
            routes += channel_resources(
                channel, inbox, context.policy, lambda: context.service(LiveEvents)
            )
        except PluginLoadError as error:
            channels.drop(channel, error.message)
        except Exception as error:
            channels.drop(channel, f"channel_routes raised {type(error).__name__}: {error}")
    unknown = UnknownChannel(channels.names, channels.failed, channels.disabled)
    routes.append(Route("/api/channels/{name}/{rest:path}", unknown, document_as=""))
    routes.append(Route("/api/channels/{name}", unknown, document_as=""))
    return routes
