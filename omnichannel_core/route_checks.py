"""The checks a route must pass before it is mounted (``register_routes`` results).

Each is a declaration the kernel relies on: every method served has an :class:`Operation`
(so the middleware knows who may call it, and the document lists it), every operation has a
responder, every permission named exists, every body class has a schema. A route that fails
one unloads its plugin at start-up, with the reason, instead of failing a caller later.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable
from typing import Any

import attrs
import falcon.asgi

from omnichannel_core.bodies.schema import Mode, PageOf, SchemaBook
from omnichannel_core.policy import Policy
from omnichannel_core.routes import Operation, Route, operations_of, responders_of
from omnichannel_core.shared_errors import ERRORS


class RouteProblem(Exception):
    """Why a route cannot be mounted."""


def check_route(route: Route, policy: Policy) -> None:
    """Raise :class:`RouteProblem` saying what is wrong with ``route``."""
    if not isinstance(route.path, str) or not route.path.startswith("/"):
        raise RouteProblem(f"route path {route.path!r} must start with /")
    where = f"route {route.path!r}"
    responders = responders_of(route.resource)
    operations = operations_of(route.resource)
    if callable(getattr(route.resource, "on_options", None)):
        raise RouteProblem(
            f"{where} defines on_options: OPTIONS is the core's (CORS preflights, answered"
            " without credentials)"
        )
    if not responders:
        raise RouteProblem(f"{where} has no on_<method> responder")
    for method, responder in responders.items():
        if not inspect.iscoroutinefunction(responder):
            raise RouteProblem(f"{where}: responders must be coroutines (async def)")
        if method not in operations and not (method == "HEAD" and "GET" in operations):
            raise RouteProblem(
                f"{where} serves {method} but declares no Operation for it in `operations`"
            )
    for method, operation in operations.items():
        if method not in responders:
            raise RouteProblem(f"{where} declares {method} but has no on_{method.lower()}")
        _check_operation(f"{method} {route.path}", operation, policy)


def _check_operation(where: str, operation: Any, policy: Policy) -> None:
    if not isinstance(operation, Operation):
        raise RouteProblem(f"{where}: operations must be Operation objects")
    if operation.public and operation.permission is not None:
        raise RouteProblem(f"{where} is public, so it needs no permission")
    if not operation.public:
        if operation.permission is None:
            raise RouteProblem(
                f"{where} is not public, so it must name the permission a caller needs"
                " (Operation(..., permission='conversations:read'))"
            )
        if not policy.knows(operation.permission):
            known = ", ".join(sorted(policy.everything))
            raise RouteProblem(
                f"{where} needs unknown permission {operation.permission!r}; known: {known}"
            )
    unknown = sorted(set(operation.errors) - set(ERRORS))
    if unknown:
        raise RouteProblem(
            f"{where} names unknown errors {unknown}; the shared ones are"
            f" {', '.join(sorted(ERRORS))} (declare any other in responses)"
        )
    book = SchemaBook()
    for part in (operation.body, operation.query, operation.headers):
        if part is not None:
            _schema(where, book, part, Mode.REQUEST)
    for response in operation.responses.values():
        if response.body is not None:
            _schema(where, book, response.body, Mode.RESPONSE)


def _schema(where: str, book: SchemaBook, target: Any, mode: Mode) -> None:
    item = target.item if isinstance(target, PageOf) else target
    if not (isinstance(item, type) and attrs.has(item)):
        raise RouteProblem(f"{where}: {target!r} is not a body class (an attrs class)")
    try:
        book.reference(target, mode)
    except (TypeError, AttributeError) as error:
        raise RouteProblem(f"{where}: {error}") from None


def check_schemas(routes: Iterable[Route]) -> None:
    """Describe every route's bodies in one book, as the OpenAPI document does, so two body
    classes of one name, or one class read both ways with different schemas, fail here
    rather than when the document is first asked for."""
    book = SchemaBook()
    for route in routes:
        for method, operation in operations_of(route.resource).items():
            for part in (operation.body, operation.query, operation.headers):
                if part is not None:
                    _schema(f"{method} {route.path}", book, part, Mode.REQUEST)
            for response in operation.responses.values():
                if response.body is not None:
                    _schema(f"{method} {route.path}", book, response.body, Mode.RESPONSE)


def check_templates(routes: Iterable[Route]) -> None:
    """Route every template on a scratch app, so templates Falcon refuses (two field names
    at one level) fail here rather than halfway through mounting."""
    scratch = falcon.asgi.App()
    for route in routes:
        try:
            scratch.add_route(route.path, route.resource)
        except ValueError as error:  # falcon's UnacceptableRouteError is a ValueError
            raise RouteProblem(f"route {route.path!r} cannot be routed: {error}") from None
