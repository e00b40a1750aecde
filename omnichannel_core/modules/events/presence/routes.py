"""``GET``/``PUT /api/presence``: the caller's own presence, and the status they set.

Any signed-in user may read and set their own (the permission every caller holds,
``account:own``); an API key has no presence, and is told so (400).
"""

from __future__ import annotations

import attrs
import falcon
import falcon.asgi

from omnichannel_core.module import InvalidInput, Operation, Principal, Response, field, to_json
from omnichannel_core.modules.events.presence.records import OwnPresence, Status
from omnichannel_core.modules.events.presence.service import StoredPresence

OWN_ACCOUNT = "account:own"
"""Access control's permission for one's own account, which every caller holds."""

DEFINITION = (
    "A user is connected while one of their event streams (`GET /api/events`) is open;"
    " `online` when connected and available, `away` when connected and away, `offline`"
    " otherwise. The status is kept across reconnects. A user only: an API key has no"
    " presence (400)."
)


@attrs.frozen
class StatusChange:
    status: Status = field(description="`available` (the default) or `away`")


def user_of(principal: Principal) -> str:
    """The caller's user id; InvalidInput for a caller that is not a user."""
    if principal.kind != "user":
        raise InvalidInput(
            f"only a signed-in user has a presence; this {principal.description} has none"
        )
    return principal.id


class PresenceResource:
    """``GET /api/presence`` and ``PUT /api/presence`` with ``{"status"}``."""

    operations = {
        "GET": Operation(
            "The caller's presence",
            permission=OWN_ACCOUNT,
            responses={200: Response(OwnPresence, "The caller's presence now.")},
            errors=("BadRequest",),
            notes=DEFINITION,
            operation_id="getPresence",
            tags=("presence",),
        ),
        "PUT": Operation(
            "Set the caller's status: available or away",
            permission=OWN_ACCOUNT,
            body=StatusChange,
            responses={200: Response(OwnPresence, "The caller's presence with the new status.")},
            notes=DEFINITION,
            operation_id="setPresence",
            tags=("presence",),
        ),
    }

    def __init__(self, presence: StoredPresence) -> None:
        self.presence = presence

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        user_id = user_of(req.context.principal)
        resp.media = to_json(await self.presence.of_user(user_id))

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        user_id = user_of(req.context.principal)
        body: StatusChange = req.context.body
        resp.media = to_json(await self.presence.set_status(user_id, body.status))
