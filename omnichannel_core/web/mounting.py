"""Mounting the registered routes on the Falcon app, and finding, for a resource Falcon
matched, the declarations that govern it (its :class:`Operation` per method, its
:class:`RoutePolicy`): the middleware looks them up here, in one place."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import falcon.asgi
import structlog

from omnichannel_core.config import Config
from omnichannel_core.routes import (
    API_POLICY,
    Operation,
    Route,
    RoutePolicy,
    operations_of,
)
from omnichannel_core.setting_values import Snapshot

log = structlog.get_logger("omnichannel.web")


@attrs.frozen
class Mounted:
    """A mounted route: its declaration, who serves it, and its CORS origins as read at
    mounting (:meth:`Mounts.origins` reads them again once stored settings change)."""

    route: Route
    owner: str
    cors_origins: frozenset[str]

    @property
    def policy(self) -> RoutePolicy:
        return self.route.policy


class Mounts:
    """The routes on the app, by resource."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._by_resource: dict[int, Mounted] = {}
        self._read_again: dict[int, tuple[Snapshot, frozenset[str]]] = {}
        """Per resource: the origins read again for a later version of the stored settings."""
        self.default_origins = frozenset(API_POLICY.cors.origins(config))
        self._mounted_with = config.stored_settings.snapshot()

    def mount(self, app: falcon.asgi.App, owner: str, route: Route) -> None:
        origins = _normal(route.policy.cors.origins(self.config))
        app.add_route(route.path, route.resource)
        self._by_resource[id(route.resource)] = Mounted(route, owner, origins)

    def mount_all(self, app: falcon.asgi.App, routes: Iterable[tuple[str, Route]]) -> None:
        for owner, route in routes:
            self.mount(app, owner, route)

    def find(self, resource: object | None) -> Mounted | None:
        """The mounted route of ``resource`` (None: nothing matched, or not mounted here)."""
        if resource is None:
            return None
        return self._by_resource.get(id(resource))

    def operation(self, resource: object | None, method: str) -> Operation | None:
        """The operation declared for ``method`` (a HEAD without its own, the GET's)."""
        if resource is None:
            return None
        operations = operations_of(resource)
        found = operations.get(method)
        if found is None and method == "HEAD":
            found = operations.get("GET")
        return found

    def policy(self, resource: object | None) -> RoutePolicy:
        mounted = self.find(resource)
        return mounted.policy if mounted is not None else API_POLICY

    def origins(self, resource: object | None) -> frozenset[str]:
        """The origins that may call ``resource`` from a browser. A route's own (a channel's
        ``OriginsSetting``) follow the stored settings: read again once an admin changed
        them, so a site added through the settings API is let in without a restart. A
        value that cannot be read lets no other site in (the channel's health says why)."""
        mounted = self.find(resource)
        if mounted is None:
            return self.default_origins
        stored = self.config.stored_settings.snapshot()
        if stored is self._mounted_with:
            return mounted.cors_origins
        key = id(mounted.route.resource)
        cached = self._read_again.get(key)
        if cached is not None and cached[0] is stored:
            return cached[1]
        try:
            origins = _normal(mounted.policy.cors.origins(self.config))
        except ValueError as error:
            log.warning("cors_origins_unreadable", path=mounted.route.path, error=str(error))
            origins = frozenset()
        self._read_again[key] = (stored, origins)
        return origins


def _normal(origins: Iterable[str]) -> frozenset[str]:
    return frozenset(origin.rstrip("/").lower() for origin in origins)
