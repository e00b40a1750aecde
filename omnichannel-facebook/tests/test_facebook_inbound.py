"""Inbound Messenger webhooks through the real server: signed as Facebook signs them, every
entry and event of a batch stored, each kind kept with what it says, echoes not stored as
the customer's, and each mid (or postback/referral without one) stored once."""

from __future__ import annotations

import json

import pytest
from messenger_events import (
    APP_SECRET,
    PAGE_ID,
    attachment,
    echo_event,
    entries,
    fallback_attachment,
    hub_signature,
    location_attachment,
    message_event,
    new_mid,
    post_webhook,
    postback_event,
    referral_event,
    text_event,
    unique_psid,
    webhook,
)


def test_text_message_is_stored_with_contact_and_conversation(client, inbox):
    """A signed text message: 200 EVENT_RECEIVED; the contact is identified by the PSID,
    the conversation answers to it, the message keeps the mid, the page id and its kind."""
    psid = unique_psid()
    mid = new_mid()
    response = post_webhook(client, webhook(text_event(psid, "I need help", mid=mid)))
    assert response.status_code == 200, response.text
    assert response.text == "EVENT_RECEIVED"

    contact = inbox.contact_of(psid)
    assert contact["identities"] == [{"channel": "facebook", "address": psid}]
    conversation = inbox.conversation_of(psid)
    assert conversation["address"] == psid
    assert conversation["unread_count"] == 1
    [message] = inbox.messages(conversation["id"])
    assert message["direction"] == "inbound"
    assert message["status"] == "received"
    assert message["text"] == "I need help"
    assert message["provider_message_id"] == mid
    assert message["metadata"]["facebook"] == {"kind": "message", "page_id": PAGE_ID}


def test_every_entry_and_every_event_of_a_batch_is_stored(client, inbox):
    """Two entries, several events each, from two customers: every message is stored in
    its customer's conversation, in order, not only the first."""
    ada, bob = unique_psid(), unique_psid()
    body = entries(
        [text_event(ada, "a1"), text_event(bob, "b1"), text_event(ada, "a2")],
        [text_event(bob, "b2"), postback_event(ada, "Menu", "MENU", mid=new_mid())],
    )
    assert post_webhook(client, body).status_code == 200
    assert [m["text"] for m in inbox.messages_of(ada)] == ["a1", "a2", "Menu"]
    assert [m["text"] for m in inbox.messages_of(bob)] == ["b1", "b2"]


def test_every_media_attachment_is_stored(client, inbox):
    """Image, audio, video and file attachments: all four as media, in order, with a
    content type where the URL tells; each listed under facebook.attachments."""
    psid = unique_psid()
    urls = [
        ("image", "https://scontent.xx.fbcdn.net/v/t1/photo.jpg?oh=1"),
        ("audio", "https://cdn.fbsbx.com/v/t59/audioclip.mp4?_nc_cat=1"),
        ("video", "https://video.xx.fbcdn.net/v/t42/clip.mp4?efg=1"),
        ("file", "https://cdn.fbsbx.com/v/t59/report.pdf?_nc=1"),
    ]
    attachments = [attachment(kind, url) for kind, url in urls]
    assert post_webhook(
        client, webhook(message_event(psid, {"attachments": attachments}))
    ).is_success

    [message] = inbox.messages_of(psid)
    assert message["text"] is None
    assert [m["url"] for m in message["media"]] == [url for _, url in urls]
    assert [m["content_type"] for m in message["media"]] == [
        "image/jpeg",
        "video/mp4",
        "video/mp4",
        "application/pdf",
    ]
    assert [a["type"] for a in message["metadata"]["facebook"]["attachments"]] == [
        "image",
        "audio",
        "video",
        "file",
    ]


