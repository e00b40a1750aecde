"""Which earlier mail an answer cites, and its subject: the headers that thread it.

The headers that make Gmail, Outlook, Apple Mail and Thunderbird show an answer under the
customer's mail (RFC 5322 section 3.6.4):

- ``In-Reply-To``: the latest earlier mail of the conversation (the customer's or ours);
- ``References``: the first customer mail's own ``References`` (the thread as their client
  knew it before it reached us), then every mail of the conversation in order; a long list
  keeps its first and its last :data:`REFERENCES_KEPT_AT_END` (the middle is what clients
  need least; RFC 5322 allows the trim);
- ``Subject``: ``metadata.email.subject`` when the message gives one, else ``Re:`` and the
  latest subject of the conversation (never ``Re: Re:``), else ``EMAIL_DEFAULT_SUBJECT``.

Mail flagged ``automated`` (auto-replies) is left out of the thread: an answer replies to
the person, not to their out-of-office notice.

An answer of ours counts as a mail of the thread once sent, and also while in doubt (the
SMTP server's answer was lost, so the mail may be in the customer's mailbox): its
Message-ID is known without the provider's word.

The thread is read through the channel's inbox, which lists oldest first, to the end (the
message being sent), keeping only what the headers need (:class:`ThreadWindow`); at most
:data:`MAX_THREAD_MESSAGES` messages are read, past which an answer threads on those.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import Any

import attrs
import structlog

from omnichannel_core.channel import ChannelInbox, Message, OutboundMessage

log = structlog.get_logger("omnichannel.email")

MAX_THREAD_MESSAGES = 10_000
"""The most earlier messages read to thread an answer: the inbox lists oldest first, so
the latest are found by reading to the end, a page at a time."""
THREAD_PAGE = 200
REFERENCES_KEPT_AT_END = 10
NOT_CONFIRMED = "not_confirmed"
"""The error of an answer failed after its doubt lapsed: it may have been sent all the same."""
MAX_SUBJECT = 400
REPLY_PREFIX = re.compile(r"\s*(re|aw|sv|antw)(\[\d+\])?\s*:", re.IGNORECASE)
MESSAGE_ID = re.compile(r"[!-;=?A-~]+@[!-;=?A-~]+\Z")
"""A provider id that is a real Message-ID (a mail without one got ``sha256:...``) that a
header can carry: printable ASCII without ``<``, ``>`` or a second ``@``. An id of a
customer's client that is not (``<café-1@example.org>``, kept as written to thread their
own mail) is left out of ``In-Reply-To`` and ``References``: our headers are 7-bit, and
encoding it would fail every answer in the thread."""


def email_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata["email"]`` when it is an object, else nothing."""
    value = metadata.get("email")
    return value if isinstance(value, dict) else {}


def _automated(message: Message) -> bool:
    return message.metadata.get("automated") is True


def _subject(item: Message) -> str | None:
    """The subject an answer may answer: a stored mail's, not an auto-reply's."""
    subject = email_metadata(item.metadata).get("subject")
    if _automated(item) or not isinstance(subject, str) or not subject.strip():
        return None
    return subject


def thread_message_id(item: Message, domain: str | None) -> str | None:
    """The Message-ID an answer cites ``item`` by: its provider id, or, for an answer of
    ours in doubt (or failed as not confirmed), the one it was sent with,
    ``{item.id}@{domain}`` (the mail may have reached the customer). None for an
    auto-reply, a mail without a real Message-ID (:data:`MESSAGE_ID`) and an answer never
    sent."""
    if _automated(item):
        return None
    found = item.provider_message_id
    doubtful = item.in_doubt or item.error_code == NOT_CONFIRMED
    if found is None and item.direction == "outbound" and doubtful and domain:
        found = f"{item.id}@{domain}"
    return found if found and MESSAGE_ID.match(found) else None


