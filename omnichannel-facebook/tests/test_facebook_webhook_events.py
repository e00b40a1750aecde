"""A webhook body as events, and events as messages and receipts, in process: every entry
and event, kinds told apart, odd events skipped without losing the others."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from messenger_events import (
    PAGE_ID,
    delivery_event,
    echo_event,
    entries,
    postback_event,
    read_event,
    referral_event,
    text_event,
    webhook,
)
from omnichannel_facebook.inbound import inbound_message, synthetic_id
from omnichannel_facebook.receipts import echo_metadata, receipts
from omnichannel_facebook.webhook import customer_messages
from omnichannel_facebook.webhook_events import parse_events

from omnichannel_core.channel import (
    DeliveryStatus,
    InvalidInput,
)


def events_of(body: dict) -> list:
    return parse_events(json.dumps(body).encode())


def test_every_event_of_every_entry_in_order():
    """Two entries of two events each: four events, in the order sent, kinds named."""
    body = entries(
        [text_event("1", "a"), postback_event("1", "Start", "START", mid="m_pb")],
        [delivery_event("2", 1700000000000), read_event("2", 1700000000001)],
    )
    events = events_of(body)
    assert [(e.kind, e.sender) for e in events] == [
        ("message", "1"),
        ("postback", "1"),
        ("delivery", "2"),
        ("read", "2"),
    ]
    assert events[0].recipient == PAGE_ID


def test_echoes_referrals_and_unknown_kinds_are_named():
    """is_echo makes an echo; referral, and other keys (reaction) keep their own name."""
    reaction = {"sender": {"id": "3"}, "recipient": {"id": PAGE_ID}, "timestamp": 1, "reaction": {}}
    events = events_of(webhook(echo_event("3", "m_e"), referral_event("3", "ad"), reaction))
    assert [e.kind for e in events] == ["echo", "referral", "reaction"]


def test_standby_events_are_read_and_marked():
    """Events in an entry's standby list (another app owns the thread) are events too."""
    [event] = events_of(entries([text_event("4", "hi")], standby=True))
    assert event.standby
    [message] = customer_messages([event])
    assert message.metadata["facebook"]["standby"] is True


def test_an_event_without_sender_is_skipped_not_the_batch():
    """One event with no sender.id is dropped; the others of the batch are kept."""
    broken = {"recipient": {"id": PAGE_ID}, "timestamp": 1, "message": {"mid": "m_x"}}
    events = events_of(webhook(text_event("5", "kept"), broken, "not an event"))
    assert [e.sender for e in events] == ["5"]


def test_an_event_whose_sender_is_not_a_page_scoped_id_is_skipped():
    """A sender id that is not digits (Messenger's ids always are) could never be answered:
    that event is dropped, the others kept."""
    odd = text_event("5", "odd")
    odd["sender"] = {"id": "a\u0000b\n"}
    events = events_of(webhook(text_event("6", "kept"), odd))
    assert [e.sender for e in events] == ["6"]


def test_another_products_webhook_holds_no_events():
    """object "instagram": nothing for this channel."""
    assert events_of({"object": "instagram", "entry": [{"messaging": [text_event("6")]}]}) == []


@pytest.mark.parametrize("body", [b"[]", b'{"object": "page"}', b"not json", b'{"entry": 1}'])
def test_a_body_that_is_not_a_webhook_is_invalid_input(body):
    """Not a JSON object with an entry list: InvalidInput (400)."""
    with pytest.raises(InvalidInput):
        parse_events(body)


def test_a_message_without_mid_is_skipped():
    """A message event without a mid cannot be deduplicated: skipped."""
    event = text_event("7", "x")
    del event["message"]["mid"]
    assert customer_messages(events_of(webhook(event))) == []


def test_postbacks_and_referrals_without_mid_get_a_stable_id():
    """No mid: the id is (kind, sender, timestamp), the same each time the event comes."""
    postback = postback_event("8", "Start", "START", timestamp=1700000000123)
    referral = referral_event("8", "summer", timestamp=1700000000456)
    first = customer_messages(events_of(webhook(postback, referral)))
    again = customer_messages(events_of(webhook(postback, referral)))
    assert [m.provider_message_id for m in first] == [
        synthetic_id("postback", "8", 1700000000123),
        synthetic_id("referral", "8", 1700000000456),
    ]
    assert [m.provider_message_id for m in again] == [m.provider_message_id for m in first]


def test_a_batch_repeating_a_mid_yields_it_once():
    """The same mid twice in one body: one message."""
    event = text_event("9", "twice", mid="m_same")
    assert len(customer_messages(events_of(webhook(event, event)))) == 1


def test_event_time_is_the_messages_sent_at():
    """The event's timestamp (ms) is the message's sent_at, aware UTC."""
    [message] = customer_messages(events_of(webhook(text_event("10", timestamp=1700000000000))))
    assert message.sent_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_receipts_keep_the_latest_watermark_per_customer():
    """Two read watermarks for one customer in a batch: only the later one; delivery mids
    become exact updates beside the delivery watermark."""
    events = events_of(
        webhook(
            read_event("11", 1700000000000),
            read_event("11", 1700000005000),
            delivery_event("11", 1700000004000, mids=["m_a", "m_b"]),
        )
    )
    updates, watermarks = receipts(events)
    assert [(u.provider_message_id, u.status) for u in updates] == [
        ("m_a", DeliveryStatus.DELIVERED),
        ("m_b", DeliveryStatus.DELIVERED),
    ]
    assert {(w.recipient, w.status, w.up_to) for w in watermarks} == {
        ("11", DeliveryStatus.READ, datetime.fromtimestamp(1700000005, UTC)),
        ("11", DeliveryStatus.DELIVERED, datetime.fromtimestamp(1700000004, UTC)),
    }


def test_only_our_first_parts_echo_is_a_status():
    """An echo naming our message (first part) is a "sent" update with our id; a later
    part's echo and a foreign echo (no or other metadata) are nothing."""
    events = events_of(
        webhook(
            echo_event("12", "m_1", metadata=echo_metadata("msg_abc")),
            echo_event("12", "m_2", metadata=echo_metadata("msg_abc", part=2)),
            echo_event("12", "m_3"),
            echo_event("12", "m_4", metadata="someone else's"),
        )
    )
    updates, watermarks = receipts(events)
    assert [(u.provider_message_id, u.status, u.message_id) for u in updates] == [
        ("m_1", DeliveryStatus.SENT, "msg_abc")
    ]
    assert watermarks == ()
    assert customer_messages(events) == []


def test_inbound_message_of_a_postback_with_referral():
    """A postback that opened the thread from a link keeps title, payload and referral."""
    referral = {"ref": "promo", "source": "SHORTLINK", "type": "OPEN_THREAD"}
    [event] = events_of(webhook(postback_event("13", "Get Started", "GS", "m_p", None, referral)))
    message = inbound_message(event)
    assert message is not None
    assert message.text == "Get Started"
    assert message.metadata["facebook"]["postback"] == {"title": "Get Started", "payload": "GS"}
    assert message.metadata["facebook"]["referral"] == referral
