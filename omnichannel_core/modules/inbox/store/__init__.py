"""The inbox's store: contacts, conversations and messages, on SQLite (`store.sqlite`) and
Firestore (`store.firestore`).

Every query is answerable by one simple index (no joins); every write that must be atomic
(dedupe, forward-only status, idempotency) is one method, so each backend can make it one
transaction, and each write logs its events (`events.py`) in that transaction.
``tests/store_contract/`` pins the contract on both backends.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, cast

import attrs

from omnichannel_core.channel import InboundMessage, StatusUpdate
from omnichannel_core.module import (
    UNSET,
    AuditEntry,
    Author,
    Contact,
    ContactActivity,
    Conversation,
    ConversationChange,
    ConversationRecord,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Identity,
    Media,
    Message,
    Page,
    parse_timestamp,
)
from omnichannel_core.modules.inbox.store.erasure import Erasure
from omnichannel_core.modules.inbox.store.outbox import REPLY, OutboxStore

PARKED_STATUS_TTL = timedelta(minutes=15)
"""How long a status update for a provider id not yet recorded is kept, waiting for it."""

WATERMARK_BATCH = 200
"""How many messages :meth:`Store.apply_watermark` reads, and moves, per transaction: a
receipt for a long conversation costs several small transactions, never one unbounded read
(on Firestore, 200 messages and their events are 400 of a commit's 500 writes)."""


SETTLED_RANK = DeliveryStatus.SENT.rank
"""A message that reaches this rank (``sent`` and beyond, or a terminal status) is settled:
its outbox entry goes in the same transaction."""


def wrote_at(inbound: InboundMessage, stored_at: datetime) -> datetime:
    """When the customer wrote ``inbound``, for `Conversation.last_inbound_at`: the
    provider's ``sent_at`` (a webhook retried late still counts from when they wrote), but
    never after ``stored_at``, so a provider's clock ahead of ours cannot stretch the
    window."""
    if inbound.sent_at is None:
        return stored_at
    return min(parse_timestamp(inbound.sent_at), stored_at)


def stored_media(inbound: InboundMessage) -> tuple[Media, ...]:
    """The media an inbound message is stored with. The inbox keeps every
    :class:`~omnichannel_core.channel.Attachment` in the media store, and names it as
    :class:`Media`, before it stores the message: bytes reaching a store are a bug."""
    for item in inbound.media:
        if not isinstance(item, Media):
            raise TypeError(f"inbound media must be kept before it is stored, not {item!r:.80}")
    return cast("tuple[Media, ...]", inbound.media)


WATERMARKED_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.DELIVERED)
"""What a watermark may move: messages the provider accepted. A queued or sending message
(a send in flight, or retrying) was not sent before any watermark, whatever its
``created_at`` says, so a receipt must not mark it delivered or read."""


def statuses_behind(status: DeliveryStatus) -> tuple[DeliveryStatus, ...]:
    """The statuses a watermark for ``status`` moves messages from: accepted by the
    provider (:data:`WATERMARKED_STATUSES`) and behind ``status``."""
    return tuple(behind for behind in WATERMARKED_STATUSES if behind.can_move_to(status))


class Ingested:
    """The result of storing an inbound message: whether it is new, its ids, and the message,
    contact and conversation as stored.

    The three models may be built lazily, on first access: the inbound hot path only needs
    ``created`` and the ids, and building models costs more than the write itself. Build one
    eagerly with :meth:`of`.
    """

    __slots__ = ("_build", "_models", "conversation_id", "created", "message_id")

    def __init__(
        self,
        *,
        created: bool,
        message_id: str,
        conversation_id: str,
        build: Callable[[], tuple[Message, Contact, Conversation]],
    ) -> None:
        self.created = created
        self.message_id = message_id
        self.conversation_id = conversation_id
        self._build = build
        self._models: tuple[Message, Contact, Conversation] | None = None

    @classmethod
    def of(
        cls, message: Message, contact: Contact, conversation: Conversation, created: bool
    ) -> Ingested:
        models = (message, contact, conversation)
        return cls(
            created=created,
            message_id=message.id,
            conversation_id=conversation.id,
            build=lambda: models,
        )

    def _loaded(self) -> tuple[Message, Contact, Conversation]:
        if self._models is None:
            self._models = self._build()
        return self._models

    @property
    def message(self) -> Message:
        return self._loaded()[0]

    @property
    def contact(self) -> Contact:
        return self._loaded()[1]

    @property
    def conversation(self) -> Conversation:
        return self._loaded()[2]

    def __repr__(self) -> str:
        return f"Ingested(message_id={self.message_id!r}, created={self.created})"


