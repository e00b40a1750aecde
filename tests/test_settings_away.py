"""The away message's rules (the subscriber ``settings.away``), with the inbox's services and
the settings store's away ledger stood in for: which inbound messages are answered, once per
customer per closed period whatever conversation they write in (and whatever the hours are
changed to meanwhile), at most so many a channel each hour, only to the address the writer
writes from (never to a Reply-To another address named), and what is never answered (an
auto-reply, a message written while open, one handled after the business opened again).
The ledger's own contract is in tests/test_settings_store.py; the real server's test is
omnichannel-twilio/tests/test_twilio_stored_settings.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs

from omnichannel_core.business import WEEKDAYS
from omnichannel_core.errors import ChannelUnavailable, NotFound, RecipientOptedOut
from omnichannel_core.events.records import Event
from omnichannel_core.hooktypes import Reach
from omnichannel_core.models import (
    Contact,
    Conversation,
    DeliveryStatus,
    Direction,
    Identity,
    Message,
)
from omnichannel_core.modules.settings.away import AwayMessages
from omnichannel_core.modules.settings.channel_values import ChannelValues
from omnichannel_core.modules.settings.records import (
    AwayMessage,
    Settings,
    TimeRange,
    WeekHours,
)
from omnichannel_core.modules.settings.refresh import Refresher
from omnichannel_core.modules.settings.store import (
    AwayClaim,
    AwayHour,
    AwaySent,
    AwayVerdict,
    away_verdict,
)
from omnichannel_core.services import OutboundRequest
from omnichannel_core.setting_values import StoredSettings

OFFICE = WeekHours(
    **{day: (TimeRange("09:00", "18:00"),) for day in WEEKDAYS[:5]}, saturday=(), sunday=()
)
"""Monday to Friday, 9 to 18 UTC."""
FRIDAY_EVENING = datetime(2025, 5, 9, 20, 0, tzinfo=UTC)
SATURDAY = datetime(2025, 5, 10, 11, 0, tzinfo=UTC)
MONDAY_NOON = datetime(2025, 5, 12, 12, 0, tzinfo=UTC)
MONDAY_EVENING = datetime(2025, 5, 12, 19, 0, tzinfo=UTC)
AWAY = AwayMessage("sms", True, "Closed: back Monday at 9.")
REACHES = {
    "sms": (Reach("sms"), Reach("whatsapp", prefix="whatsapp:")),
    "email": (Reach("default"),),
}
"""How each channel reaches a contact, as its send policy says (Twilio's two ways)."""


class Store:
    """The settings store, holding one record and the away ledger (by the ledger's own rule,
    as the real stores apply it)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.sent: dict[tuple[str, str], AwaySent] = {}
        self.hours: dict[str, AwayHour] = {}

    async def get(self) -> Settings:
        return self.settings

    async def version(self) -> int:
        return self.settings.version

    async def claim_away(self, claim: AwayClaim) -> AwayVerdict:
        line = (claim.channel, claim.contact_id)
        verdict, counted = away_verdict(claim, self.sent.get(line), self.hours.get(claim.channel))
        if verdict is AwayVerdict.SEND and counted is not None:
            self.sent[line] = AwaySent(claim.message_id, claim.at)
            self.hours[claim.channel] = counted
        return verdict


class Values(ChannelValues):
    """No channel declares a variable."""

    def __init__(self) -> None:
        pass

    async def by_name(self) -> dict[str, Any]:
        return {}


class Inbox:
    def __init__(self) -> None:
        self.messages: dict[str, Message] = {}
        self.conversations: dict[str, Conversation] = {}
        self.contacts: dict[str, Contact] = {}

    async def get_message(self, message_id: str) -> Message:
        if message_id not in self.messages:
            raise NotFound("gone")
        return self.messages[message_id]

    async def get_conversation(self, conversation_id: str) -> Conversation:
        return self.conversations[conversation_id]

    async def get_contact(self, contact_id: str) -> Contact:
        return self.contacts[contact_id]


class Replies:
    """Queues once per key, as the inbox does."""

    def __init__(self) -> None:
        self.sent: dict[str, tuple[str, OutboundRequest]] = {}
        self.opted_out: set[str] = set()

    async def reply(
        self, conversation_id: str, request: OutboundRequest, idempotency_key: str
    ) -> tuple[Any, bool]:
        if conversation_id in self.opted_out:
            raise RecipientOptedOut("opted out")
        new = idempotency_key not in self.sent
        self.sent.setdefault(idempotency_key, (conversation_id, request))
        return attrs.evolve(EXAMPLE, id=f"msg_{len(self.sent)}"), new


class Reaches:
    async def reaches(self, channel: str) -> tuple[Reach, ...]:
        if channel not in REACHES:
            raise ChannelUnavailable(f"{channel} is not loaded", channel=channel)
        return REACHES[channel]


EXAMPLE = Message(
    id="msg_0",
    conversation_id="cv_1",
    contact_id="ct_1",
    channel="sms",
    direction=Direction.INBOUND,
    status=DeliveryStatus.DELIVERED,
    text="hello",
)


class World:
    def __init__(self, settings: Settings, now: datetime, per_hour: int = 60) -> None:
        self.store = Store(settings)
        self.inbox = Inbox()
        self.replies = Replies()
        self.now = now
        refresher = Refresher(self.store, Values(), StoredSettings())  # type: ignore[arg-type]
        self.away = AwayMessages(
            refresher,
            self.store,  # type: ignore[arg-type]
            lambda: self.inbox,  # type: ignore[arg-type,return-value]
            lambda: self.replies,
            lambda: Reaches(),  # type: ignore[arg-type,return-value]
            lambda: self.now,
            per_hour=per_hour,
        )
        self.count = 0

    def contact(self, contact: str, channel: str, address: str, **fields: Any) -> None:
        identities = (*getattr(self.inbox.contacts.get(contact), "identities", ()),)
        self.inbox.contacts[contact] = Contact(
            id=contact,
            display_name=None,
            identities=(*identities, Identity(channel, address)),
            **fields,
        )

    def write(
        self,
        at: datetime,
        conversation: str = "cv_1",
        direction: str = "inbound",
        channel: str = "sms",
        contact: str = "ct_1",
        address: str | None = None,
        **metadata: Any,
    ) -> None:
        """A message written at ``at`` by ``contact`` (known on the channel by the address
        ``+1555`` and their id, unless known already) in ``conversation`` (answering
        ``address``: the contact's own unless given), handled by the subscriber then (or at
        ``now``)."""
        self.count += 1
        if contact not in self.inbox.contacts:
            self.contact(contact, channel, f"+1555{contact}")
        own = next(i.address for i in self.inbox.contacts[contact].identities)
        self.inbox.conversations.setdefault(
            conversation, Conversation(conversation, contact, channel, address or own)
        )
        message = attrs.evolve(
            EXAMPLE,
            id=f"msg_in_{self.count}",
            conversation_id=conversation,
            contact_id=contact,
            channel=channel,
            direction=Direction(direction),
            created_at=at,
            metadata=metadata,
        )
        self.inbox.messages[message.id] = message
        self.handle(message)

    def handle(self, message: Message) -> None:
        event = Event(
            cursor=str(self.count),
            type="message.created",
            record_id=message.id,
            conversation_id=message.conversation_id,
            assignees=(None,),
            at=message.created_at,
            data={
                "channel": message.channel,
                "direction": message.direction.value,
                "contact_id": message.contact_id,
            },
        )
        asyncio.run(self.away.handle(event))

    def answered(self) -> list[str]:
        """The conversations sent an away message, in order."""
        return [conversation for conversation, _ in self.replies.sent.values()]


def world(now: datetime, per_hour: int = 60, **settings: Any) -> World:
    fields = {"hours": OFFICE, "away_messages": (AWAY,), "version": 1, **settings}
    return World(Settings(**fields), now, per_hour)


def test_a_customer_writing_while_closed_is_answered_once_per_closed_period():
    """Messages of one customer over one weekend get one away message, even from a second
    conversation of theirs; another customer gets their own; Monday evening is another
    closed period, with another. Each is keyed by the message it answers, and says it is
    the away message's, automated."""
    weekend = world(SATURDAY)
    weekend.write(FRIDAY_EVENING)
    weekend.write(SATURDAY)
    weekend.write(SATURDAY, conversation="cv_3")  # the same customer, another thread
    weekend.write(SATURDAY, conversation="cv_2", contact="ct_2")
    assert weekend.answered() == ["cv_1", "cv_2"]
    assert list(weekend.replies.sent) == ["bulk:away:msg_in_1", "bulk:away:msg_in_4"]
    conversation, request = weekend.replies.sent["bulk:away:msg_in_1"]
    assert conversation == "cv_1"
    assert request.text == AWAY.text
    assert request.metadata == {"automated": True}
    assert request.author is not None
    assert (request.author.kind.value, request.author.id) == ("automation", "away_message")

    weekend.now = MONDAY_EVENING
    weekend.write(MONDAY_EVENING, conversation="cv_3")
    assert weekend.answered() == ["cv_1", "cv_2", "cv_3"]


def test_a_redelivered_event_sends_nothing_twice():
    """The same event handled again (a runner restarted) claims its own line again, and
    the reply's key keeps it to one message."""
    closed = world(SATURDAY)
    closed.write(SATURDAY)
    closed.handle(closed.inbox.messages["msg_in_1"])
    assert closed.answered() == ["cv_1"]


def test_changing_the_hours_at_night_sends_no_second_away_message():
    """An admin who moves Friday's closing from 18:00 to 17:00 after an away message went
    out that night changes when the period began, not whether the customer was answered in
    it: their next message gets none. Hours that put an opening after the first one make a
    new closed period, which gets its own."""
    night = world(FRIDAY_EVENING)
    night.write(FRIDAY_EVENING)
    earlier = attrs.evolve(OFFICE, friday=(TimeRange("09:00", "17:00"),))
    night.store.settings = attrs.evolve(night.store.settings, hours=earlier, version=2)
    night.now = FRIDAY_EVENING + timedelta(hours=1)
    night.write(night.now)
    assert night.answered() == ["cv_1"]

    later = attrs.evolve(OFFICE, friday=(TimeRange("09:00", "18:00"), TimeRange("20:30", "21:00")))
    night.store.settings = attrs.evolve(night.store.settings, hours=later, version=3)
    night.now = FRIDAY_EVENING + timedelta(hours=1, minutes=30)
    night.write(night.now)
    assert night.answered() == ["cv_1", "cv_1"]


def test_a_channel_sends_at_most_its_hourly_limit():
    """Past the channel's limit for the hour, customers writing get no away message (each
    counted once, whatever they write); the next hour the count starts again; another
    channel counts apart."""
    busy = world(SATURDAY, per_hour=3, away_messages=(AWAY, attrs.evolve(AWAY, channel="email")))
    for n in range(5):
        busy.write(SATURDAY, conversation=f"cv_{n}", contact=f"ct_{n}")
        busy.write(SATURDAY, conversation=f"cv_{n}", contact=f"ct_{n}")
    assert busy.answered() == ["cv_0", "cv_1", "cv_2"]
    busy.write(SATURDAY, conversation="cv_mail", contact="ct_mail", channel="email")
    busy.now = SATURDAY + timedelta(hours=1)
    busy.write(busy.now, conversation="cv_4", contact="ct_4")
    assert busy.answered() == ["cv_0", "cv_1", "cv_2", "cv_mail", "cv_4"]


def test_no_away_message_to_an_address_the_writer_does_not_write_from():
    """An email whose Reply-To named another address opened a conversation answering there:
    no away message (anyone can write a Reply-To, and aim it at anyone). Nor for a message
    in another customer's conversation (a thread's participant). A WhatsApp conversation
    answers the contact's number through the channel's ``whatsapp:`` reach: answered."""
    closed = world(SATURDAY, away_messages=(AWAY, attrs.evolve(AWAY, channel="email")))
    closed.contact("ct_mail", "email", "customer@example.com")
    closed.write(
        SATURDAY,
        conversation="cv_form",
        contact="ct_mail",
        channel="email",
        address="victim@example.org",
    )
    closed.contact("ct_other", "email", "other@example.com")
    closed.write(SATURDAY, conversation="cv_mine", contact="ct_other", channel="email")
    closed.inbox.conversations["cv_theirs"] = Conversation(
        "cv_theirs", "ct_other", "email", "other@example.com"
    )
    closed.write(SATURDAY, conversation="cv_theirs", contact="ct_mail", channel="email")
    assert closed.answered() == ["cv_mine"]

    closed.contact("ct_wa", "sms", "+15550001111")
    closed.write(SATURDAY, conversation="cv_wa", contact="ct_wa", address="whatsapp:+15550001111")
    assert closed.answered() == ["cv_mine", "cv_wa"]


def test_no_away_message_while_open_or_to_what_is_not_a_customers_message():
    """Nothing is sent for a message written while open, an outbound message, an
    auto-reply (``metadata.automated``), a message of another channel (none set), or a
    message gone meanwhile."""
    closed = world(SATURDAY)
    closed.write(SATURDAY, direction="outbound")
    closed.write(SATURDAY, automated=True)
    closed.write(SATURDAY, channel="email", conversation="cv_mail", contact="ct_mail")
    gone = {"channel": "sms", "direction": "inbound"}
    event = Event("9", "message.created", "msg_gone", "cv_1", (None,), SATURDAY, gone)
    asyncio.run(closed.away.handle(event))
    assert closed.answered() == []

    open_ = world(MONDAY_NOON)
    open_.write(MONDAY_NOON)
    assert open_.answered() == []


def test_no_away_message_when_it_is_off_or_the_business_opened_since():
    """Nothing is sent when the channel's away message is off, nor for a message of the
    weekend handled on Monday at noon or Monday evening (the runner was down): the closed
    period it was written in is over, and an agent may be answering."""
    off = world(SATURDAY, away_messages=(attrs.evolve(AWAY, enabled=False),))
    off.write(SATURDAY)
    assert off.answered() == []

    late = world(MONDAY_NOON)
    late.write(SATURDAY)
    late.now = MONDAY_EVENING
    late.write(SATURDAY - timedelta(hours=1))
    assert late.answered() == []


def test_an_opted_out_customer_is_not_answered_nor_counted():
    """A customer who opted out on the channel gets nothing and takes nothing of the hour's
    limit; the subscriber goes on."""
    closed = world(SATURDAY, per_hour=1)
    closed.contact("ct_1", "sms", "+15550001111", opted_out=("sms",))
    closed.write(SATURDAY)
    closed.write(SATURDAY, conversation="cv_2", contact="ct_2")
    assert closed.answered() == ["cv_2"]


def test_a_business_never_open_answers_once_per_customer():
    """With no opening hours at all, the closed period never ends: one away message per
    customer, ever."""
    never = world(SATURDAY, hours=WeekHours(**dict.fromkeys(WEEKDAYS, ())))
    never.write(SATURDAY)
    never.now = MONDAY_NOON
    never.write(MONDAY_NOON)
    never.write(MONDAY_NOON, conversation="cv_2")
    assert never.answered() == ["cv_1"]
