"""Outbound Messenger messages through the real server to the fake Graph API: what the Send
API receives, the 24-hour window and message tags, and how Graph's errors come back."""

from __future__ import annotations

import pytest
from fake_graph import (
    GRAPH_VERSION,
    INVALID_PARAMETER,
    INVALID_TOKEN,
    NO_MATCHING_USER,
    OUTSIDE_WINDOW_CODE,
    OUTSIDE_WINDOW_SUBCODE,
    PAGE_RATE_LIMITED,
    RATE_LIMITED,
    TEMPORARY_FAILURE,
    FakeGraph,
    GraphAnswer,
    new_mid,
)
from messenger_events import (
    PAGE_TOKEN,
    echo_event,
    now_ms,
    post_webhook,
    text_event,
    unique_psid,
    webhook,
)
from omnichannel_facebook.outbound import SEND_ATTEMPTS

SEND = "/api/channels/facebook/messages"
IMAGE = "https://cdn.example.test/pictures/receipt.jpg"


def open_conversation(client, inbox, psid: str | None = None) -> tuple[str, str]:
    """A customer who just wrote (inside the window): their PSID and conversation id."""
    psid = psid or unique_psid()
    assert post_webhook(client, webhook(text_event(psid, "hello"))).status_code == 200
    return psid, inbox.conversation_of(psid)["id"]


def reply(client, conversation_id: str, **payload):
    return client.post(f"/api/conversations/{conversation_id}/messages", json=payload)


def test_reply_inside_the_window_is_a_response(client, inbox, fake_graph: FakeGraph):
    """A reply to a customer who wrote just now: one Send API call with the recipient's
    PSID, messaging_type RESPONSE, the text and our message id as metadata; the message is
    stored sent with the mid Facebook answered."""
    psid, conversation_id = open_conversation(client, inbox)
    mid = new_mid()
    fake_graph.queue(GraphAnswer.accept(mid))
    response = reply(client, conversation_id, text="How can I help?")
    assert response.status_code == 201, response.text
    message = response.json()

    [sent] = fake_graph.send_requests(psid)
    assert sent.path == f"/{GRAPH_VERSION}/me/messages"
    assert sent.bearer == PAGE_TOKEN
    assert sent.query["appsecret_proof"] == fake_graph.proof
    assert sent.body == {
        "recipient": {"id": psid},
        "messaging_type": "RESPONSE",
        "message": {"text": "How can I help?", "metadata": f"omnichannel:{message['id']}"},
    }
    assert message["provider_message_id"] == mid
    assert message["status"] == "sent"
    assert message["direction"] == "outbound"


