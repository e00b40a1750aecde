"""The services modules offer each other, declared here so that every module (and channel)
can name them without importing the module that provides them.

A module provides a service by returning ``{Interface: implementation}`` from
``register_services``; another gets it with ``context.service(Interface)``. The built-in
modules provide these:

- :class:`InboxReader` (the inbox): read contacts, conversations and messages;
- :class:`UserDirectory` (access): look a user up by id;
- :class:`ChannelInbox` (the inbox, one per channel): what a channel's own routes may do;
  a channel's jobs get theirs from ``context.channel_inbox()`` (through
  :class:`ChannelInboxes`, the inbox's service behind it);
- :class:`LiveEvents` (events): this process's reader of the event log, which
  ``ChannelInbox.follow`` draws on;
- :class:`ContactBook` (the inbox): the contacts, as the CRM works them;
- :class:`Audiences` (the CRM): the members of a segment;
- :class:`BulkSends` (the inbox): mass sends through the outbox, as campaigns make them;
- :class:`AutomatedReplies` (the inbox): a module's own reply in a conversation (an away
  message);
- :class:`CampaignActivity` (campaigns): the campaigns under way;
- :class:`Presence` (events): who is connected, available or away;
- :class:`InboxHistory` (the inbox): every conversation's messages and changes, from the
  store, for what is derived from them (the dashboard's rollups).
- :class:`BusinessSettings` (settings): the business's name, time zone, hours, holidays and
  first-response target (a :class:`~omnichannel_core.business.Business`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime, timedelta
from typing import Any, Protocol

import attrs

from omnichannel_core.audit import AuditEntry
from omnichannel_core.business import Business
from omnichannel_core.hooktypes import Attachment, Reach, WebhookResult
from omnichannel_core.models import (
    Author,
    AuthorKind,
    Contact,
    Conversation,
    ConversationStatus,
    Identity,
    Media,
    Message,
)
from omnichannel_core.paging import Page
from omnichannel_core.policy import Principal, Role
from omnichannel_core.timestamps import format_timestamp


@attrs.frozen
class OutboundRequest:
    """What an agent, a program or a channel's own route asks to send."""

    text: str | None = None
    media: tuple[Media, ...] = ()
    metadata: dict[str, Any] = attrs.field(factory=dict)
    send_at: datetime | None = None
    """Not sent before this time (a scheduled message); None: as soon as its pace allows."""
    author: Author | None = None
    """Who sends it, when not the caller (an automation names itself); None: the
    ``principal`` the send is made for (:func:`author_of`)."""


def author_of(principal: Principal | None, channel: str) -> Author:
    """Who sends a message for ``principal``: the user or key it is; with none, the channel
    itself (a channel's route or job sending for no caller)."""
    if principal is None:
        return Author(AuthorKind.CHANNEL, channel, channel)
    if principal.kind == "user":
        return Author(AuthorKind.USER, principal.id, principal.name)
    if principal.kind == "api_key":
        return Author(AuthorKind.API_KEY, principal.id, principal.name)
    return Author(AuthorKind.SYSTEM, principal.id, principal.name)


@attrs.frozen
class RefusedMedia:
    """An attachment the media store would not keep (its type not allowed, too large, no
    media store): the message was stored without it (``metadata["media_refused"]``)."""

    filename: str | None
    content_type: str | None
    size: int | None
    reason: str

    @classmethod
    def listed_in(cls, metadata: Mapping[str, Any]) -> tuple[RefusedMedia, ...]:
        """The refusals a message's ``metadata["media_refused"]`` lists."""
        listed = metadata.get("media_refused")
        if not isinstance(listed, list | tuple):
            return ()
        return tuple(cls._of(entry) for entry in listed)

    @classmethod
    def _of(cls, entry: object) -> RefusedMedia:
        if not isinstance(entry, Mapping):
            return cls(None, None, None, str(entry))
        filename, content_type = entry.get("filename"), entry.get("content_type")
        size, reason = entry.get("size"), entry.get("reason")
        return cls(
            filename if isinstance(filename, str) else None,
            content_type if isinstance(content_type, str) else None,
            size if isinstance(size, int) and not isinstance(size, bool) else None,
            reason if isinstance(reason, str) else "not kept",
        )


