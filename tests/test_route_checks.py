"""The checks a route passes before it is mounted refuse, by name, a declaration the kernel
could not act on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from omnichannel_core.bodies.schema import PageOf
from omnichannel_core.policy import PermissionSpec, Policy
from omnichannel_core.route_checks import RouteProblem, check_route
from omnichannel_core.routes import Operation, Response, Route

POLICY = Policy([PermissionSpec("notes:read", "Read notes")])


@attrs.frozen
class Note:
    text: str


def resource_declaring(operation: Operation) -> Any:
    class Notes:
        operations = {"GET": operation}

        async def on_get(self, req: Any, resp: Any) -> None:
            resp.media = {}

    return Notes()


def test_a_described_route_passes():
    """A route whose body, query and responses are attrs classes passes."""
    operation = Operation(
        "List", permission="notes:read", query=Note, responses={200: Response(PageOf(Note))}
    )
    check_route(Route("/api/notes", resource_declaring(operation)), POLICY)


@pytest.mark.parametrize(
    "operation",
    [
        Operation("List", permission="notes:read", body=Path),
        Operation("List", permission="notes:read", query=dict),
        Operation("List", permission="notes:read", responses={200: Response(PageOf(Path))}),
    ],
    ids=["body", "query", "page"],
)
def test_a_class_that_is_not_an_attrs_class_is_refused_by_route(operation):
    """A body, query or response class that is not an attrs class is a RouteProblem naming
    the method and route (not attrs' own error, which would unload the plugin without
    saying where)."""
    with pytest.raises(RouteProblem, match=r"^GET /api/notes: .* is not a body class"):
        check_route(Route("/api/notes", resource_declaring(operation)), POLICY)
