"""Delivery and read receipts through the real server: watermarks move every earlier
outbound message of the conversation forward (never back), named mids exactly, and nothing
of another conversation or after the watermark."""

from __future__ import annotations

from datetime import datetime

from fake_graph import FakeGraph
from messenger_events import (
    delivery_event,
    now_ms,
    post_webhook,
    read_event,
    text_event,
    unique_psid,
    webhook,
)
from server_waits import WAIT


def open_conversation(client, inbox) -> tuple[str, str]:
    psid = unique_psid()
    assert post_webhook(client, webhook(text_event(psid, "hello"))).status_code == 200
    return psid, inbox.conversation_of(psid)["id"]


def send_replies(client, conversation_id: str, *texts: str) -> list[dict]:
    """Each reply sent (waiting for the outbox's attempt), in order."""
    sent = []
    for text in texts:
        response = client.post(
            f"/api/conversations/{conversation_id}/messages", json={"text": text}, headers=WAIT
        )
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "sent"
        sent.append(response.json())
    return sent


def statuses(inbox, conversation_id: str) -> dict[str, str]:
    """Each message's text and status, inbound ones included."""
    return {m["text"]: m["status"] for m in inbox.messages(conversation_id)}


def milliseconds(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def test_read_watermark_marks_every_earlier_outbound_message_read(client, inbox):
    """Three replies, then a read watermark: all three are read; the customer's own message
    stays received; a reply sent after the watermark stays sent."""
    psid, conversation_id = open_conversation(client, inbox)
    send_replies(client, conversation_id, "one", "two", "three")
    watermark = now_ms()
    send_replies(client, conversation_id, "after")
    assert post_webhook(client, webhook(read_event(psid, watermark))).status_code == 200
    assert statuses(inbox, conversation_id) == {
        "hello": "received",
        "one": "read",
        "two": "read",
        "three": "read",
        "after": "sent",
    }


def test_delivery_mids_are_exact_and_the_watermark_covers_the_rest(client, inbox):
    """A delivery receipt naming the second reply's mid with a watermark older than both
    replies: the second is delivered, the first stays sent; a later watermark delivers it."""
    psid, conversation_id = open_conversation(client, inbox)
    first, second = send_replies(client, conversation_id, "first", "second")
    old = milliseconds(first["created_at"]) - 60_000
    receipt = delivery_event(psid, old, mids=[second["provider_message_id"]])
    assert post_webhook(client, webhook(receipt)).status_code == 200
    assert statuses(inbox, conversation_id)["first"] == "sent"
    assert statuses(inbox, conversation_id)["second"] == "delivered"

    assert post_webhook(client, webhook(delivery_event(psid, now_ms()))).status_code == 200
    assert statuses(inbox, conversation_id)["first"] == "delivered"


def test_receipts_move_forward_only(client, inbox):
    """Read, then a delivery receipt arriving late (Facebook does not order them): the
    messages stay read."""
    psid, conversation_id = open_conversation(client, inbox)
    send_replies(client, conversation_id, "seen")
    watermark = now_ms()
    assert post_webhook(client, webhook(read_event(psid, watermark))).status_code == 200
    late = delivery_event(psid, watermark)
    assert post_webhook(client, webhook(late)).status_code == 200
    assert statuses(inbox, conversation_id)["seen"] == "read"


def test_a_watermark_touches_only_its_own_conversation(client, inbox):
    """A read receipt from one customer leaves another customer's replies as they were."""
    ada, ada_conversation = open_conversation(client, inbox)
    _, bob_conversation = open_conversation(client, inbox)
    send_replies(client, ada_conversation, "to ada")
    send_replies(client, bob_conversation, "to bob")
    assert post_webhook(client, webhook(read_event(ada, now_ms()))).status_code == 200
    assert statuses(inbox, ada_conversation)["to ada"] == "read"
    assert statuses(inbox, bob_conversation)["to bob"] == "sent"


def test_receipts_and_messages_in_one_batch(client, inbox, fake_graph: FakeGraph):
    """A batch with a new message from the customer and a read receipt: the message is
    stored and the earlier reply is read."""
    psid, conversation_id = open_conversation(client, inbox)
    send_replies(client, conversation_id, "question?")
    body = webhook(read_event(psid, now_ms()), text_event(psid, "answer!"))
    assert post_webhook(client, body).status_code == 200
    assert statuses(inbox, conversation_id) == {
        "hello": "received",
        "question?": "read",
        "answer!": "received",
    }


def test_receipts_for_an_unknown_customer_are_acknowledged(client, inbox):
    """A watermark for a PSID with no conversation: 200, nothing created."""
    psid = unique_psid()
    body = webhook(read_event(psid, now_ms()), delivery_event(psid, now_ms(), mids=["m_x"]))
    assert post_webhook(client, body).status_code == 200
    assert inbox.contact_of(psid) is None