@attrs.frozen
class StatusApplied:
    """The result of a status update.

    :param message: the message as stored afterwards; None when no message has that
        provider id (yet).
    :param changed: True when the message's status moved.
    :param parked: True when no message had the provider id, so the update was parked
        until one records it (see :meth:`Store.apply_status`).
    :param provider_id_conflict: True when :meth:`Store.advance_message` was given a
        provider id another message of the same channel and direction already holds; the
        status still moved, the provider id was not recorded.
    """

    message: Message | None
    changed: bool
    parked: bool = False
    provider_id_conflict: bool = False


class InboxStore(OutboxStore, Protocol):
    """What every backend implements for the inbox (the outbox's part is
    :class:`~omnichannel_core.modules.inbox.store.outbox.OutboxStore`). All methods are
    coroutines."""

    parked_status_ttl: timedelta
    """How long a parked status update waits for its message; PARKED_STATUS_TTL unless a
    caller (a test) changes it."""

    watermark_batch: int
    """Messages per transaction of :meth:`apply_watermark`; WATERMARK_BATCH unless a caller
    (a test) changes it."""

    async def ingest_inbound(self, channel: str, inbound: InboundMessage) -> Ingested:
        """Store an inbound message, upserting its contact and conversation, atomically.

        Dedupes on (channel, provider_message_id) before anything else: a second call with
        the same pair changes nothing and answers ``created=False`` with the stored message.
        The contact is found (or made) by ``inbound.sender``; ``inbound.consent`` adds the
        channel to (opt-out) or removes it from (opt-in) the contact's ``opted_out``.

        The conversation (`omnichannel_core.modules.inbox.store.threads`): with
        ``inbound.thread`` None, the contact's conversation on the channel (the most
        recently created, when it has several), made if none. With a thread, the
        conversation of its first ref a message of this channel holds as provider id (either
        direction; outbound first) when the sender is that conversation's contact or one of
        its ``participants``; else a new conversation of the sender's contact, the message's
        metadata then holding ``thread_refused: true`` when a ref was known. The thread's
        participants are added to the conversation's (less its own address). The
        conversation answers to ``inbound.reply_to or inbound.sender`` when the sender is
        its contact; a participant's message leaves its address alone.
        ``inbound.automated`` is stored as ``metadata["automated"] = True``.
        """

    async def resolve_recipient(
        self,
        channel: str,
        address: str,
        display_name: str | None = None,
        reply_to: str | None = None,
        new_conversation: bool = False,
    ) -> tuple[Contact, Conversation]:
        """The contact reached at ``address`` on ``channel`` and its conversation there (the
        most recently created), created if new, or with ``new_conversation`` a new one even
        when it has some (an agent starting a new email thread); the conversation answers
        to ``reply_to`` when given, else ``address``."""

    async def find_conversation(self, channel: str, address: str) -> Conversation | None:
        """The conversation :meth:`resolve_recipient` would pick for ``address`` on
        ``channel`` (without ``new_conversation``): the most recently created of the contact
        reached there; None when no contact is, or it has no conversation on the channel (a
        contact met only as a participant of another's thread). Writes nothing."""

    async def create_outbound(
        self,
        conversation_id: str,
        text: str | None,
        media: tuple[Media, ...],
        metadata: dict[str, Any],
        idempotency_key: str | None,
        expected_assignee: str | None = UNSET,
        send_at: datetime | None = None,
        priority: int = REPLY,
        author: Author | None = None,
    ) -> tuple[Message, bool]:
        """Store a queued outbound message sent by ``author``, and its outbox entry (due at
        ``send_at``, or now);
        with an idempotency key already used, return the stored message and False instead.
        With ``expected_assignee``, store nothing and raise Conflict unless the
        conversation's assignee is that one (None: unassigned) when the message is stored: an
        agent's reply cannot land in a conversation just given to someone else."""

    async def find_by_provider_id(
        self, channel: str, direction: Direction, provider_message_id: str
    ) -> Message | None:
        """The message of ``direction`` the provider knows by this id on ``channel``, if
        any (an inbound one is unique by it; an outbound one once its send recorded it)."""

    async def find_by_idempotency_key(self, idempotency_key: str) -> Message | None:
        """The outbound message stored under this idempotency key, if any."""

    async def advance_message(
        self,
        message_id: str,
        status: DeliveryStatus,
        provider_message_id: str | None = None,
        error_code: str | None = None,
        error_message: str | None = None,
        settle: bool = False,
    ) -> StatusApplied:
        """Move an outbound message forward (never back); record its provider id if new.

        With ``settle`` (the provider took it, whatever status it reported), its outbox entry
        goes in the same transaction, with the error an earlier attempt left.

        Recording the provider id applies, in the same transaction, every unexpired update
        parked for (the message's channel, that id), forward-only (the highest status wins;
        an error code given by an applied update is kept), and deletes them. ``changed`` is
        True when the status moved, by ``status`` or by a parked update.

        When another message of the same channel and direction already holds the provider
        id, the status still moves, the id is not recorded, nothing parked is applied, and
        the answer has ``provider_id_conflict=True``. A message that already has a provider
        id keeps it.
        """

    async def apply_status(self, channel: str, update: StatusUpdate) -> StatusApplied:
        """Apply a provider status update to the outbound message with that provider id.

        With no such message on ``channel`` (yet: the callback may race the answer to
        ``send``), the update is parked, answering ``message=None, parked=True``. A repeat of
        a parked (channel, provider id, status) is parked once. Parked updates older than
        ``parked_status_ttl`` are never applied, and may be deleted at any time (e.g. on each
        park).
        """

    async def apply_watermark(
        self, channel: str, recipient: str, status: DeliveryStatus, up_to: datetime
    ) -> list[Message]:
        """Move to ``status`` every outbound message of the conversations on ``channel``
        answering to ``recipient`` (normally one) that was stored at or before ``up_to`` and
        can move there (`DeliveryStatus.can_move_to`: forward only, terminal ones stay).

        Returns the messages it moved, as stored afterwards, oldest first; ``[]`` for a
        recipient no conversation answers to. Reads and moves at most ``watermark_batch``
        messages per transaction, each move logging ``message.status_changed`` in it, so a
        watermark interrupted part way has moved whole batches, and applying it again moves
        the rest.
        """

    async def get_message(self, message_id: str) -> Message:
        """The message, or raise NotFound."""

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        """A conversation's messages, oldest first."""

    async def replace_media(
        self, message_id: str, index: int, provider_url: str, media: Media
    ) -> Message | None:
        """Put ``media`` (kept in the media store) in place of item ``index`` of the
        message's media while that item is still the provider's ``provider_url`` (no
        ``id``), logging ``message.updated``; None, changing nothing, when it no longer is
        or there is no such item (`store.media.with_kept_media`). NotFound for an unknown
        message."""

    async def get_contact(self, contact_id: str) -> Contact:
        """The contact, or raise NotFound; for a contact merged away, the survivor (whose
        ``id`` differs from the one asked)."""

    async def update_contact(self, contact_id: str, **changes: Any) -> Contact:
        """Change the given profile fields (`store.profiles.PROFILE_FIELDS`: lists and
        ``attributes`` replaced whole), search words and reach following; log
        ``contact.updated`` with the names of the fields that changed, and write nothing when
        none did. InvalidInput for a field that is not one; NotFound for an unknown id; a
        merged-away id changes the survivor."""

    async def create_contact(
        self, identities: Collection[Identity] = (), profile: Mapping[str, Any] | None = None
    ) -> Contact:
        """A new contact with ``identities`` and ``profile`` (``update_contact``'s fields),
        logging ``contact.created`` (``fields``: the profile's names). Conflict, storing
        nothing, when an identity is another contact's (its id in ``contact_id``)."""

    async def add_identity(self, contact_id: str, identity: Identity) -> Contact:
        """Make ``identity`` the contact's too (logs ``contact.updated``, ``fields``:
        ``["identities"]``); nothing when it is already; Conflict (the holder in
        ``contact_id``) when another contact holds it.

        The next message through it joins the contact's conversation on that channel by
        the rule of every identity: **a contact's messages on a channel, through whichever
        of its identities there, join its most recently created conversation on that
        channel** (threads aside, `store.threads`). An identity added to a contact that has
        conversations on its channel therefore leads to the newest of them."""

    async def remove_identity(self, contact_id: str, identity: Identity) -> Contact:
        """Stop reaching the contact at ``identity`` (logs ``contact.updated``); its
        conversations keep their address. NotFound when the contact has no such identity."""

    async def merge_contacts(
        self, survivor_id: str, merged_id: str, audit: AuditEntry | None = None
    ) -> Contact:
        """Move ``merged_id``'s identities, conversations and messages to ``survivor_id``,
        its profile by `store.profiles.merged_profile`, and leave ``merged_id`` as a
        tombstone (``merged_into``) that every read follows; log ``contact.merged`` on the
        survivor (``merged_id``), and append ``audit`` in the same transaction (the first,
        on a store that needs two). The survivor as stored after.

        A message arriving meanwhile for either contact lands on the survivor, and once the
        call returns nothing (identity, conversation, message, key) names ``merged_id``.
        InvalidInput when both are one contact; NotFound for an unknown one; Conflict (the
        survivor in ``contact_id``) when ``merged_id`` was merged already, after finishing
        what that merge may have left to move (a merge retried after a crash)."""

    async def erase_contact(self, contact_id: str, audit: AuditEntry | None = None) -> Erasure:
        """Erase the contact, and every contact merged into it, as `store.erasure` says,
        keeping their ids; log ``contact.erased`` and append ``audit`` in the same
        transaction as the first write. What this call did, and the media ids the media
        store is still to forget (:meth:`finish_erasure` once it did).

        Safe to call again: an erasure interrupted (on a store that needs several
        transactions) is finished, one finished redacts nothing more; neither logs nor
        audits again. NotFound for an unknown id; Conflict (the survivor in ``contact_id``)
        for a contact merged away: erase the survivor."""

    async def finish_erasure(self, contact_id: str) -> None:
        """The media of the erasure of ``contact_id`` are forgotten: drop their ids from
        its tombstone."""

    async def contact_records(
        self, contact_id: str
    ) -> tuple[Contact, list[Conversation], list[Message]]:
        """All the store holds about a contact (the survivor, for one merged away): the
        contact, its conversations (oldest first), and their messages with those it sent
        in others' conversations (oldest first). NotFound for an unknown or erased id."""

    async def find_contacts(
        self, emails: Collection[str] = (), phones: Collection[str] = (), limit: int = 20
    ) -> list[Contact]:
        """Contacts (at most ``limit``, oldest first) whose reach (`store.profiles`) holds
        any of ``emails`` or ``phones``; never a tombstone."""

    async def contact_visible_to(self, contact_id: str, user_id: str) -> bool:
        """Whether the contact (the survivor, for one merged away) has a conversation
        assigned to ``user_id`` or to nobody. NotFound for an unknown id."""

    async def contact_audience(self, contact_id: str) -> frozenset[str | None]:
        """The assignees of the contact's conversations (None: one assigned to nobody):
        the agents told of its events (`contact_audience` in the inbox's event types). An
        empty set for a contact with none, or an unknown id (a merged one's are the
        survivor's: its events are logged on the survivor)."""

    async def scan_contacts(self, cursor: str | None, limit: int) -> Page:
        """Every contact but tombstones, by id, ``limit`` at a time."""

    async def contact_activity(self, contact_ids: Collection[str]) -> dict[str, ContactActivity]:
        """Each id's :class:`ContactActivity` from the conversations it owns (an empty one
        for none)."""

    async def add_contact_attributes(
        self, contact_id: str, attributes: Mapping[str, Any]
    ) -> Contact:
        """Set each of ``attributes`` the contact does not have yet (by name; those it has
        keep their values), in one transaction, so a change made meanwhile (an agent's
        ``update_contact``) is never overwritten; the contact as stored after. Logs
        ``contact.updated`` (``fields``: ``["attributes"]``) when it set one, and writes
        nothing when it had them all. NotFound for an unknown id."""

    async def list_contacts(
        self, search: str | None, cursor: str | None, limit: int, visible_to: str | None = None
    ) -> Page:
        """Contacts, newest first, filtered by ``search``, never a tombstone; with
        ``visible_to`` (a user id) only those with a conversation assigned to that user or
        to nobody.

        ``search`` is split on whitespace into tokens; a contact matches when every token is
        a case-insensitive prefix of at least one of its search words: each word of the
        display name; each identity address, profile email and phone; for a phone-like
        address (up to 15 digits) also its digits alone and each ending of them at least 7
        digits long; for an email address also the part after ``@``.
        `omnichannel_core.modules.inbox.store.search` defines and computes them; a backend
        stores what it computes. No wildcards. None, or only whitespace, matches every
        contact.
        """

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """The conversation, or raise NotFound."""

    async def log_typing(
        self, conversation_id: str, by: str, user_id: str | None, until: datetime
    ) -> None:
        """Log ``conversation.typing`` for the conversation, with its assignee, in a write
        of its own that changes nothing else: ``by`` (``contact`` or ``user``) is typing,
        ``user_id`` the user (None for the contact, or a program), shown until ``until``.
        NotFound for an unknown conversation. Callers throttle (the inbox service does)."""

    async def update_conversation(
        self,
        conversation_id: str,
        status: ConversationStatus = UNSET,
        assignee: str | None = UNSET,
        unread_count: int = UNSET,
        expected_assignee: str | None = UNSET,
        audit: AuditEntry | None = None,
        by: Author | None = None,
    ) -> Conversation:
        """Change the given fields; raise NotFound for an unknown id. A change of the status
        or assignee is kept in the conversation's history (`store.history`), made ``by``
        that caller.

        With ``expected_assignee``, change nothing and raise Conflict unless the
        conversation's assignee is that one (None: unassigned) when the change is made, so
        two agents taking one conversation at once cannot both win. ``audit`` is appended to
        the core's audit log in the same transaction as the change."""

    # The event log: each write above appends its events in its own transaction
    # (`omnichannel_core.modules.inbox.events` names them and what their data holds).
    #
    # - message.created: ingest_inbound and create_outbound, when they store a new message;
    # - message.status_changed: advance_message, apply_status and apply_watermark, when the
    #   status moved (a parked update applied when its message records the provider id
    #   included), one per message moved;
    # - message.updated: replace_media (``fields``: ``["media"]``);
    # - conversation.updated: update_conversation (``assignees``: after, then before when
    #   the assignee changed), and ingest_inbound when the new message reopened a resolved
    #   conversation (``changes``: ``{"status": ["resolved", "open"]}``; logged after the
    #   message's message.created, in the same transaction; ``assignees``: the assignee);
    # - contact.updated: update_contact and add_contact_attributes when they changed
    #   something, add_identity and remove_identity (``fields``: ``["identities"]``), and
    #   ingest_inbound when ``consent`` changed the contact's ``opted_out``;
    # - contact.created: create_contact; contact.merged: merge_contacts (on the survivor);
    # - contact.erased: erase_contact (once, by the call that erases);
    # - conversation.typing: log_typing, and only it (``assignees``: the assignee).

    async def conversation_changes(self, conversation_id: str) -> tuple[ConversationChange, ...]:
        """The conversation's history, oldest first: each change of its status or assignee
        (update_conversation's, and a contact's message reopening it). NotFound for an
        unknown conversation. Whole: for a rebuild (`services.InboxHistory`); the API pages
        it with ``list_changes``."""

    async def list_changes(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        """One page of the conversation's history, oldest first (by ``at``, then id), the
        changes ``conversation_changes`` reads whole. NotFound for an unknown conversation;
        InvalidInput for a cursor no page of this list could have made."""

    async def scan_history(
        self, cursor: str | None, limit: int
    ) -> tuple[list[ConversationRecord], str | None]:
        """Conversations in id order, each with all its messages and history: what
        `services.InboxHistory.scan` hands over."""

    async def list_conversations(
        self,
        status: ConversationStatus | None,
        channel: str | None,
        assignee: str | None,
        cursor: str | None,
        limit: int,
        assigned_to_or_unassigned: str | None = None,
    ) -> Page:
        """Conversations, most recent activity first, filtered by any given field.

        ``assigned_to_or_unassigned`` (an agent's user id) keeps only the conversations
        assigned to that user or to nobody: what an agent may see."""
