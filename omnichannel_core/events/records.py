"""The event log's entries, and the event types modules declare.

Every write that changes what agents see appends its events to the log in the store, in the
same transaction as the change. The kernel owns the log; the types are the modules': each
declares its own (``register_event_types``) with the permission a stream's reader needs to
be told of them and how to load the record an event names.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import attrs


@attrs.frozen
class Event:
    """One entry of the store's event log.

    :param cursor: where the event is in the log, made by the store: opaque, and what a
        stream is resumed from (``Last-Event-ID``) and a subscriber goes on from.
    :param type: what happened: a registered event type's name (``message.created``).
    :param record_id: the record it happened to (its type's :attr:`EventTypeSpec.record`
        says which kind: a message, a conversation, a contact...).
    :param conversation_id: the conversation involved; None for a contact event.
    :param assignees: the conversation's assignee after the change, and before it when it
        changed (None: unassigned); empty for a contact event. An agent is told of the
        event when one of them is theirs or None.
    :param at: when it was logged.
    :param data: what a subscriber needs besides the record's id, by type (a message's
        channel and direction, a conversation's status before and after...). Events logged
        before a type carried data have none.
    """

    cursor: str
    type: str
    record_id: str
    conversation_id: str | None
    assignees: tuple[str | None, ...]
    at: datetime
    data: Mapping[str, Any] = attrs.field(factory=dict)


EVENT_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}(\.[a-z][a-z0-9_]{0,31})+$")

RecordLoader = Callable[[str], Awaitable[Any]]
"""``async def load(record_id) -> JSON-ready record, or None when it is gone``."""

AudienceLoader = Callable[[str], Awaitable[frozenset[str | None]]]
"""``async def audience(record_id) -> the assignees whose conversations make the record
visible to an agent`` (None in it: a conversation assigned to nobody, which every agent
sees)."""


def _type_name(instance: object, attribute: attrs.Attribute[str], value: str) -> None:
    if not isinstance(value, str) or not EVENT_TYPE_NAME.match(value):
        raise ValueError(f"event types look like 'message.created', not {value!r}")


@attrs.frozen
class EventTypeSpec:
    """An event type, as the module that logs it declares it.

    :param name: ``record.happened``, e.g. ``message.created``.
    :param record: what the event's ``record_id`` names (``message``): the key of the
        record in a stream's event data.
    :param permission: what a stream's reader needs to be told of it. An event about a
        conversation (``conversation_id`` set) also follows the conversation's own rule (an
        agent: only theirs or nobody's).
    :param load: reads the record as it is now, JSON-ready (None: gone).
    :param audience: for an event about no conversation, who among agents may be told of
        it: an agent is told only when their id, or None, is in what it answers for the
        record (read once per event). Without it, every reader holding the permission is
        (a contact event is told only to the agents who may see the contact:
        docs/access.md).
    """

    name: str = attrs.field(validator=_type_name)
    record: str
    permission: str
    load: RecordLoader
    description: str = ""
    audience: AudienceLoader | None = None
