"""The inbox's models: forward-only delivery status, conversation states, JSON at the edges,
and time-ordered ids."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from omnichannel_core.errors import InvalidInput
from omnichannel_core.ids import new_id
from omnichannel_core.models import (
    Contact,
    Conversation,
    ConversationStatus,
    DeliveryStatus,
    Direction,
    Identity,
    Media,
    Message,
)
from omnichannel_core.serialization import format_timestamp, from_json, to_json

Q, SG, ST, DL, RD, FL, UN, CN, RC = (
    DeliveryStatus.QUEUED,
    DeliveryStatus.SENDING,
    DeliveryStatus.SENT,
    DeliveryStatus.DELIVERED,
    DeliveryStatus.READ,
    DeliveryStatus.FAILED,
    DeliveryStatus.UNDELIVERED,
    DeliveryStatus.CANCELLED,
    DeliveryStatus.RECEIVED,
)

# Every status an update may move to, from each status: forward along
# queued < sending < sent < delivered < read, or to a terminal failure; never back, never
# out of a terminal state, and never into or out of "received" (inbound messages). Only a
# queued message (never sent) can be cancelled.
ALLOWED_MOVES: dict[DeliveryStatus, set[DeliveryStatus]] = {
    Q: {SG, ST, DL, RD, FL, UN, CN},
    SG: {ST, DL, RD, FL, UN},
    ST: {DL, RD, FL, UN},
    DL: {RD, FL, UN},
    RD: {FL, UN},
    FL: set(),
    UN: set(),
    CN: set(),
    RC: set(),
}

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def test_every_status_is_in_the_move_table():
    """The move table below covers every DeliveryStatus, so a new status cannot slip in
    without a decision about where it sits."""
    assert set(ALLOWED_MOVES) == set(DeliveryStatus)


@pytest.mark.parametrize("current", list(DeliveryStatus), ids=str)
@pytest.mark.parametrize("new", list(DeliveryStatus), ids=str)
def test_can_move_to_follows_the_forward_only_table(current, new):
    """can_move_to is True exactly for the forward moves in ALLOWED_MOVES: a late or
    out-of-order update never moves a status back, and terminal states never move."""
    assert current.can_move_to(new) is (new in ALLOWED_MOVES[current])


def test_a_status_never_moves_to_itself():
    """Repeating the current status is not a move."""
    assert not any(status.can_move_to(status) for status in DeliveryStatus)


def test_terminal_statuses():
    """failed, undelivered and cancelled are terminal; nothing else is."""
    assert {status for status in DeliveryStatus if status.is_terminal} == {FL, UN, CN}


def test_statuses_are_their_wire_values():
    """Statuses and directions are strings equal to their JSON wire values."""
    assert [str(s) for s in DeliveryStatus] == [
        "queued",
        "sending",
        "sent",
        "delivered",
        "read",
        "failed",
        "undelivered",
        "cancelled",
        "received",
    ]
    assert [str(d) for d in Direction] == ["inbound", "outbound"]


def test_conversation_status_values():
    """A conversation is open, pending or resolved, and nothing else."""
    assert [status.value for status in ConversationStatus] == ["open", "pending", "resolved"]
    assert ConversationStatus("resolved") is ConversationStatus.RESOLVED
    with pytest.raises(ValueError):
        ConversationStatus("closed")


def _at(seconds: int) -> datetime:
    return datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC) + timedelta(seconds=seconds)


def test_contact_round_trips_through_json():
    """A contact survives to_json then from_json unchanged, identities and all."""
    contact = Contact(
        id=new_id("ct"),
        display_name="Ann Smith",
        identities=(Identity("sms", "+15550001"), Identity("email", "ann@example.test")),
        tags=("vip",),
        attributes={"plan": "gold", "seats": 3, "nested": {"a": [1, 2]}},
        created_at=_at(0),
        updated_at=_at(5),
    )
    data = to_json(contact)
    assert data["identities"] == [
        {"channel": "sms", "address": "+15550001"},
        {"channel": "email", "address": "ann@example.test"},
    ]
    assert from_json(data, Contact) == contact


def test_conversation_round_trips_through_json():
    """A conversation survives to_json then from_json, its status an enum again."""
    conversation = Conversation(
        id=new_id("cv"),
        contact_id=new_id("ct"),
        channel="sms",
        address="+15550001",
        status=ConversationStatus.PENDING,
        assignee="agent-1",
        unread_count=3,
        last_activity_at=_at(10),
        created_at=_at(0),
        updated_at=_at(10),
    )
    data = to_json(conversation)
    assert data["status"] == "pending"
    back = from_json(data, Conversation)
    assert back == conversation
    assert back.status is ConversationStatus.PENDING


def test_message_round_trips_through_json():
    """A message with media, provider id, error and metadata survives the round trip."""
    message = Message(
        id=new_id("msg"),
        conversation_id=new_id("cv"),
        contact_id=new_id("ct"),
        channel="sms",
        direction=Direction.OUTBOUND,
        status=DeliveryStatus.FAILED,
        text="hello",
        media=(Media("https://example.test/a.png", "image/png", "a.png"),),
        provider_message_id="SM123",
        idempotency_key="key-1",
        error_code="30003",
        error_message="unreachable",
        metadata={"campaign": "spring"},
        created_at=_at(0),
        updated_at=_at(1),
    )
    data = to_json(message)
    assert (data["direction"], data["status"]) == ("outbound", "failed")
    assert data["media"] == [
        {
            "url": "https://example.test/a.png",
            "content_type": "image/png",
            "filename": "a.png",
            "id": None,  # not kept by the media store (yet)
            "size": None,
            "role": "attachment",
            "content_id": None,
        }
    ]
    assert from_json(data, Message) == message


def test_timestamps_are_fixed_width_utc_z():
    """Timestamps render as UTC with microseconds and a Z, whatever their zone, so text
    order is time order."""
    eastern = timezone(timedelta(hours=-5))
    moment = datetime(2024, 1, 2, 3, 4, 5, tzinfo=eastern)
    assert format_timestamp(moment) == "2024-01-02T08:04:05.000000Z"
    conversation = Conversation(
        id="cv_1", contact_id="ct_1", channel="sms", address="+1", last_activity_at=moment
    )
    data = to_json(conversation)
    for field in ("last_activity_at", "created_at", "updated_at"):
        assert TIMESTAMP.match(data[field]), data[field]
    assert data["last_activity_at"] == "2024-01-02T08:04:05.000000Z"
    earlier, later = format_timestamp(_at(0)), format_timestamp(_at(3600 * 24 * 400))
    assert earlier < later
    assert len(earlier) == len(later)


def test_from_json_rejects_bad_data_with_invalid_input():
    """Malformed data raises InvalidInput saying what is wrong, never a raw exception."""
    data = to_json(Conversation(id="cv_1", contact_id="ct_1", channel="sms", address="+1"))
    data["status"] = "closed"
    with pytest.raises(InvalidInput) as raised:
        from_json(data, Conversation)
    errors = raised.value.details["errors"]
    assert any("$.status" in error for error in errors), errors


def test_new_ids_sort_by_creation_time():
    """Ids made later sort after ids made earlier (across milliseconds), carry their
    prefix, and are unique."""
    ids = []
    for _ in range(5):
        ids.append(new_id("msg"))
        time.sleep(0.002)
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"msg_[0-9a-hjkmnp-tv-z]{26}", i) for i in ids)
    many = {new_id("ct") for _ in range(10_000)}
    assert len(many) == 10_000
