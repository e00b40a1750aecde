"""The users, as other modules see them (:class:`omnichannel_core.module.UserDirectory`)."""

from __future__ import annotations

from omnichannel_core.module import NotFound, UserSummary
from omnichannel_core.modules.access.store import AccessStore


class AccessDirectory:
    def __init__(self, store: AccessStore) -> None:
        self.store = store

    async def user(self, user_id: str) -> UserSummary | None:
        try:
            user = await self.store.get_user(user_id)
        except NotFound:
            return None
        return UserSummary(user.id, user.display_name, user.role, user.active)
