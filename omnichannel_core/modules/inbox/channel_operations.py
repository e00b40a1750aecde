"""The :class:`Operation` of each method a channel's own route serves.

A channel route's resource may declare ``operations`` as a module route's does (one
:class:`Operation` per upper-case method: body, query and headers classes, responses...).
Who may call is said once, on the :class:`ChannelRoute` (``public``, or ``permission``):
a declared operation takes it from there, and one that restates it must agree. A declared
operation is then checked and documented like any route's: under the channel's own path
(``/api/channels/twilio/send/sms``), with an ``operationId`` that starts with the channel's
name, unless it says ``documented=False`` or adds a method to a path the core serves for
every channel (``webhook``...), which the document describes once, under ``{channel}``.

A method the resource does not declare gets a generic operation, as before declarations
existed: the route's permission (or public), nothing read, nothing documented.

Rate limits: a public route without a ``policy`` is a provider's callback, never counted
(providers burst from many addresses, and the channel checks their signature); a public
route with one is called by browsers (a visitor's widget), and its methods are counted per
address as a module's public route's are, unless an operation says otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from omnichannel_core.channel import ChannelRoute
from omnichannel_core.module import Operation, PluginLoadError, RateLimit

CHANNEL_TAGS = ("channels",)
WORD = re.compile(r"[A-Za-z0-9]+")


def generic_operation(channel: str, route: ChannelRoute, method: str) -> Operation:
    """The operation of a method the route's resource does not declare."""
    summary = f"{channel} {method} {route.path}"
    if route.public:
        return Operation(
            summary, public=True, documented=False, rate_limit=public_rate_limit(route)
        )
    return Operation(summary, permission=route.permission, documented=False)


def public_rate_limit(route: ChannelRoute) -> RateLimit:
    """What counts a public method that says nothing: a route with a policy is called by
    browsers, counted per address (DEFAULT); one without is a provider's callback,
    authenticated by the channel and never counted (NONE)."""
    return RateLimit.NONE if route.policy is None else RateLimit.DEFAULT


def _who(public: bool, permission: str | None) -> str:
    return "public" if public else f"permission {permission!r}"


def operation_id(channel: str, method: str, path: str, declared: str) -> str:
    """``twilioSendSms`` for ``declared="sendSms"``; ``twilioGetMessageIdStatus`` for an
    undeclared id of ``GET message/{id}/status``. Prefixed with the channel's name so that
    ids stay unique across channels (a distribution may be loaded under two names)."""
    words = WORD.findall(channel) + (
        [declared] if declared else [method.lower(), *WORD.findall(path)]
    )
    first, *rest = words
    return first.lower() + "".join(word[:1].upper() + word[1:] for word in rest)


def declared_operation(
    channel: str, route: ChannelRoute, method: str, declared: Any, *, documented: bool
) -> Operation:
    """``declared`` completed from the route: who may call (from the ChannelRoute; an
    operation that restates it must agree), the operation id, the tags. Public and left
    at ``RateLimit.DEFAULT``: as :func:`public_rate_limit` says. ``documented`` False for a
    method added to a path the core serves for every channel."""
    where = f"channel {channel!r} route {route.path!r} {method}"
    if not isinstance(declared, Operation):
        raise PluginLoadError(
            f"{where}: operations must be Operation objects, not {type(declared).__name__}",
            channel=channel,
        )
    states_who = declared.public or declared.permission is not None
    if states_who and (declared.public, declared.permission) != (route.public, route.permission):
        raise PluginLoadError(
            f"{where}: the operation says {_who(declared.public, declared.permission)}"
            f" but the ChannelRoute says {_who(route.public, route.permission)}; say who"
            " may call once, on the ChannelRoute",
            channel=channel,
        )
    rate_limit = declared.rate_limit
    if route.public and rate_limit is RateLimit.DEFAULT:
        rate_limit = public_rate_limit(route)
    return attrs.evolve(
        declared,
        public=route.public,
        permission=None if route.public else route.permission,
        rate_limit=rate_limit,
        operation_id=operation_id(channel, method, route.path, declared.operation_id),
        tags=declared.tags or CHANNEL_TAGS,
        documented=declared.documented and documented,
    )


def route_operations(
    channel: str, route: ChannelRoute, methods: list[str], *, documented: bool
) -> dict[str, Operation]:
    """The operation of each of ``methods`` (upper case) the route's resource serves:
    declared ones completed (:func:`declared_operation`), generic ones for the rest.
    PluginLoadError for ``operations`` that is not a mapping, or that declares a method
    the resource does not serve."""
    declared = getattr(route.resource, "operations", {})
    if not isinstance(declared, Mapping):
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r}: operations must map methods to"
            f" Operation objects, not be a {type(declared).__name__}",
            channel=channel,
        )
    unserved = sorted(str(method) for method in declared if method not in methods)
    if unserved:
        raise PluginLoadError(
            f"channel {channel!r} route {route.path!r} declares {unserved[0]} but has no"
            f" on_{unserved[0].lower()} (keys are upper-case methods: POST for on_post)",
            channel=channel,
        )
    operations = {
        method: declared_operation(channel, route, method, declared[method], documented=documented)
        for method in methods
        if method in declared
    }
    for method in methods:
        if method in operations or (method == "HEAD" and "GET" in operations):
            continue  # a HEAD without its own operation follows the GET's, as on any route
        operations[method] = generic_operation(channel, route, method)
    return operations


def check_operation_ids(channel: str, routes: Mapping[str, Mapping[str, Operation]]) -> None:
    """PluginLoadError when two documented operations of a channel's own routes (path ->
    method -> operation) would share an ``operationId``."""
    seen: dict[str, str] = {}
    for path, operations in routes.items():
        for method, operation in operations.items():
            if not operation.documented:
                continue
            where = f"{method} {path}"
            earlier = seen.setdefault(operation.operation_id, where)
            if earlier != where:
                raise PluginLoadError(
                    f"channel {channel!r}: {earlier} and {where} are both documented as"
                    f" operationId {operation.operation_id!r}; give each its own operation_id",
                    channel=channel,
                )
