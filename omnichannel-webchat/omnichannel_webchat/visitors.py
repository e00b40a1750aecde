"""What a visitor may do, whichever way their widget talks (socket or long polling):
start a session, write, send a file, say they are typing or have read, and follow their
conversation. Each visitor acts on their own conversation only: the one of their address
on this channel (:mod:`omnichannel_webchat.tokens`).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any

from omnichannel_core.channel import (
    Attachment,
    ChannelInbox,
    Conversation,
    Forbidden,
    InboundMessage,
    InvalidInput,
    NotFound,
    RateLimited,
    StatusWatermark,
    TokenBuckets,
    Unauthenticated,
    UnsupportedMediaType,
    WebhookResult,
    address_key,
    to_json,
    utcnow,
)
from omnichannel_webchat import tokens
from omnichannel_webchat.frames import Frame, visitor_message
from omnichannel_webchat.identity import verified_address
from omnichannel_webchat.settings import WebchatSettings
from omnichannel_webchat.tokens import Visitor

CLIENT_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
"""A message's id as the widget makes it: kept across resends, so a resend is stored once."""
MAX_NAME = 100
MAX_EMAIL = 254
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
FILENAME_MAX = 200
SOCKETS_PER_VISITOR = 10
"""The most sockets one visitor holds open in one process (tabs of one browser)."""
SOCKETS_PER_ADDRESS = 200
"""The most sockets one client address (an IPv6 /64) holds open in one process: an office
behind one NAT fits, a flood of fresh visitor tokens does not."""
FILLED_KEPT = 100_000
"""Visitors whose pre-chat answers this process has given their contact (remembered, so
it is done once, not on every message)."""


