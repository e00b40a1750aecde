"""The routes every channel gets, and the mounting of the routes a channel contributes.

``/api/channels/{name}/webhook``, ``/status``, ``/messages`` and ``/health`` are mounted for
every channel, each bound to its channel. A channel's own routes (``channel_routes`` hook)
go under the same prefix; one that shares a path with a generic route is merged into it,
adding only methods the generic route does not serve. A channel whose routes cannot be
mounted (its ``channel_routes`` raises, or returns a route that is not valid) is mounted not
at all: :func:`channel_resources` raises before anything is added to the app.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from typing import Any

import falcon
import falcon.asgi

from omnichannel_core.access.policy import Permission
from omnichannel_core.config import Config
from omnichannel_core.errors import NotFound, PluginLoadError
from omnichannel_core.hooktypes import ChannelRoute
from omnichannel_core.inbox import Inbox
from omnichannel_core.serialization import to_json
from omnichannel_core.web import payloads
from omnichannel_core.web.body import read_json_object, webhook_request

METHODS = ("get", "post", "put", "patch", "delete", "head", "options", "websocket")
ROUTE_PATH = re.compile(r"^[A-Za-z0-9_.~{}:-]+(/[A-Za-z0-9_.~{}:-]+)*$")


def channel_prefix(channel: str) -> str:
    return f"/api/channels/{channel}"


class _ChannelResource:
    public_methods: frozenset[str] = frozenset()
    permissions: dict[str, Permission] = {}

    def __init__(self, channel: str, inbox: Inbox, config: Config) -> None:
        self.channel = channel
        self.inbox = inbox
        self.config = config


def _write_webhook_response(resp: falcon.asgi.Response, response: Any) -> None:
    resp.status = response.status
    resp.content_type = response.content_type
    resp.data = response.body


class ChannelWebhook(_ChannelResource):
    """``POST .../webhook``: the provider's inbound messages, through ``receive``."""

    public_methods = frozenset({"POST"})

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        request = await webhook_request(req, self.config)
        response = await self.inbox.receive_webhook(self.channel, request)
        _write_webhook_response(resp, response)


class ChannelStatus(_ChannelResource):
    """``POST .../status``: the provider's delivery-status callbacks, through ``status``."""

    public_methods = frozenset({"POST"})

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        request = await webhook_request(req, self.config)
        response = await self.inbox.receive_status(self.channel, request)
        _write_webhook_response(resp, response)


class ChannelMessages(_ChannelResource):
    """``POST .../messages``: send to an address on this channel, through ``send``."""

    permissions = {"POST": Permission.MESSAGES_SEND}

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        key = payloads.idempotency_key(req)
        data = await read_json_object(req, self.config.max_body_bytes)
        to, name, request = payloads.send_request(data)
        message, created = await self.inbox.send_to(self.channel, to, request, key, name)
        resp.status = 201 if created else 200
        resp.media = to_json(message)


class ChannelHealthResource(_ChannelResource):
    """``GET .../health``: the channel's own health report."""

    permissions = {"GET": Permission.CHANNELS_READ}

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        health = await self.inbox.channel_health(self.channel)  # 501 without the hook
        resp.status = 200 if health.ok else 503
        resp.media = {"channel": self.channel, **to_json(health)}


