"""Which conversation an inbound message goes to, the parts of the rule both backends share.

A channel that keeps one conversation per contact (``InboundMessage.thread`` is None) puts
every message of a contact in its conversation on the channel: the most recently created
one, when an agent opened others (``resolve_recipient(new_conversation=True)``), or a
thread did. A channel that keeps one per thread (email) gives a `Thread`: the message
joins the conversation of the first of its refs the store knows: one of our outbound
messages the channel named by its id (``Thread.message_ids``), else a message of this
channel, either direction, with that provider id (our own outbound message first when both
directions hold it, since an inbound id is whatever the sender wrote), when the sender
belongs there (the conversation's contact, its address, or one of its participants). A
sender from
elsewhere who cites the thread starts a conversation of their own, flagged
``thread_refused``, so nobody reads or writes another customer's thread by guessing an id.
No known ref: a new conversation. docs/hooks.md states the rule for channel authors.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from omnichannel_core.channel import InboundMessage, Thread
from omnichannel_core.module import Direction, format_timestamp

MAX_THREAD_REFS = 100
"""Refs looked up per message, nearest first: a long thread's References stay well under
it, and a forged header naming thousands of ids costs no more than this."""

MAX_PARTICIPANTS = 100
"""Participants a conversation keeps; those a message brings beyond it are left out."""

REF_DIRECTIONS = (Direction.OUTBOUND, Direction.INBOUND)
"""Which message a ref names when both directions hold its provider id: ours first."""


def thread_refs(thread: Thread | None) -> tuple[str, ...]:
    """The refs to look up, nearest first, each once, at most :data:`MAX_THREAD_REFS`."""
    if thread is None:
        return ()
    return tuple(dict.fromkeys(ref for ref in thread.refs if ref))[:MAX_THREAD_REFS]


def thread_message_ids(thread: Thread | None) -> tuple[str, ...]:
    """Our outbound messages' ids to look up, nearest first, each once, at most
    :data:`MAX_THREAD_REFS`."""
    if thread is None:
        return ()
    return tuple(dict.fromkeys(ref for ref in thread.message_ids if ref))[:MAX_THREAD_REFS]


def first_known(
    found: Iterable[tuple[str, Direction | str, str]], refs: tuple[str, ...]
) -> str | None:
    """The conversation of the first ref (in ``refs`` order) among ``found`` (ref,
    direction, conversation id), outbound before inbound; None when none is known."""
    conversations = {(ref, str(direction)): conversation for ref, direction, conversation in found}
    for ref in refs:
        for direction in REF_DIRECTIONS:
            conversation = conversations.get((ref, str(direction)))
            if conversation is not None:
                return conversation
    return None


def belongs(
    sender: str,
    sender_contact_id: str | None,
    conversation: tuple[str, str, Iterable[str]],
) -> bool:
    """True when the sender may write in a conversation, given as its (contact id,
    address, participants): the sender is that contact, the address answers go to (a
    customer who asked for answers at another address, ``Reply-To``, writes from there),
    or one of the participants."""
    contact_id, address, participants = conversation
    return sender_contact_id == contact_id or sender == address or sender in participants


def with_participants(
    current: Iterable[str], thread: Thread | None, leave_out: Iterable[str | None]
) -> tuple[str, ...]:
    """``current`` with the thread's participants added after it (each once, in order, up
    to :data:`MAX_PARTICIPANTS`), less ``leave_out`` (the conversation's own address)."""
    kept = tuple(current)
    if thread is None or not thread.participants:
        return kept
    excluded = {address for address in leave_out if address}
    merged = dict.fromkeys(kept)
    for address in thread.participants:
        if len(merged) >= MAX_PARTICIPANTS:
            break
        if address and address not in excluded:
            merged.setdefault(address, None)
    return tuple(merged)


def inbound_metadata(inbound: InboundMessage, refused: bool) -> dict[str, Any]:
    """The stored message's metadata: the channel's, with ``sent_at`` when the provider
    gave it, ``automated`` for a machine's message, ``thread_refused`` when it cited a
    thread its sender does not belong to."""
    metadata = dict(inbound.metadata)
    if inbound.sent_at is not None:
        metadata["sent_at"] = format_timestamp(inbound.sent_at)
    if inbound.automated:
        metadata["automated"] = True
    if refused:
        metadata["thread_refused"] = True
    return metadata