class Visitors:
    """The visitor side of one webchat channel, in one process.

    :param inbox: the channel's inbox (its own messages and conversations only).
    :param settings: the channel's settings, read per call (they follow the configuration).
    """

    def __init__(self, inbox: ChannelInbox, settings: Callable[[], WebchatSettings]) -> None:
        self.inbox = inbox
        self.settings = settings
        self._limits: dict[str, TokenBuckets] = {}
        self._started: dict[str, tuple[asyncio.Event, int]] = {}  # event, waiters
        self._sockets: dict[str, int] = {}
        self._filled: dict[str, None] = {}

    # -- limits -----------------------------------------------------------------------------

    @property
    def _messages(self) -> TokenBuckets:
        return self._limit("messages", self.settings().messages_per_minute)

    @property
    def _signals(self) -> TokenBuckets:  # typing, read, pings
        return self._limit("signals", self.settings().messages_per_minute * 4)

    @property
    def _sessions(self) -> TokenBuckets:
        return self._limit("sessions", self.settings().sessions_per_minute)

    def _limit(self, name: str, per_minute: int) -> TokenBuckets:
        """The buckets of one limit at its setting's current rate: made anew (full) when an
        admin changed the setting, so a stored change applies without a restart."""
        buckets = self._limits.get(name)
        if buckets is None or buckets.capacity != per_minute:
            buckets = self._limits[name] = TokenBuckets(per_minute)
        return buckets

    # -- sessions ---------------------------------------------------------------------------

    def authenticate(self, token: object) -> Visitor:
        """The visitor a token names; Unauthenticated for anything else."""
        if not isinstance(token, str):
            raise Unauthenticated("a visitor token is needed")
        settings = self.settings()
        visitor = tokens.read(token, settings.token_key, utcnow())
        if settings.identity_required and not visitor.verified:
            raise Unauthenticated("this chat is for signed-in users now: start a new session")
        return visitor

    def start(self, body: dict[str, Any], address: str) -> tuple[str, Visitor]:
        """``POST session``: the visitor's token (a new one when theirs is due, or a new
        visitor's), from the body's ``token``, ``user_id``/``user_hash``, ``name``, ``email``.
        ``address`` is the caller's, for the limit on new visitors."""
        settings = self.settings()
        now = utcnow()
        current: Visitor | None = None
        if body.get("token") is not None:
            try:
                current = self.authenticate(body["token"])
            except Unauthenticated:
                current = None  # expired or not ours: a new visitor
        name = _optional_text(body, "name", MAX_NAME)
        email = _optional_text(body, "email", MAX_EMAIL)
        if email is not None and not EMAIL.match(email):
            raise InvalidInput("email: not an email address", field="email")
        user_id, user_hash = body.get("user_id"), body.get("user_hash")
        if user_id is not None or user_hash is not None:
            if not isinstance(user_id, str) or not isinstance(user_hash, str):
                raise InvalidInput("user_id and user_hash go together, both strings")
            visitor_address = verified_address(user_id, user_hash, settings.identity_secrets)
        elif settings.identity_required:
            raise Forbidden(
                "this chat is for signed-in users: user_id and user_hash needed",
                identity_required=True,
            )
        elif current is not None and not current.verified:
            visitor_address = current.address
        else:
            visitor_address = ""
        if current is not None and current.address == visitor_address:
            name, email = name or current.name, email or current.email
            if not (
                current.due_for_rotation(now) or name != current.name or email != current.email
            ):
                return body["token"], current
        if not visitor_address:
            wait = self._sessions.take(address_key(address))
            if wait > 0:
                raise RateLimited(
                    "too many new chat visitors from this address", retry_after=int(wait) + 1
                )
            visitor_address = tokens.new_address()
        return tokens.issue(
            visitor_address, settings.token_key, now, settings.session_days, name, email
        )

    def rotated(self, visitor: Visitor) -> tuple[str, Visitor] | None:
        """A fresh token for ``visitor`` when theirs is due for rotation."""
        if not visitor.due_for_rotation(utcnow()):
            return None
        settings = self.settings()
        return tokens.issue(
            visitor.address,
            settings.token_key,
            utcnow(),
            settings.session_days,
            visitor.name,
            visitor.email,
        )

    async def conversation(self, visitor: Visitor) -> Conversation | None:
        return await self.inbox.find_conversation(visitor.address)

    @contextlib.contextmanager
    def waiting(self, visitor: Visitor) -> Iterator[asyncio.Event]:
        """An event set when this process stores a message of ``visitor``'s: a connection
        of theirs waiting for their first conversation then looks at once. One event per
        visitor, shared by their waiting connections, dropped when the last leaves."""
        event, waiters = self._started.get(visitor.address, (asyncio.Event(), 0))
        self._started[visitor.address] = (event, waiters + 1)
        try:
            yield event
        finally:
            event, waiters = self._started[visitor.address]
            if waiters == 1:
                del self._started[visitor.address]
            else:
                self._started[visitor.address] = (event, waiters - 1)

    @contextlib.contextmanager
    def socket(self, visitor: Visitor, address: str) -> Iterator[None]:
        """One more open socket of ``visitor``, from the client ``address``; RateLimited
        past :data:`SOCKETS_PER_VISITOR` or :data:`SOCKETS_PER_ADDRESS` in this process."""
        limits = {
            f"visitor {visitor.address}": SOCKETS_PER_VISITOR,
            f"address {address_key(address)}": SOCKETS_PER_ADDRESS,
        }
        for key, limit in limits.items():
            if self._sockets.get(key, 0) >= limit:
                kind = key.split(" ", 1)[0]
                raise RateLimited(f"one {kind} may keep {limit} sockets open", retry_after=10)
        for key in limits:
            self._sockets[key] = self._sockets.get(key, 0) + 1
        try:
            yield
        finally:
            for key in limits:
                self._sockets[key] -= 1
                if not self._sockets[key]:
                    del self._sockets[key]

    # -- writing ----------------------------------------------------------------------------

    async def write(
        self,
        visitor: Visitor,
        client_id: object,
        text: object = None,
        attachment: Attachment | None = None,
    ) -> tuple[Frame, bool]:
        """Store what the visitor wrote (deduped on their ``client_id``): the message as
        they see it, and whether it is new. InvalidInput for what the widget cannot send,
        RateLimited past their pace."""
        settings = self.settings()
        if not isinstance(client_id, str) or not CLIENT_ID.match(client_id):
            raise InvalidInput(
                "client_id must be 8 to 64 letters, digits, '-' or '_'", field="client_id"
            )
        if text is not None and not isinstance(text, str):
            raise InvalidInput("text must be a string", field="text")
        text = text.strip() if text else None
        if not text and attachment is None:
            raise InvalidInput("a message needs text or a file", field="text")
        if text and len(text) > settings.text_max_chars:
            raise InvalidInput(
                f"text is longer than {settings.text_max_chars} characters", field="text"
            )
        if attachment is not None and not _allowed(attachment.content_type, settings.upload_types):
            raise UnsupportedMediaType(
                f"files of type {attachment.content_type} are not taken", field="file"
            )  # refused before anything is stored: no empty message for the agents
        self._take(self._messages, visitor, "messages")
        inbound = InboundMessage(
            provider_message_id=f"{visitor.address}:{client_id}",  # namespaced: see module doc
            sender=visitor.address,
            text=text,
            media=(attachment,) if attachment else (),
            sender_name=visitor.name,
            metadata={"visitor_email": visitor.email} if visitor.email else {},
        )
        (received,) = await self.inbox.receive(WebhookResult(messages=(inbound,)))
        if received.media_refused:
            reason = received.media_refused[0].reason
            raise UnsupportedMediaType(f"the file was not kept: {reason}", field="file")
        if received.created:
            waiting = self._started.get(visitor.address)  # a connection of theirs, here
            if waiting is not None:
                waiting[0].set()
            if visitor.email and visitor.address not in self._filled:
                # the pre-chat form's: the contact's email, unless it has one; once
                await self.inbox.fill_contact(received.conversation_id, {"email": visitor.email})
                self._filled[visitor.address] = None
                if len(self._filled) > FILLED_KEPT:
                    del self._filled[next(iter(self._filled))]
        message = await self.inbox.get_message(received.message_id)
        frame = visitor_message(to_json(message))
        assert frame is not None  # an inbound message is always shown to its visitor
        return frame, received.created

    async def typing(self, visitor: Visitor) -> None:
        self._take(self._signals, visitor, "signals")
        conversation = await self.conversation(visitor)
        if conversation is not None:
            await self.inbox.typing(conversation.id)

    async def read(self, visitor: Visitor, message_id: object) -> None:
        """The visitor has seen the agents' messages up to ``message_id``: they are ``read``
        (forward only; a later message stays as it is)."""
        self._take(self._signals, visitor, "signals")
        if not isinstance(message_id, str) or not message_id:
            raise InvalidInput("up_to must be a message id", field="up_to")
        message = await self.message(visitor, message_id)
        watermark = StatusWatermark(
            recipient=visitor.address, status="read", up_to=message.created_at
        )
        await self.inbox.receive(WebhookResult(watermarks=(watermark,)))

    async def message(self, visitor: Visitor, message_id: str) -> Any:
        """A message of the visitor's own conversation; NotFound for any other."""
        conversation = await self.conversation(visitor)
        try:
            message = await self.inbox.get_message(message_id)
        except NotFound:
            message = None
        if message is None or conversation is None or message.conversation_id != conversation.id:
            raise NotFound(
                f"no message {message_id[:64]!r} in your conversation", id=message_id[:64]
            )
        return message

    def check_signal(self, visitor: Visitor) -> None:
        """A ping or other frame: counted with typing and read."""
        self._take(self._signals, visitor, "signals")

    def _take(self, buckets: TokenBuckets, visitor: Visitor, what: str) -> None:
        wait = buckets.take(visitor.address)
        if wait > 0:
            raise RateLimited(
                f"too many {what} from this visitor: wait {wait:.0f} s", retry_after=int(wait) + 1
            )


def _optional_text(body: dict[str, Any], name: str, limit: int) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value.strip()) > limit or not value.isprintable():
        raise InvalidInput(
            f"{name} must be printable text of at most {limit} characters", field=name
        )
    return value.strip() or None


def _allowed(content_type: str, allowed: tuple[str, ...]) -> bool:
    """Whether the media store takes ``content_type`` by its list (``image/*`` names a
    family); it checks the bytes too, and may still refuse."""
    return content_type in allowed or content_type.split("/", 1)[0] + "/*" in allowed


def file_name(raw: str | None) -> str | None:
    """A file's name as the widget gave it, cut to something safe to keep."""
    if not raw:
        return None
    name = raw.replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(character for character in name if character.isprintable())
    return name[:FILENAME_MAX] or None
