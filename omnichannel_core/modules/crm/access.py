"""Which contacts a caller may see and work: an agent only those with a conversation
assigned to them or to nobody (the conversations they can see); everyone else every one.
Every route that hands out a contact, or something of one (notes, timeline, identities),
asks here; the realtime stream applies the same rule to contact events (the inbox's
contact event types declare their audience).

What a caller may do at all (the permission each route needs) is the core's policy."""

from __future__ import annotations

from omnichannel_core.module import Contact, ContactBook, Forbidden, Principal

AGENTS_SEE_THEIRS = (
    "An agent may see and work only the contacts of conversations they can see (assigned to"
    " them or to nobody); any other answers 403 `forbidden`."
)


async def visible_contact(contacts: ContactBook, principal: Principal, contact_id: str) -> Contact:
    """The contact (the survivor, for one merged away), if ``principal`` may see it; else
    raise Forbidden, or NotFound for an unknown id."""
    contact = await contacts.get_contact(contact_id)
    if principal.is_agent and not await contacts.visible_to(contact.id, principal.id):
        raise Forbidden(
            "agents see only the contacts of conversations assigned to them or to nobody",
            permission="agent",
        )
    return contact