@attrs.frozen
class Received:
    """What :meth:`ChannelInbox.receive` stored for one inbound message.

    :param message_id: the stored message's id (the one stored first, for a duplicate).
    :param conversation_id: the conversation it is in.
    :param created: False when the message was stored already (the same provider message
        id on this channel): nothing was written.
    :param media_refused: the attachments left out (:class:`RefusedMedia`), as the stored
        message lists them: a duplicate answers what its first delivery was told.
    """

    message_id: str
    conversation_id: str
    created: bool
    media_refused: tuple[RefusedMedia, ...] = ()


@attrs.frozen
class ConversationEvent:
    """An event of a followed conversation (:meth:`ChannelInbox.follow`), as
    ``GET /api/events`` tells an agent of it.

    :param cursor: where it is in the event log: what a client resumes ``after``.
    :param type: ``message.created``, ``message.status_changed``, ``message.updated``,
        ``conversation.updated``, ``conversation.typing``, or a type another module
        declares.
    :param record_name: what ``record`` is (``message``, ``conversation``...: the event
        type's record), the key of the record in :meth:`body`.
    :param record: the record as it is now, JSON-ready, as an agent sees it (a message's
        every field, its metadata included); None when it is gone. What a customer is
        shown of it is the channel's choice.
    :param data: what the event carries besides the record, by type (``message.created``:
        ``channel``, ``direction``; ``message.status_changed``: ``status``, ``previous``;
        ``conversation.updated``: ``changes``; ``conversation.typing``: ``by``, ``user_id``,
        ``until``); docs/events.md lists them.
    """

    cursor: str
    type: str
    at: datetime
    conversation_id: str
    record_name: str
    record: Any
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def body(self) -> dict[str, Any]:
        """The event as the stream's ``data`` (``type``, ``at``, ``conversation_id``, and
        the record under its name)."""
        return {
            "type": self.type,
            "at": format_timestamp(self.at),
            "conversation_id": self.conversation_id,
            self.record_name: self.record,
        }


class ConversationFeed(Protocol):
    """The events of some conversations as they happen (:meth:`ChannelInbox.follow`): an
    async iterator, ended when the server stops."""

    @property
    def cursor(self) -> str | None:
        """Where the feed stands in the event log: a new follow ``after`` it misses nothing
        of these conversations (None: before the oldest event, on an empty log)."""

    def __aiter__(self) -> AsyncIterator[ConversationEvent]: ...

    async def __anext__(self) -> ConversationEvent: ...


@attrs.frozen
class UserSummary:
    """A user as other modules see them: no email, no secrets."""

    id: str
    display_name: str
    role: Role
    active: bool


class UserDirectory(Protocol):
    async def user(self, user_id: str) -> UserSummary | None:
        """The user with this id, or None."""