def test_outside_the_window_without_a_tag_is_a_clear_422(client, inbox, fake_graph):
    """A customer who never wrote, no message tag: 422 send_rejected with code
    outside_messaging_window explaining the tags; Facebook is not called; the message is
    stored failed."""
    psid = unique_psid()
    response = client.post(SEND, json={"to": psid, "text": "Your order shipped"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "send_rejected"
    assert body["code"] == "outside_messaging_window"
    assert "message_tag" in body["message"] and "24-hour" in body["message"]
    assert fake_graph.send_requests(psid) == []
    assert inbox.message(body["message_id"])["status"] == "failed"


def test_a_customer_who_wrote_25_hours_ago_is_outside_the_window(client, inbox, fake_graph):
    """The customer's last message was sent 25 hours ago (its event time): a reply without
    a tag is refused with outside_messaging_window; with HUMAN_AGENT it goes out tagged."""
    psid = unique_psid()
    long_ago = now_ms() - 25 * 3600 * 1000
    assert post_webhook(client, webhook(text_event(psid, "hi", timestamp=long_ago))).is_success
    conversation_id = inbox.conversation_of(psid)["id"]
    refused = reply(client, conversation_id, text="sorry for the wait")
    assert refused.status_code == 422, refused.text
    assert refused.json()["code"] == "outside_messaging_window"
    assert "more than 24 hours ago" in refused.json()["message"]
    tagged = reply(
        client, conversation_id, text="an agent here", metadata={"message_tag": "HUMAN_AGENT"}
    )
    assert tagged.status_code == 201, tagged.text
    [sent] = fake_graph.send_requests(psid)
    assert (sent.body["messaging_type"], sent.body["tag"]) == ("MESSAGE_TAG", "HUMAN_AGENT")


def test_a_new_message_reopens_the_window(client, inbox, fake_graph):
    """After an old message, a new one from the customer makes replies RESPONSE again."""
    psid = unique_psid()
    long_ago = now_ms() - 30 * 3600 * 1000
    assert post_webhook(client, webhook(text_event(psid, "old", timestamp=long_ago))).is_success
    assert post_webhook(client, webhook(text_event(psid, "new"))).is_success
    response = reply(client, inbox.conversation_of(psid)["id"], text="welcome back")
    assert response.status_code == 201, response.text
    [sent] = fake_graph.send_requests(psid)
    assert sent.body["messaging_type"] == "RESPONSE"


def test_outside_the_window_with_a_tag_is_a_tagged_message(client, fake_graph):
    """metadata.message_tag outside the window: MESSAGE_TAG with the tag."""
    psid = unique_psid()
    payload = {
        "to": psid,
        "text": "Your order shipped",
        "metadata": {"message_tag": "POST_PURCHASE_UPDATE"},
    }
    response = client.post(SEND, json=payload)
    assert response.status_code == 201, response.text
    [sent] = fake_graph.send_requests(psid)
    assert sent.body["messaging_type"] == "MESSAGE_TAG"
    assert sent.body["tag"] == "POST_PURCHASE_UPDATE"


def test_text_and_attachments_by_url_go_out_in_parts(client, inbox, fake_graph):
    """Text and two media: the text, then each attachment by URL with its type; the message
    is known by the first part's mid; every part names our message."""
    psid, conversation_id = open_conversation(client, inbox)
    first = new_mid()
    fake_graph.queue(GraphAnswer.accept(first), GraphAnswer.accept(), GraphAnswer.accept())
    media = [{"url": IMAGE, "content_type": "image/jpeg"}, "https://cdn.example.test/manual.pdf"]
    response = reply(client, conversation_id, text="Here you go", media=media)
    assert response.status_code == 201, response.text
    message_id = response.json()["id"]

    text, image, document = (request.body["message"] for request in fake_graph.send_requests(psid))
    assert text == {"text": "Here you go", "metadata": f"omnichannel:{message_id}"}
    assert image["attachment"] == {"type": "image", "payload": {"url": IMAGE, "is_reusable": False}}
    assert image["metadata"] == f"omnichannel:{message_id}#2"
    assert document["attachment"]["type"] == "file"
    assert response.json()["provider_message_id"] == first


def test_quick_replies_ride_on_the_message(client, inbox, fake_graph):
    """metadata.quick_replies [{title, payload}] are sent as text quick replies."""
    psid, conversation_id = open_conversation(client, inbox)
    replies = [{"title": "Yes", "payload": "YES"}, {"title": "No", "payload": "NO"}]
    response = reply(
        client, conversation_id, text="Did that help?", metadata={"quick_replies": replies}
    )
    assert response.status_code == 201, response.text
    [sent] = fake_graph.send_requests(psid)
    assert sent.body["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Yes", "payload": "YES"},
        {"content_type": "text", "title": "No", "payload": "NO"},
    ]


def test_malformed_quick_replies_are_a_422_before_facebook(client, inbox, fake_graph):
    """A quick reply title over 20 characters: 422 invalid_quick_replies, nothing sent."""
    psid, conversation_id = open_conversation(client, inbox)
    replies = [{"title": "A title far too long for a button", "payload": "X"}]
    response = reply(client, conversation_id, text="?", metadata={"quick_replies": replies})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_quick_replies"
    assert fake_graph.send_requests(psid) == []


def test_rate_limits_are_retried_then_sent(client, inbox, fake_graph):
    """Two rate-limit answers (613, then 32), then success: 201 after three calls."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(RATE_LIMITED), GraphAnswer.error(PAGE_RATE_LIMITED))
    response = reply(client, conversation_id, text="eventually")
    assert response.status_code == 201, response.text
    assert len(fake_graph.send_requests(psid)) == 3


def test_rate_limits_without_end_are_provider_unavailable(client, inbox, fake_graph):
    """Rate limited on every try: a bounded number of tries, then 502 provider_unavailable
    with Graph's code, and the message stored failed."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(*[GraphAnswer.error(RATE_LIMITED)] * SEND_ATTEMPTS)
    response = reply(client, conversation_id, text="never")
    assert response.status_code == 502, response.text
    body = response.json()
    assert body["error"] == "provider_unavailable"
    assert body["code"] == str(RATE_LIMITED)
    assert len(fake_graph.send_requests(psid)) == SEND_ATTEMPTS
    assert inbox.message(body["message_id"])["status"] == "failed"


def test_outages_are_retried(client, inbox, fake_graph):
    """A 500 and a temporary send failure (1200), then success: sent."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(2, status=500), GraphAnswer.error(TEMPORARY_FAILURE))
    response = reply(client, conversation_id, text="after the outage")
    assert response.status_code == 201, response.text
    assert len(fake_graph.send_requests(psid)) == 3


def test_an_invalid_token_is_channel_unavailable(client, inbox, fake_graph):
    """Graph's 190: 503 channel_unavailable saying to renew FACEBOOK_PAGE_ACCESS_TOKEN,
    with Graph's message; not retried; the message stored failed; no token in the answer."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(INVALID_TOKEN))
    response = reply(client, conversation_id, text="x")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "channel_unavailable"
    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in body["message"]
    assert "Session has expired" in body["message"]
    assert body["graph_code"] == INVALID_TOKEN
    assert PAGE_TOKEN not in response.text
    assert len(fake_graph.send_requests(psid)) == 1
    assert inbox.message(body["message_id"])["status"] == "failed"


def test_other_refusals_are_a_422_with_graphs_message_and_code(client, inbox, fake_graph):
    """Graph's #100 "No matching user found": 422 send_rejected, code "100", the subcode
    and fbtrace_id beside Graph's message; not retried."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(INVALID_PARAMETER, subcode=NO_MATCHING_USER))
    response = reply(client, conversation_id, text="x")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "send_rejected"
    assert body["code"] == "100"
    assert body["message"] == "(#100) No matching user found"
    assert body["graph_subcode"] == NO_MATCHING_USER
    assert body["fbtrace_id"]
    assert len(fake_graph.send_requests(psid)) == 1


def test_graphs_window_refusal_explains_message_tags(client, inbox, fake_graph):
    """Facebook itself refusing for the window (10/2018278): 422 whose message says to use
    a message tag."""
    _, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(OUTSIDE_WINDOW_CODE, 403, OUTSIDE_WINDOW_SUBCODE))
    response = reply(client, conversation_id, text="x")
    assert response.status_code == 422, response.text
    assert "message_tag" in response.json()["message"]


def test_a_bare_server_error_is_not_retried(client, inbox, fake_graph):
    """A 502 that is not Graph's "try again" (a proxy's page): the message may have gone, so
    it is sent once, answered 504 send_outcome_unknown, and left "sending" for its echo."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.garbage(status=502))
    response = reply(client, conversation_id, text="maybe sent")
    assert response.status_code == 504, response.text
    assert inbox.message(response.json()["message_id"])["status"] == "sending"
    assert len(fake_graph.send_requests(psid)) == 1


