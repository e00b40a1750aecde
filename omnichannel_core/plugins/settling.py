"""What a plugin still needs from the others once collecting is done.

The registry collects each phase from every plugin in turn, so a plugin can be unloaded
after others have come to rely on what it contributed: a permission their routes or event
types name, an event type their subscribers want, a service they asked for. Each such
plugin is unloaded in turn, saying what it lost, until every plugin left has what it needs
(:func:`missing_dependency`); nothing the server serves names what is not there.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

from omnichannel_core.events.records import EventTypeSpec
from omnichannel_core.jobs.specs import Subscriber
from omnichannel_core.policy import Policy
from omnichannel_core.routes import Route, operations_of


def missing_dependency(
    *,
    routes: Iterable[Route],
    event_types: Iterable[EventTypeSpec],
    subscribers: Iterable[Subscriber],
    services_used: Iterable[type],
    policy: Policy,
    known_event_types: Collection[str],
    offered_services: Collection[type],
) -> str | None:
    """Why a plugin with these contributions can no longer work, or None when it can."""
    for route in routes:
        for method, operation in operations_of(route.resource).items():
            if operation.permission is not None and not policy.knows(operation.permission):
                return (
                    f"{method} {route.path} needs the permission {operation.permission!r},"
                    " which the plugin that contributed it took back when it was unloaded"
                )
    for spec in event_types:
        if not policy.knows(spec.permission):
            return (
                f"event type {spec.name!r} needs the permission {spec.permission!r}, which"
                " the plugin that contributed it took back when it was unloaded"
            )
    for subscriber in subscribers:
        lost = sorted((subscriber.types or frozenset()) - set(known_event_types))
        if lost:
            return (
                f"subscriber {subscriber.name!r} wants event types {lost}, whose plugin was"
                " unloaded"
            )
    for interface in services_used:
        if interface not in offered_services:
            return f"it uses {interface.__name__}, which no loaded plugin offers any more"
    return None