class InboxReader(Protocol):
    """Reading the inbox. Records come back as the API shows them (`omnichannel_core.models`);
    each raises NotFound for an unknown id."""

    async def get_contact(self, contact_id: str) -> Contact: ...

    async def get_conversation(self, conversation_id: str) -> Conversation: ...

    async def get_message(self, message_id: str) -> Message: ...

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        """A conversation's messages, oldest first."""

    async def list_conversations(
        self,
        status: ConversationStatus | None = None,
        channel: str | None = None,
        assignee: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page:
        """Conversations, most recent activity first."""


class ChannelInbox(Protocol):
    """What a channel's own routes (``channel_routes``) may do with the inbox: store and read
    its own messages and conversations, never another channel's, nor anything else.

    :attr:`channel` is the channel's name; every method works on that channel only (a
    message or conversation of another answers NotFound).
    """

    channel: str

    async def receive(self, result: WebhookResult) -> tuple[Received, ...]:
        """Store what ``result`` holds, as a webhook's would be: messages (deduped), then
        statuses, then watermarks. Returns once it is durable: what was stored for each of
        ``result.messages``, in their order (:class:`Received`: the message and
        conversation ids, whether it is new, the attachments refused)."""

    def follow(
        self,
        conversation_ids: Collection[str],
        after: str | None = None,
        max_behind: timedelta | None = None,
    ) -> AbstractAsyncContextManager[ConversationFeed]:
        """The events of these conversations of this channel as they happen, in log order,
        from any server, read by this process's one reader of the event log::

            async with inbox.follow([conversation_id], after=cursor) as events:
                async for event in events:  # ConversationEvent
                    await socket.send_media(event.body() | {"cursor": event.cursor})

        ``after`` is a cursor a :class:`ConversationEvent` gave (or ``feed.cursor``): the
        feed first replays what followed it; None starts with what happens next. Entering
        raises NotFound for a conversation that is not this channel's (check first that
        the caller may follow each), EventsExpired when the log no longer keeps what
        followed ``after`` (read the history instead, then follow from None), and
        InvalidInput for a cursor the log never gave. The feed ends when the server stops;
        leaving the block (or cancelling the task in it) releases it. A slow reader holds
        nothing back: it reads on from its own cursor. To follow one more conversation,
        follow again ``after=feed.cursor``. ChannelUnavailable when the events module is
        not loaded.

        ``max_behind`` bounds what a replay may cost: the feed reads the whole log after
        ``after``, every conversation's events, to find these ones'. A cursor whose next
        event is older than that raises EventsExpired, as a pruned one does, so a client
        back from a long sleep (or one sending an old cursor on purpose) reads its
        conversation's history instead, which costs only that conversation's messages."""

    async def send(
        self,
        to: str,
        request: OutboundRequest,
        idempotency_key: str | None = None,
        *,
        display_name: str | None = None,
        reply_to: str | None = None,
        wait: float | None = None,
        new_conversation: bool = False,
        principal: Principal | None = None,
    ) -> tuple[Message, bool]:
        """Queue a message to the address ``to`` on this channel (the outbox sends it),
        opening the contact and conversation when new; the message and whether it is new
        (False: an Idempotency-Key replay). ``reply_to`` is where it goes when not ``to``
        (``whatsapp:+1555...`` for the contact ``+1555...``). ``new_conversation`` starts
        a new conversation with the contact even when it has one (an agent's new email
        thread); otherwise the message goes into its most recently created conversation
        on the channel. With ``wait`` (a caller's
        ``Prefer: wait``, :func:`prefer_wait`), wait that long at most for the first
        attempt: DeliveryFailed when it failed. Answer with :func:`answer_sent`.

        ``principal`` is the caller a route sends for (``req.context.principal``): media the
        server keeps (``Media.id``, a body's ``media_id``) is attached only when they may
        read it. Without one (a program's own send) such media is refused (InvalidInput):
        a route that takes ``media_id`` must pass its caller."""

    async def get_message(self, message_id: str) -> Message:
        """A message of this channel."""

    async def find_outbound(self, provider_message_id: str) -> Message | None:
        """The outbound message the provider knows by this id on this channel, if any."""

    async def get_conversation(self, conversation_id: str) -> Conversation:
        """A conversation of this channel."""

    async def find_conversation(self, address: str) -> Conversation | None:
        """The conversation of the contact at ``address`` on this channel that a
        :meth:`send` to it would go into (its most recently created), or None, creating
        nothing: a visitor's returning session finds its conversation without creating a
        contact. The address is taken in the channel's form (its ``normalize_address``, as
        :meth:`send` takes it; InvalidInput when that refuses it)."""

    async def fill_contact(self, conversation_id: str, attributes: Mapping[str, str]) -> None:
        """Give the contact of this conversation of this channel these attributes where it
        has none of that name (what a visitor told a chat's pre-chat form: ``email``): what
        an agent or an earlier form set is never overwritten, even when set at the same
        moment (one transaction). Logs ``contact.updated`` when it set one; writes nothing
        when the contact had them all. NotFound for a conversation that is not this
        channel's."""

    async def typing(self, conversation_id: str) -> None:
        """The contact of this conversation of this channel is typing (a chat widget's
        visitor): logs ``conversation.typing`` (``by: "contact"``), which agents' streams and
        :meth:`follow` show until its ``until``, or until the contact's message arrives.
        Call it as often as the visitor types: the inbox logs at most one such event per
        conversation every few seconds, the others return having written nothing.
        NotFound for a conversation that is not this channel's."""

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int) -> Page:
        """A conversation of this channel's messages, oldest first."""

    async def read_media(self, media: Media) -> bytes:
        """The bytes of a media item the media store keeps (``media.id``), of a message of
        this channel (an outbound message's attachments, for ``send``); NotFound otherwise."""

    async def check_visible(self, principal: Principal, message: Message) -> None:
        """Raise Forbidden unless ``principal`` may see the conversation ``message`` is in
        (an agent: theirs or nobody's): every route that hands out a message asks."""


