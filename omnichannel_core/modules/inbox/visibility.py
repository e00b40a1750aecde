"""Which conversations a caller may see and work: an agent only those assigned to them or to
nobody; everyone else every one. Every route that hands out a conversation or a message, the
inbox's and a channel's own, asks here; the realtime stream applies the same rule to events.
An agent may also assign a conversation only to themselves (:func:`check_assignment`).

What a caller may do at all (the permission each route needs) is the core's policy.
"""

from __future__ import annotations

from omnichannel_core.module import Conversation, Forbidden, Message, Principal
from omnichannel_core.modules.inbox.store import InboxStore


def check_conversation(principal: Principal, assignee: str | None) -> None:
    """An agent may see and work a conversation only when it is theirs or nobody's."""
    if principal.is_agent and assignee not in (None, principal.id):
        raise Forbidden(
            "agents see only conversations assigned to them or to nobody", permission="agent"
        )


def check_assignment(principal: Principal, current: str | None, new: str | None) -> None:
    """An agent may take an unassigned conversation, or give back their own; no more."""
    if not principal.is_agent or new == current:
        return
    if new not in (None, principal.id):
        raise Forbidden("agents may assign conversations only to themselves")


async def visible_conversation(
    store: InboxStore, principal: Principal, conversation_id: str
) -> Conversation:
    """The conversation, if ``principal`` may see it (an agent: theirs or nobody's); else
    raise Forbidden, or NotFound for an unknown id."""
    conversation = await store.get_conversation(conversation_id)
    check_conversation(principal, conversation.assignee)
    return conversation


async def check_message_visible(store: InboxStore, principal: Principal, message: Message) -> None:
    """Raise Forbidden unless ``principal`` may see the conversation ``message`` is in."""
    if principal.is_agent:  # everyone else sees every conversation
        await visible_conversation(store, principal, message.conversation_id)