def test_location_fallback_and_sticker_are_kept(client, inbox):
    """A shared location becomes metadata.location; a fallback (shared link) and a sticker
    are listed with their title, URL and sticker id."""
    psid = unique_psid()
    attachments = [
        location_attachment(48.8584, 2.2945, "Eiffel Tower"),
        fallback_attachment("https://example.test/article", "An article"),
        attachment(
            "image", "https://scontent.xx.fbcdn.net/sticker.png", sticker_id=369239263222822
        ),
    ]
    body = webhook(message_event(psid, {"attachments": attachments}))
    assert post_webhook(client, body).status_code == 200

    [message] = inbox.messages_of(psid)
    location = message["metadata"]["location"]
    assert (location["latitude"], location["longitude"]) == (48.8584, 2.2945)
    assert location["label"] == "Eiffel Tower"
    listed = message["metadata"]["facebook"]["attachments"]
    assert listed[0]["type"] == "location"
    assert listed[1] == {
        "type": "fallback",
        "url": "https://example.test/article",
        "title": "An article",
    }
    assert listed[2]["sticker_id"] == "369239263222822"
    assert [m["url"] for m in message["media"]] == ["https://scontent.xx.fbcdn.net/sticker.png"]


def test_quick_reply_keeps_its_payload_and_reply_to_its_mid(client, inbox):
    """A tapped quick reply: the title is the text, the payload in facebook.quick_reply;
    a reply to an earlier message keeps that message's mid."""
    psid = unique_psid()
    body = webhook(
        message_event(
            psid,
            {"text": "Yes please", "quick_reply": {"payload": "CONFIRM_YES"}},
        ),
        message_event(psid, {"text": "about that", "reply_to": {"mid": "m_earlier"}}),
    )
    assert post_webhook(client, body).status_code == 200
    first, second = inbox.messages_of(psid)
    assert first["text"] == "Yes please"
    assert first["metadata"]["facebook"]["quick_reply"] == {"payload": "CONFIRM_YES"}
    assert second["metadata"]["facebook"]["reply_to"] == "m_earlier"


def test_postback_is_stored_with_title_and_payload(client, inbox):
    """A button tapped: a message whose text is the button's title, with the payload."""
    psid = unique_psid()
    mid = new_mid()
    body = webhook(postback_event(psid, "Talk to a human", "HANDOFF", mid=mid))
    assert post_webhook(client, body).status_code == 200
    [message] = inbox.messages_of(psid)
    assert message["provider_message_id"] == mid
    assert message["text"] == "Talk to a human"
    assert message["metadata"]["facebook"]["kind"] == "postback"
    assert message["metadata"]["facebook"]["postback"] == {
        "title": "Talk to a human",
        "payload": "HANDOFF",
    }


def test_postback_and_referral_without_mid_store_once_on_retries(client, inbox):
    """No mid: Facebook delivering the same postback and referral three times stores each
    once; the same kind from the same customer at another moment is another message."""
    psid = unique_psid()
    body = webhook(
        postback_event(psid, "Get Started", "GET_STARTED", timestamp=1750000000000),
        referral_event(psid, "summer-sale", timestamp=1750000000500),
    )
    for _ in range(3):
        assert post_webhook(client, body).status_code == 200
    later = webhook(postback_event(psid, "Get Started", "GET_STARTED", timestamp=1750000009000))
    assert post_webhook(client, later).status_code == 200

    messages = inbox.messages_of(psid)
    assert [m["metadata"]["facebook"]["kind"] for m in messages] == [
        "postback",
        "referral",
        "postback",
    ]
    referral = messages[1]
    assert referral["text"] is None
    assert referral["metadata"]["facebook"]["referral"] == {
        "ref": "summer-sale",
        "source": "SHORTLINK",
        "type": "OPEN_THREAD",
    }


def test_the_same_mid_stores_once(client, inbox):
    """One webhook delivered three times, and its mid again in another batch: one message."""
    psid = unique_psid()
    event = text_event(psid, "only once")
    for _ in range(3):
        assert post_webhook(client, webhook(event)).status_code == 200
    assert post_webhook(client, webhook(text_event(psid, "new"), event)).status_code == 200
    assert [m["text"] for m in inbox.messages_of(psid)] == ["only once", "new"]