def test_a_lost_answer_is_504_and_the_echo_settles_it(client, inbox, fake_graph):
    """Facebook answering 200 with something that is not JSON: the message may have gone,
    so 504 send_outcome_unknown and it stays "sending"; the echo naming it then records its
    mid and moves it to sent."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.garbage())
    response = reply(client, conversation_id, text="did it go?")
    assert response.status_code == 504, response.text
    message_id = response.json()["message_id"]
    assert inbox.message(message_id)["status"] == "sending"
    assert len(fake_graph.send_requests(psid)) == 1  # never sent twice

    mid = new_mid()
    echo = echo_event(psid, mid, "did it go?", metadata=f"omnichannel:{message_id}")
    assert post_webhook(client, webhook(echo)).status_code == 200
    settled = inbox.message(message_id)
    assert (settled["status"], settled["provider_message_id"]) == ("sent", mid)
    assert [m["direction"] for m in inbox.messages(conversation_id)] == ["inbound", "outbound"]


@pytest.mark.parametrize("to", ["+15551234567", "not-a-psid"])
def test_a_recipient_that_is_not_a_psid_is_refused_before_facebook(client, fake_graph, to):
    """Sending to an address that is not a PSID: 422 invalid_recipient, Facebook not called."""
    before = len(fake_graph.send_requests())
    response = client.post(
        SEND, json={"to": to, "text": "x", "metadata": {"message_tag": "HUMAN_AGENT"}}
    )
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_recipient"
    assert len(fake_graph.send_requests()) == before


def test_repeated_idempotency_key_sends_once(client, inbox, fake_graph):
    """The same request with the same Idempotency-Key: one Send API call, the same message."""
    psid, conversation_id = open_conversation(client, inbox)
    headers = {"Idempotency-Key": "fb-idem-" + psid}
    path = f"/api/conversations/{conversation_id}/messages"
    first = client.post(path, json={"text": "once"}, headers=headers)
    second = client.post(path, json={"text": "once"}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert len(fake_graph.send_requests(psid)) == 1


# other servers ------------------------------------------------------------------------------


def test_send_with_a_token_facebook_refuses_is_503(wrong_token_server, fake_graph):
    """The fake refusing the configured token (190): 503 naming the variable."""
    psid = unique_psid()
    with wrong_token_server.client() as client:
        response = client.post(
            SEND, json={"to": psid, "text": "x", "metadata": {"message_tag": "HUMAN_AGENT"}}
        )
    assert response.status_code == 503, response.text
    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in response.json()["message"]


def test_send_to_unreachable_graph_is_provider_unavailable(unreachable_server):
    """Nobody listening at the Graph API URL: retried, then 502 provider_unavailable with
    code unreachable; the message stored failed."""
    with unreachable_server.client() as client:
        response = client.post(
            SEND,
            json={"to": unique_psid(), "text": "x", "metadata": {"message_tag": "HUMAN_AGENT"}},
        )
        assert response.status_code == 502, response.text
        body = response.json()
        assert (body["error"], body["code"]) == ("provider_unavailable", "unreachable")
        assert client.get(f"/api/messages/{body['message_id']}").json()["status"] == "failed"


def test_unconfigured_send_is_503_with_the_reason(unconfigured_server):
    """A send on an unconfigured channel: 503 channel_unavailable naming what is missing."""
    with unconfigured_server.client() as client:
        response = client.post(SEND, json={"to": unique_psid(), "text": "x"})
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "channel_unavailable"
    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in body["message"]
