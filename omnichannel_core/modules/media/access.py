"""Who may read a kept item, and so attach it to a message by its id (docs/media.md): its
uploader, a holder of ``media:read_all``, or whoever may see a message that holds it. The
last is the download route's own check (:meth:`MediaAccess.visible_message`), which both
the route and the attach ask: one rule, written once.

A caller who may not read an item is told what a caller naming an unknown id is told, so
an id is never confirmed to whoever guesses it (nor are ids easy to guess: they are drawn
from the operating system's generator, ``new_id(..., unguessable=True)``).
"""

from __future__ import annotations

from collections.abc import Callable

from omnichannel_core.module import Forbidden, InboxMedia, Message, NotFound, Principal
from omnichannel_core.modules.media.permissions import CONVERSATIONS_READ, MEDIA_READ_ALL
from omnichannel_core.modules.media.records import StoredMedia
from omnichannel_core.modules.media.store import MediaStore

HOLDERS_LOOKED_AT = 25
"""How many of the messages holding an item (the newest) are looked at for one the caller
may see. A file sent to thousands of contacts is not read thousands of times for one
attach; a caller who may see only older messages holding it uploads it again."""


def owner_of(principal: Principal) -> str:
    """Who an upload belongs to: ``user:<id>`` or ``api_key:<id>``."""
    return f"{principal.kind}:{principal.id}"


def reads_by_id(principal: Principal, stored: StoredMedia) -> bool:
    """Whether ``principal`` may read ``stored`` by its id alone (``GET /api/media/{id}``):
    its uploader, or a holder of ``media:read_all``."""
    return MEDIA_READ_ALL in principal.permissions or stored.uploaded_by == owner_of(principal)


class MediaAccess:
    """The rule on the media store and the inbox (:class:`InboxMedia`, found when first
    asked: the inbox offers it once every module has offered its services)."""

    def __init__(self, store: MediaStore, inbox: Callable[[], InboxMedia]) -> None:
        self.store = store
        self.inbox = inbox

    async def visible_message(self, principal: Principal, message_id: str) -> Message:
        """The message, when ``principal`` may read its media: ``conversations:read``, and
        the inbox's rule (an agent: a conversation that is theirs or nobody's). Forbidden
        otherwise, NotFound for an unknown id."""
        principal.require(CONVERSATIONS_READ)
        return await self.inbox().visible_message(principal, message_id)

    async def may_read(self, principal: Principal, stored: StoredMedia) -> bool:
        """Whether ``principal`` may read ``stored``, and so attach it: by its id
        (:func:`reads_by_id`), or through a message that holds it."""
        if reads_by_id(principal, stored):
            return True
        if CONVERSATIONS_READ not in principal.permissions:
            return False  # asked before the store is read: no message could be seen
        for message_id in await self.store.holders(stored.id, HOLDERS_LOOKED_AT):
            try:
                message = await self.visible_message(principal, message_id)
            except (Forbidden, NotFound, LookupError):  # LookupError: no inbox loaded
                continue
            if any(item.id == stored.id for item in message.media):
                return True
        return False