class ChannelInboxes(Protocol):
    """Each channel's :class:`ChannelInbox`, offered by the inbox module: what
    ``ModuleContext.channel_inbox()`` hands a channel (its own). A channel asks its context,
    not this."""

    def of(self, channel: str) -> ChannelInbox:
        """The :class:`ChannelInbox` of ``channel``."""


class LiveEvents(Protocol):
    """This process's reader of the event log (the events module's), shared by every
    stream and socket open in it: it reads the log once per wake of the bus, whichever
    server wrote the events. What :meth:`ChannelInbox.follow` draws on; a channel asks its
    ``ChannelInbox``, not this."""

    def follow(
        self,
        conversation_ids: Collection[str],
        after: str | None = None,
        max_behind: timedelta | None = None,
    ) -> AbstractAsyncContextManager[ConversationFeed]:
        """The events of these conversations, any channel's, after ``after`` (None: from
        now), as :meth:`ChannelInbox.follow` describes."""


class MediaKeeper(Protocol):
    """The media store, as the inbox (and any module) uses it: bytes kept under an id, with
    their content type checked and their size limited (``OMNICHANNEL_MEDIA_*``)."""

    async def keep(self, attachment: Attachment) -> Media:
        """Keep the bytes of an attachment that came with a webhook; the item a message
        names them by (``id``, ``size``, the checked ``content_type``, ``filename``,
        ``role``, ``content_id``; its ``url`` is set once a message holds it).
        InvalidInput when the type is not allowed or the bytes are too many."""

    async def describe(self, media: Media, principal: Principal) -> Media:
        """The item kept under ``media.id`` as a message names it (its content type and
        size; ``media.filename`` when given, else the uploader's), for ``principal`` to
        attach: when they may read it (its uploader, ``media:read_all``, or one who may see
        a message holding it: docs/media.md). InvalidInput naming the id when the store
        keeps nothing under it or they may not read it, the one answer for both."""

    async def record_holder(self, message_id: str, media: tuple[Media, ...]) -> None:
        """Note that the stored message ``message_id`` holds each kept item (``id``) of
        ``media``: whoever may see the message may attach them. Again: a no-op."""

    async def read(self, media_id: str) -> bytes:
        """The bytes kept under ``media_id``; NotFound when none are."""

    async def expect(self, channel: str, message_id: str, media: tuple[Media, ...]) -> None:
        """Fetch, in a job, each item of ``media`` that the provider holds (a URL, no
        ``id``), through the channel's ``media_fetch`` hook; the message then names the
        kept bytes (:class:`InboxMedia`). Returns once the fetches are durable; asking
        again for one already asked is a no-op."""

    async def forget(
        self,
        media_ids: Collection[str],
        message_ids: Collection[str] = (),
        keep_shared: bool = False,
    ) -> int:
        """Erase what the store keeps of these items and messages (erasing a contact:
        their messages' media, an email's ``original.eml`` source among them), and return
        how many of ``media_ids`` named an item.

        Each item of ``media_ids`` goes: its record (type, size, name, uploader), which
        messages hold it, the fetch that kept it; then its bytes, unless another item still
        names the same bytes (bytes are kept once per content: they go with the last item
        naming them). Every fetch recorded for ``message_ids`` goes too, done, failed or
        pending (each holds the provider's URL and the file's name); one under way is not
        written back. An id the store does not know (never kept, or forgotten already) is
        skipped: forgetting again is a no-op. Safe while the same bytes are being uploaded:
        no item is ever left naming deleted bytes (the upload puts them back).

        An id is forgotten for every message that holds it, the caller's or not: pass only
        items the erased messages alone hold, or ``keep_shared``: then an item that a
        message not in ``message_ids`` holds too (an agent's upload sent to several
        contacts) is kept, and not counted. Bytes outside the store are not touched (the
        provider's copies, an IMAP mailbox's mail, a Cloud Storage bucket's old versions).
        Raises when a deletion fails; calling again finishes it (bytes whose deletion
        failed are deleted by a call at least five minutes later)."""