def test_echoes_are_not_stored_as_customer_messages(client, inbox):
    """The page's own messages repeated as echoes (from the Page inbox or another app) are
    acknowledged; no message, no contact for the customer nor for the page."""
    psid = unique_psid()
    body = webhook(echo_event(psid, new_mid(), "sent by an agent in the Page inbox"))
    response = post_webhook(client, body)
    assert response.status_code == 200
    assert inbox.contact_of(psid) is None
    assert inbox.contact_of(PAGE_ID) is None


def test_an_odd_event_does_not_cost_the_batch(client, inbox):
    """An event without a sender and an unknown kind (a reaction) are skipped; the text
    beside them is stored."""
    psid = unique_psid()
    broken = {"recipient": {"id": PAGE_ID}, "timestamp": 1, "message": {"mid": new_mid()}}
    reaction = {
        "sender": {"id": psid},
        "recipient": {"id": PAGE_ID},
        "timestamp": 1,
        "reaction": {"mid": "m_x", "action": "react", "emoji": "+1"},
    }
    body = webhook(broken, reaction, text_event(psid, "still here"))
    assert post_webhook(client, body).status_code == 200
    assert [m["text"] for m in inbox.messages_of(psid)] == ["still here"]


def test_another_products_webhook_is_acknowledged_and_ignored(client, inbox):
    """object "instagram", signed: 200, nothing stored."""
    psid = unique_psid()
    body = {"object": "instagram", "entry": [{"id": "1", "messaging": [text_event(psid)]}]}
    assert post_webhook(client, body).status_code == 200
    assert inbox.contact_of(psid) is None


def test_signed_body_that_is_not_a_webhook_is_400(client):
    """Correctly signed, but not JSON: 400 invalid_input."""
    response = post_webhook(client, b"not json at all")
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_input"


# the signature ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signature",
    ["", "sha256=" + "0" * 64, "sha1=abc", "sha256=", "garbage"],
    ids=["missing", "wrong-digest", "wrong-algorithm", "empty-digest", "garbage"],
)
def test_bad_or_missing_signature_is_403_and_nothing_stored(client, inbox, signature):
    """No X-Hub-Signature-256, or one that does not match: 403 webhook_rejected, and
    neither the message nor its contact is stored."""
    psid = unique_psid()
    response = post_webhook(client, webhook(text_event(psid)), signature=signature)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "webhook_rejected"
    assert inbox.contact_of(psid) is None


def test_signature_with_another_secret_is_403(client, inbox):
    """Signed with a secret other than FACEBOOK_APP_SECRET: 403, nothing stored."""
    psid = unique_psid()
    response = post_webhook(client, webhook(text_event(psid)), app_secret=APP_SECRET + "x")
    assert response.status_code == 403
    assert inbox.contact_of(psid) is None


def test_signature_is_over_the_raw_body(client, inbox):
    """A signature computed over the same JSON spelled differently does not verify: the
    body is checked exactly as received."""
    psid = unique_psid()
    payload = webhook(text_event(psid))
    signed = json.dumps(payload).encode()
    sent = json.dumps(payload, indent=2).encode()
    response = post_webhook(client, sent, signature=hub_signature(signed))
    assert response.status_code == 403
    assert inbox.contact_of(psid) is None


def test_unconfigured_webhook_is_503_and_nothing_stored(unconfigured_server):
    """Without FACEBOOK_APP_SECRET no signature can be checked: 503 naming it, never 500,
    nothing stored."""
    psid = unique_psid()
    with unconfigured_server.client() as client:
        response = post_webhook(client, webhook(text_event(psid)))
        assert response.status_code == 503, response.text
        assert "FACEBOOK_APP_SECRET" in response.json()["message"]
        assert client.get("/api/contacts", params={"q": psid}).json()["items"] == []