@attrs.define
class ThreadWindow:
    """What threads an answer of the messages of a conversation read oldest first, in
    bounded memory: the first mail, the first customer mail (whose own ``References``
    start the thread), the latest message with a subject, and the last
    :data:`REFERENCES_KEPT_AT_END` mails. :func:`thread_ids` and :func:`subject_of` read
    the same from these as from every message."""

    domain: str | None
    read: int = 0
    _kept: dict[str, tuple[int, Message]] = attrs.field(factory=dict)
    _first_mail: str | None = None
    _first_inbound: str | None = None
    _latest_subject: str | None = None
    _last_mails: deque[str] = attrs.field(factory=lambda: deque(maxlen=REFERENCES_KEPT_AT_END))

    def add(self, item: Message) -> None:
        position, self.read = self.read, self.read + 1
        if _subject(item) is not None:
            self._latest_subject = item.id
        if thread_message_id(item, self.domain) is not None:
            if self._first_mail is None:
                self._first_mail = item.id
            if self._first_inbound is None and item.direction == "inbound":
                self._first_inbound = item.id
            self._last_mails.append(item.id)
        wanted = self._wanted()
        if item.id in wanted:
            self._kept[item.id] = (position, item)
        for dropped in set(self._kept) - wanted:
            del self._kept[dropped]

    def _wanted(self) -> set[str]:
        named = (self._first_mail, self._first_inbound, self._latest_subject)
        return {*(name for name in named if name is not None), *self._last_mails}

    def messages(self) -> list[Message]:
        """The messages kept, oldest first."""
        return [item for _, item in sorted(self._kept.values(), key=lambda kept: kept[0])]


async def earlier_messages(
    inbox: ChannelInbox, message: OutboundMessage, domain: str | None
) -> list[Message]:
    """The conversation's messages before ``message`` that thread it, oldest first (those
    of a :class:`ThreadWindow`), read to ``message`` or at most
    :data:`MAX_THREAD_MESSAGES`. ``domain`` is that of our Message-IDs."""
    window = ThreadWindow(domain)
    cursor: str | None = None
    while window.read < MAX_THREAD_MESSAGES:
        page = await inbox.list_messages(message.conversation_id, cursor, THREAD_PAGE)
        for item in page.items:
            if item.id == message.id:
                return window.messages()
            window.add(item)
        if page.next_cursor is None:
            return window.messages()
        cursor = page.next_cursor
    log.warning(
        "email_thread_truncated",
        conversation_id=message.conversation_id,
        message_id=message.id,
        read=window.read,
    )
    return window.messages()


def _stored_references(message: Message) -> list[str]:
    """The ``References`` a stored mail carried (a list of ids, or the header's text)."""
    value = email_metadata(message.metadata).get("references")
    if isinstance(value, str):
        value = re.findall(r"<([^<>\s]+)>", value) or value.split()
    if not isinstance(value, list):
        return []
    return [ref.strip("<>") for ref in value if isinstance(ref, str)]


def thread_ids(
    earlier: Sequence[Message], domain: str | None
) -> tuple[str | None, tuple[str, ...]]:
    """``In-Reply-To`` and ``References`` (ids without brackets) of an answer after the
    ``earlier`` messages of its conversation; ``domain`` is that of our Message-IDs."""
    mails = [
        (item, found) for item in earlier if (found := thread_message_id(item, domain)) is not None
    ]
    if not mails:
        return None, ()
    first_inbound = next((item for item, _ in mails if item.direction == "inbound"), None)
    head = _stored_references(first_inbound) if first_inbound is not None else []
    references: list[str] = []
    for ref in [*head, *(found for _, found in mails)]:
        if MESSAGE_ID.match(ref) and ref not in references:
            references.append(ref)
    if len(references) > REFERENCES_KEPT_AT_END + 1:
        references = [references[0], *references[-REFERENCES_KEPT_AT_END:]]
    return mails[-1][1], tuple(references)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:MAX_SUBJECT]


def subject_of(message: OutboundMessage, earlier: Sequence[Message], default: str) -> str:
    """The answer's subject: its own, else ``Re:`` the thread's latest, else ``default``."""
    own = email_metadata(message.metadata).get("subject")
    if isinstance(own, str) and own.strip():
        return _one_line(own)
    for item in reversed(earlier):
        subject = _subject(item)
        if subject is not None:
            subject = _one_line(subject)
            return subject if REPLY_PREFIX.match(subject) else f"Re: {subject}"
    return default