class InboxMedia(Protocol):
    """What the media module may do with messages (the inbox provides it)."""

    async def visible_message(self, principal: Principal, message_id: str) -> Message:
        """The message, when ``principal`` may see its conversation; Forbidden otherwise,
        NotFound for an unknown id."""

    async def replace_media(
        self, message_id: str, index: int, provider_url: str, media: Media
    ) -> Message | None:
        """Name ``media`` (kept in the store) as item ``index`` of the message, while that
        item is still the provider's ``provider_url``; logs ``message.updated``. None when
        it no longer is (replaced already) or the message has no such item."""


@attrs.frozen
class ContactActivity:
    """What a contact's conversations say of them (segments filter on it)."""

    last_activity_at: datetime | None = None
    """The latest activity of any of their conversations; None: they have none."""
    statuses: tuple[ConversationStatus, ...] = ()
    """The statuses their conversations are in, each once."""
    channels: tuple[str, ...] = ()
    """The channels they have conversations on, each once."""


class ContactBook(Protocol):
    """The contacts, as the CRM module works them (the inbox provides it: a contact and its
    identities live in the inbox's store, written in the transaction that stores the message
    that made them). Profile values come checked (the CRM's bodies); each method raises
    NotFound for an unknown contact id.

    A contact merged into another is kept as a pointer to it: reading it answers the
    survivor (whose ``id`` differs from the one asked), and a webhook retried for a message
    it once held still finds it. Lists and scans skip it.
    """

    async def get_contact(self, contact_id: str) -> Contact:
        """The contact (the survivor, for one merged away)."""

    async def list_contacts(
        self, search: str | None, cursor: str | None, limit: int, visible_to: str | None = None
    ) -> Page:
        """As ``GET /api/contacts`` lists them (newest first, ``search`` as documented
        there); with ``visible_to`` (an agent's user id) only those with a conversation
        assigned to that user or to nobody."""

    async def visible_to(self, contact_id: str, user_id: str) -> bool:
        """Whether the contact has a conversation assigned to ``user_id`` or to nobody: what
        an agent may see of contacts (docs/access.md)."""

    async def scan(self, cursor: str | None, limit: int) -> Page:
        """Every contact once, in a stable order (by id), a page of up to ``limit`` at a
        time: a whole pass (segments, exports). ``next_cursor`` is None on the last page."""

    async def activity(self, contact_ids: Collection[str]) -> dict[str, ContactActivity]:
        """Each contact's :class:`ContactActivity` (an empty one for a contact with no
        conversation, or an unknown id)."""

    async def find(
        self, emails: Collection[str] = (), phones: Collection[str] = (), limit: int = 20
    ) -> list[Contact]:
        """Contacts (at most ``limit``, oldest first) having any of ``emails`` (lowercase)
        or ``phones`` (E.164) in their profile or as an identity's address (an ``email``
        channel's address; a phone-like address on any channel: ``+``, digits, perhaps
        after a ``whatsapp:`` prefix)."""

    async def create_contact(
        self, identities: Collection[Identity] = (), **profile: Any
    ) -> Contact:
        """A new contact with these identities and profile (``update_contact``'s fields);
        logs ``contact.created``. Conflict, storing nothing, when an identity is another
        contact's (its id in the error's ``contact_id``)."""

    async def update_contact(self, contact_id: str, **changes: Any) -> Contact:
        """Change the given fields: ``display_name``, ``tags``, ``attributes`` (replaced
        whole), ``emails``, ``phones``, ``company``, ``locale``, ``timezone``, ``avatar``.
        Logs ``contact.updated`` with the names of the fields that changed; writes nothing
        when none did."""

    async def add_identity(self, contact_id: str, identity: Identity) -> Contact:
        """Reach the contact at ``identity`` too: the next message from that address is
        theirs. A no-op when it is theirs already; Conflict (the holder's id in the error's
        ``contact_id``) when it is another contact's: merge them instead."""

    async def remove_identity(self, contact_id: str, identity: Identity) -> Contact:
        """Stop reaching the contact at ``identity``: the next message from that address
        makes a new contact. Their conversations keep their address. NotFound when the
        contact has no such identity."""

    async def merge(
        self, survivor_id: str, merged_id: str, audit: AuditEntry | None = None
    ) -> Contact:
        """Move everything of ``merged_id`` to ``survivor_id`` and keep ``merged_id`` only as
        a pointer to it (docs/crm.md, "Merging", has the rule for conflicting values);
        the survivor as stored after. Logs ``contact.merged`` (``data.merged_id``), and
        appends ``audit`` (when given) in the same transaction as the first step. Safe
        against messages arriving for either meanwhile: each lands on the survivor.
        InvalidInput when the two are one contact; NotFound for either unknown; Conflict
        (the survivor's id in ``contact_id``), changing nothing, when ``merged_id`` was
        merged away already (a merge retried)."""

    async def erase(self, contact_id: str, audit: AuditEntry | None = None) -> dict[str, int]:
        """Erase the contact (GDPR): its profile and identities, and every contact merged
        into it, go (the id stays, as a tombstone: reading it is NotFound); its
        conversations and messages, and the messages it sent in others' conversations, are
        redacted in place (docs/crm.md, "Erasure", says what is left); the media those
        messages alone hold are forgotten (:meth:`MediaKeeper.forget`). Logs
        ``contact.erased`` (modules forget what they hold of the contact), and appends
        ``audit`` in the same transaction as the first write. Counts of what this call did:
        ``messages``, ``conversations``, ``identities``, ``media``. Calling again finishes
        an erasure interrupted (and answers zeros for one done). NotFound for an unknown id;
        Conflict (the survivor in ``contact_id``) for one merged away."""

    async def contact_data(
        self, contact_id: str
    ) -> tuple[Contact, list[Conversation], list[Message]]:
        """Everything the inbox stores about a contact (an export of their data): the
        contact, its conversations (oldest first), and every message of them and every
        message it sent in others' (oldest first), whole. NotFound for an unknown id."""


