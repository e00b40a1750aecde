"""What a stream's reader is told of each event: the rule of the realtime stream.

A reader is told of an event only when they hold its type's permission. An event about no
conversation whose type declares an ``audience`` (a contact's: the assignees of the
contact's conversations) is told to an agent only when it holds them or nobody. An event
about a conversation also follows the inbox's rule: an agent is told of it only when the
conversation was theirs or nobody's around the change (``event.assignees``) *and* is so now,
as the REST API checks: a stream replayed from an old cursor must not show what the API
would refuse. An agent whose conversation was given to someone else is told just that (its
id, status and assignee), so their client can drop it.
"""

from __future__ import annotations

import enum

from omnichannel_core.module import Event, EventTypeSpec, Principal


class EventView(enum.Enum):
    """What a stream is told of one event."""

    HIDDEN = "hidden"
    FULL = "full"
    """The event with its record as it is now."""
    WITHDRAWN = "withdrawn"
    """Only that the conversation left the caller's view (its id, status and assignee)."""


def event_view(
    principal: Principal,
    event: Event,
    kind: EventTypeSpec | None,
    assignee_now: str | None,
    audience: frozenset[str | None] | None = None,
) -> EventView:
    """What a stream of ``principal`` is told of ``event`` (of type ``kind``; None: no loaded
    plugin declares it), whose conversation is assigned to ``assignee_now`` now (None:
    nobody); an event about no conversation whose type declares an audience, only when
    ``audience`` (what it answered) holds the agent or None."""
    if kind is None or kind.permission not in principal.permissions:
        return EventView.HIDDEN
    if not principal.is_agent:
        return EventView.FULL
    visible = (None, principal.id)
    if event.conversation_id is None:
        if kind.audience is None:
            return EventView.FULL
        if audience is not None and any(assignee in visible for assignee in audience):
            return EventView.FULL
        return EventView.HIDDEN
    if not any(assignee in visible for assignee in event.assignees):
        return EventView.HIDDEN
    if assignee_now in visible:
        return EventView.FULL
    if kind.record == "conversation" and event.record_id == event.conversation_id:
        return EventView.WITHDRAWN
    return EventView.HIDDEN
