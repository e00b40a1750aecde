"""Mounting the registered routes on the Falcon app, and finding, for a resource Falcon
matched, the declarations that govern it (its :class:`Operation` per method, its
:class:`RoutePolicy`): the middleware looks them up here, in one place."""

from __future__ import annotations

from collections.abc import Iterable

import attrs
import falcon.asgi

from omnichannel_core.config import Config
from omnichannel_core.routes import (
    API_POLICY,
    Operation,
    Route,
    RoutePolicy,
    operations_of,
)


@attrs.frozen
class Mounted:
    """A mounted route: its declaration, who serves it, and its CORS origins (read from the
    configuration once, at mounting)."""

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
        self.default_origins = frozenset(API_POLICY.cors.origins(config))

    def mount(self, app: falcon.asgi.App, owner: str, route: Route) -> None:
        origins = frozenset(
            origin.rstrip("/").lower() for origin in route.policy.cors.origins(self.config)
        )
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
        mounted = self.find(resource)
        return mounted.cors_origins if mounted is not None else self.default_origins