class Audiences(Protocol):
    """The CRM's segments, as other modules (campaigns) take their audience from them (the
    CRM module provides it)."""

    async def audience(self, segment_id: str) -> AsyncIterator[Contact]:
        """Every contact the segment holds now, once each, in scan order (by id), read a
        page at a time as the caller goes on. NotFound for an unknown segment, raised by
        this call, before any contact is read."""


@attrs.frozen
class BulkTarget:
    """Where a mass send to one contact goes on a channel (:meth:`BulkSends.target`)."""

    channel: str
    contact: Contact
    """The contact as stored (the survivor, for one merged away)."""
    reach: Reach
    """How the channel reaches them (SMS or WhatsApp...)."""
    address: str | None
    """The address a send goes to (``reach.prefix`` + their identity's address); None when
    they have no identity on the channel."""
    last_inbound_at: datetime | None
    """When they last wrote from ``address`` (their conversation on the channel answers to
    it and holds a message from them); None: never, or from another address (the reach's
    window is then closed)."""

    @property
    def opted_out(self) -> bool:
        """They asked not to be messaged on this channel (SMS ``STOP``)."""
        return self.channel in self.contact.opted_out

    def window_open(self, now: datetime) -> bool:
        """Whether a free-form message may go to them now (always, on a reach without a
        window)."""
        hours = self.reach.window_hours
        if hours is None:
            return True
        if self.last_inbound_at is None:
            return False
        return (now - self.last_inbound_at).total_seconds() < hours * 3600


class BulkSends(Protocol):
    """Mass sends (campaigns) through the outbox, as the inbox offers them: each message
    is queued like a reply but yields to replies on the same pace, and a key makes a send
    retried after a crash queue nothing twice."""

    async def reaches(self, channel: str) -> tuple[Reach, ...]:
        """The ways the channel reaches a contact in a mass send (its ``send_policy``'s,
        the default first). ChannelUnavailable when the channel is not loaded, or cannot
        send."""

    async def rate(self, channel: str, reach: Reach) -> float:
        """The messages per second the channel's pace allows through ``reach`` (its sender's
        rate, ``OMNICHANNEL_SEND_RATES`` applied); 0: unpaced."""

    async def target(self, channel: str, reach: Reach, contact_id: str) -> BulkTarget:
        """Where a send to the contact goes (:class:`BulkTarget`). NotFound for an unknown
        (or erased) contact."""

    async def send(
        self,
        target: BulkTarget,
        request: OutboundRequest,
        idempotency_key: str,
        principal: Principal | None = None,
    ) -> tuple[Message, bool]:
        """Queue ``request`` to ``target`` (which has an ``address``), into the contact's
        conversation on the channel; the message and whether it is new. The same key again
        answers the message stored the first time and queues nothing: a mass sender that
        keys each send by recipient sends each at most once, however often it is retried,
        even when what it would send has changed meanwhile (the message stored first is the
        answer). RecipientOptedOut when the contact opted out on the channel meanwhile. Media the
        server keeps (``Media.id``) is attached when ``principal`` may read it, as
        :meth:`ChannelInbox.send` says."""

    async def contact_at(self, channel: str, address: str) -> str:
        """The id of the contact whose identity on ``channel`` is ``address`` (taken in the
        channel's form, its ``normalize_address``), made with that identity when there is
        none. InvalidInput for an address the channel cannot send to."""

    async def backlog(self, channel: str) -> int:
        """How many messages on the channel wait in the outbox to be sent now (due, being
        retried or being sent; not those scheduled for later, nor those in doubt): a mass
        sender holds back while the channel cannot keep up."""