class UnknownChannel:
    """Anything under ``/api/channels/`` that no channel route matched: an unknown channel,
    a channel that failed to load, or a path a known channel does not serve."""

    public_methods = frozenset(m.upper() for m in METHODS)

    def __init__(self, channels: Iterable[str], failed: Iterable[str] = ()) -> None:
        self.channels = frozenset(channels)
        self.failed = frozenset(failed)

    async def _answer(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, name: str, rest: str = ""
    ) -> None:
        if name in self.channels:
            raise NotFound(f"channel {name!r} has no route {rest!r}", channel=name)
        if name in self.failed:
            raise NotFound(
                f"channel {name!r} failed to load; GET /api/plugins says why", channel=name
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

    def __init__(
        self, channel: str, public_methods: frozenset[str], permissions: dict[str, Permission]
    ) -> None:
        self.channel = channel
        self.public_methods = public_methods
        self.permissions = permissions


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
    public = generic.public_methods if generic is not None else frozenset()
    permissions = dict(generic.permissions) if generic is not None else {}
    if route.public:
        public = public | {method.upper() for method in added}
    else:
        permissions.update({method.upper(): route_permission(route, method) for method in added})
    merged = MergedResource(channel, public, permissions)
    for method, responder in {**own, **added}.items():
        setattr(merged, f"on_{method}", responder)
    return merged


def route_permission(route: ChannelRoute, method: str) -> Permission:
    """What a caller needs for ``method`` on a channel's own route that is not public: the
    permission the route names (:func:`_check_route` made sure there is one)."""
    assert route.permission is not None
    return Permission(route.permission)


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
            " omnichannel_core.access.policy.visible_conversation or check_message_visible",
            channel=channel,
        )
    if route.permission is not None and route.permission not in Permission._value2member_map_:
        known = ", ".join(permission.value for permission in Permission)
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r} asks for unknown permission"
            f" {route.permission!r}; known: {known}",
            channel=channel,
        )
    if not _responders(route.resource):
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r} has no on_<method> responder",
            channel=channel,
        )
    if "options" in _responders(route.resource):
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r} defines on_options: OPTIONS is the"
            " core's (CORS preflights, answered without credentials)",
            channel=channel,
        )
    for responder in _responders(route.resource).values():
        if not inspect.iscoroutinefunction(responder):
            raise PluginLoadError(
                f"channel {channel!r} route {route.path!r}: responders must be coroutines"
                " (async def)",
                channel=channel,
            )
    seen.add(route.path)
    return route


def contributed_routes(channel: str, inbox: Inbox, config: Config) -> list[ChannelRoute]:
    """What the channel's ``channel_routes`` returned, checked."""
    results = inbox.dispatcher.call_at_startup(
        channel, "channel_routes", config=config, inbox=inbox
    )
    seen: set[str] = set()
    routes: list[ChannelRoute] = []
    for result in results:
        if inspect.isawaitable(result):
            result.close()
            raise PluginLoadError(
                f"channel {channel!r} channel_routes must be a plain function, not async",
                channel=channel,
            )
        for route in result:
            routes.append(_check_route(channel, route, seen))
    return routes


def _check_templates(channel: str, resources: dict[str, Any]) -> None:
    """Route the channel's templates on a scratch app, so templates Falcon refuses (two
    field names at one level) fail here rather than halfway through mounting."""
    scratch = falcon.asgi.App()
    for path, resource in resources.items():
        try:
            scratch.add_route(f"{channel_prefix(channel)}/{path}", resource)
        except ValueError as error:  # falcon's UnacceptableRouteError is a ValueError
            raise PluginLoadError(
                f"channel {channel!r} route {path!r} cannot be routed: {error}", channel=channel
            ) from None


def channel_resources(channel: str, inbox: Inbox, config: Config) -> dict[str, Any]:
    """The generic and contributed resources of one channel, by relative path, all checked.

    Raises :class:`PluginLoadError` when the contributed routes are not valid, and lets
    through whatever the channel's ``channel_routes`` raises.
    """
    resources: dict[str, Any] = {
        path: cls(channel, inbox, config) for path, cls in GENERIC_ROUTES.items()
    }
    for route in contributed_routes(channel, inbox, config):
        generic = resources.get(route.path)
        resources[route.path] = _merge(
            channel, generic if isinstance(generic, _ChannelResource) else None, route
        )
    _check_templates(channel, resources)
    return resources


def mount_channel(app: falcon.asgi.App, channel: str, resources: dict[str, Any]) -> list[str]:
    """Mount the resources of :func:`channel_resources`; returns their URI templates."""
    prefix = channel_prefix(channel)
    for path, resource in resources.items():
        app.add_route(f"{prefix}/{path}", resource)
    return [f"{prefix}/{path}" for path in resources]