class AutomatedReplies(Protocol):
    """A module's own reply in a conversation (an away message), as the inbox offers it:
    queued through the outbox like an agent's reply, once per key."""

    async def reply(
        self, conversation_id: str, request: OutboundRequest, idempotency_key: str
    ) -> tuple[Message, bool]:
        """Queue ``request`` (whose ``author`` names the automation) in the conversation;
        the message and whether it is new. The same key again answers the message stored
        the first time and queues nothing; keys may start ``bulk:`` (API callers' may not,
        so no request can take an automation's place). RecipientOptedOut when the contact
        opted out on the channel; NotFound for an unknown conversation."""


@attrs.frozen
class ConversationChange:
    """One change of a conversation's status or assignee, kept for good (the event log is
    pruned): its history, which the dashboard is rebuilt from.

    :param id: the change's id (``conversation.updated`` events name it in ``change_id``).
    :param by: who made it: an :class:`~omnichannel_core.models.Author` (``user``,
        ``api_key``, ``system``), or None for the contact (their message reopened it).
    """

    id: str
    conversation_id: str
    at: datetime
    status: ConversationStatus
    previous_status: ConversationStatus
    assignee: str | None
    previous_assignee: str | None
    by: Author | None = None


@attrs.frozen
class ConversationRecord:
    """A conversation with everything it holds, in time order: what
    :meth:`InboxHistory.scan` hands over."""

    conversation: Conversation
    messages: tuple[Message, ...]
    changes: tuple[ConversationChange, ...]


class InboxHistory(Protocol):
    """Every conversation's messages and changes, read from the store (not the event log,
    which is pruned): what a module rebuilds its figures from."""

    async def scan(
        self, cursor: str | None, limit: int
    ) -> tuple[list[ConversationRecord], str | None]:
        """Up to ``limit`` conversations from ``cursor`` (None: the first), each with all its
        messages and changes, and the cursor of the next (None: that was the last)."""

    async def changes(self, conversation_id: str) -> tuple[ConversationChange, ...]:
        """The conversation's changes, oldest first. NotFound for an unknown conversation."""


class BusinessSettings(Protocol):
    """The business as its settings describe it (the settings module provides it): what
    the dashboard buckets and measures by, and what an automation asks whether the
    business is open."""

    async def business(self) -> Business:
        """The business as its settings are now (this process learns of a change within
        seconds); defaults (open every day all day, UTC, a 15-minute target) until an
        admin sets them."""


@attrs.frozen
class PresentUser:
    """A connected user: one of their event streams (``GET /api/events``) is open.

    :param status: what they set: ``available`` (the default) or ``away``; online is
        connected and available.
    :param connected_since: when the oldest of their open streams opened.
    :param streams: how many of their streams are open (a user counts once however many).
    """

    user_id: str
    status: str
    connected_since: datetime
    streams: int


class Presence(Protocol):
    """Who is connected, and whether each is available or away (the events module provides
    it; docs/events.md, "Presence")."""

    async def present(self) -> list[PresentUser]:
        """The users connected now (offline ones are left out), longest connected first;
        a stream of a server that died stops counting within
        ``OMNICHANNEL_PRESENCE_TIMEOUT_SECONDS`` (90)."""


@attrs.frozen
class RunningCampaign:
    """A campaign sending now (or paused mid-way: ``status``)."""

    id: str
    name: str
    channel: str
    status: str


class CampaignActivity(Protocol):
    """The campaigns under way, as the campaigns module offers them (the dashboard shows
    them)."""

    async def under_way(self) -> list[RunningCampaign]:
        """The campaigns running or paused, newest first (at most 100)."""
