"""Outbound Messenger messages through the real server to the fake Graph API: what the Send
API receives, the 24-hour window and message tags, and how Graph's errors come back.

A send is stored and answered 202; the outbox sends it (docs/delivery.md). The tests that
look at a send's outcome ask to wait for the first attempt (``Prefer: wait``), so the answer
is the outcome, as before the outbox; the others poll the message.
"""

from __future__ import annotations

import time
from typing import Any

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
from server_waits import WAIT, message_when, settled

from omnichannel_core.testing.inbox_reader import InboxReader

SEND = "/api/channels/facebook/messages"
IMAGE = "https://cdn.example.test/pictures/receipt.jpg"


def open_conversation(client, inbox, psid: str | None = None) -> tuple[str, str]:
    """A customer who just wrote (inside the window): their PSID and conversation id."""
    psid = psid or unique_psid()
    assert post_webhook(client, webhook(text_event(psid, "hello"))).status_code == 200
    return psid, inbox.conversation_of(psid)["id"]


def reply(client, conversation_id: str, headers: dict[str, str] | None = WAIT, **payload):
    """A reply, waiting for the first attempt unless told other ``headers``."""
    return client.post(
        f"/api/conversations/{conversation_id}/messages", json=payload, headers=headers
    )


def send(client, payload: dict[str, Any], headers: dict[str, str] | None = WAIT):
    """``POST /api/channels/facebook/messages``, waiting for the first attempt."""
    return client.post(SEND, json=payload, headers=headers)


def test_reply_inside_the_window_is_a_response(client, inbox, fake_graph: FakeGraph):
    """A reply to a customer who wrote just now: one Send API call with the recipient's
    PSID, messaging_type RESPONSE, the text and our message id as metadata; the message is
    stored sent with the mid Facebook answered."""
    psid, conversation_id = open_conversation(client, inbox)
    mid = new_mid()
    fake_graph.queue(GraphAnswer.accept(mid))
    response = reply(client, conversation_id, text="How can I help?")
    assert response.status_code == 201, response.text
    assert response.headers["Preference-Applied"] == "wait=10"
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
    assert (message["attempts"], message["in_doubt"], message["error_code"]) == (1, False, None)


def test_a_send_is_accepted_at_once_and_the_outbox_sends_it(client, inbox, fake_graph):
    """Without Prefer: 202 with the message stored queued, not yet tried; the outbox then
    sends it once, and it becomes sent with Facebook's mid."""
    psid, conversation_id = open_conversation(client, inbox)
    mid = new_mid()
    fake_graph.queue(GraphAnswer.accept(mid))
    response = reply(client, conversation_id, headers=None, text="on its way")
    assert response.status_code == 202, response.text
    assert "Preference-Applied" not in response.headers
    accepted = response.json()
    assert (accepted["status"], accepted["attempts"], accepted["provider_message_id"]) == (
        "queued",
        0,
        None,
    )

    sent = message_when(inbox, accepted["id"], settled)
    assert (sent["status"], sent["provider_message_id"], sent["attempts"]) == ("sent", mid, 1)
    [request] = fake_graph.send_requests(psid)
    assert request.body["message"]["metadata"] == f"omnichannel:{accepted['id']}"


def test_outside_the_window_without_a_tag_is_a_clear_422(client, inbox, fake_graph):
    """A customer who never wrote, no message tag: 422 send_rejected with code
    outside_messaging_window explaining the tags; Facebook is not called; the message is
    stored failed."""
    psid = unique_psid()
    response = send(client, {"to": psid, "text": "Your order shipped"})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "send_rejected"
    assert body["code"] == "outside_messaging_window"
    assert "message_tag" in body["message"] and "24-hour" in body["message"]
    assert body["stored_message"]["status"] == "failed"
    assert body["stored_message"]["error_code"] == "outside_messaging_window"
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
    response = send(client, payload)
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
    assert response.json()["attempts"] == 1


def test_a_later_part_failing_retryably_fails_the_message_never_resent(client, inbox, fake_graph):
    """Text and an image: the text goes out, then Facebook rate-limits the image on every
    try of the channel's own loop. The outbox must not make another attempt, which would
    send the text again: 422 with the message failed after one attempt, saying 1 of 2 parts
    went out; Facebook received the text once and the image only in that one attempt."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.accept(), *[GraphAnswer.error(RATE_LIMITED)] * SEND_ATTEMPTS)
    media = [{"url": IMAGE, "content_type": "image/jpeg"}]
    response = reply(client, conversation_id, text="Here is your receipt", media=media)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "send_rejected"
    assert body["code"] == str(RATE_LIMITED)
    assert body["message"].startswith("1 of 2 parts were sent")
    assert body["stored_message"]["status"] == "failed"

    # Well past the outbox's backoff (50 ms here): still one attempt, nothing sent again.
    time.sleep(0.5)
    failed = inbox.message(body["message_id"])
    assert (failed["status"], failed["attempts"]) == ("failed", 1)
    assert failed["error_code"] == str(RATE_LIMITED)
    parts = [request.body["message"] for request in fake_graph.send_requests(psid)]
    texts = [part for part in parts if "text" in part]
    images = [part for part in parts if "attachment" in part]
    assert texts == [{"text": "Here is your receipt", "metadata": f"omnichannel:{failed['id']}"}]
    assert len(images) == SEND_ATTEMPTS
    assert all(image["metadata"] == f"omnichannel:{failed['id']}#2" for image in images)


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
    """Two rate-limit answers (613, then 32), then success: 201 after three calls, all
    within the outbox's one attempt (the channel's own loop retries a part)."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(RATE_LIMITED), GraphAnswer.error(PAGE_RATE_LIMITED))
    response = reply(client, conversation_id, text="eventually")
    assert response.status_code == 201, response.text
    assert (response.json()["status"], response.json()["attempts"]) == ("sent", 1)
    assert len(fake_graph.send_requests(psid)) == 3


def test_rate_limits_through_an_attempt_are_retried_by_the_outbox(client, inbox, fake_graph):
    """Rate limited on every try of the channel's loop, in two attempts: the outbox tries
    again after each, and the third attempt sends it within the caller's wait: 201, the
    error cleared. Facebook saw each attempt's tries and one success."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(*[GraphAnswer.error(RATE_LIMITED)] * (2 * SEND_ATTEMPTS))
    response = reply(client, conversation_id, text="later")
    assert response.status_code == 201, response.text
    sent = response.json()
    assert (sent["status"], sent["attempts"]) == ("sent", 3)
    assert (sent["error_code"], sent["error_message"], sent["error_details"]) == (None, None, {})
    assert sent["provider_message_id"]
    assert len(fake_graph.send_requests(psid)) == 2 * SEND_ATTEMPTS + 1


def test_rate_limits_past_the_wait_answer_502_with_the_message_queued(client, inbox, fake_graph):
    """Still rate limited when the caller's wait is up: 502 provider_unavailable with
    Graph's code, the message queued with the error, retryable; the outbox goes on."""
    _, conversation_id = open_conversation(client, inbox)
    # Each attempt tries SEND_ATTEMPTS times over 1.75 s: after 5 s, two attempts failed and
    # a third is under way.
    fake_graph.queue(*[GraphAnswer.error(RATE_LIMITED)] * (4 * SEND_ATTEMPTS))
    response = reply(client, conversation_id, headers={"Prefer": "wait=5"}, text="busy")
    assert response.status_code == 502, response.text
    body = response.json()
    assert (body["error"], body["code"]) == ("provider_unavailable", str(RATE_LIMITED))
    stored = body["stored_message"]
    assert (stored["status"], stored["error_code"]) == ("queued", str(RATE_LIMITED))
    assert stored["error_details"]["retryable"] is True
    assert "rate limiting" in stored["error_message"]
    sent = message_when(inbox, body["message_id"], settled, 30)
    assert (sent["status"], sent["attempts"]) == ("sent", 5)


def test_outages_are_retried(client, inbox, fake_graph):
    """A 500 and a temporary send failure (1200), then success: sent."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(2, status=500), GraphAnswer.error(TEMPORARY_FAILURE))
    response = reply(client, conversation_id, text="after the outage")
    assert response.status_code == 201, response.text
    assert response.json()["attempts"] == 1
    assert len(fake_graph.send_requests(psid)) == 3


def test_an_invalid_token_is_channel_unavailable(client, inbox, fake_graph):
    """Graph's 190: 503 channel_unavailable saying to renew FACEBOOK_PAGE_ACCESS_TOKEN,
    with Graph's message and code; not retried; the message stored failed; no token in the
    answer."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(INVALID_TOKEN))
    response = reply(client, conversation_id, text="x")
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "channel_unavailable"
    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in body["message"]
    assert "Session has expired" in body["message"]
    assert f"Graph code {INVALID_TOKEN}" in body["message"]
    assert body["stored_message"]["error_code"] == "channel_unavailable"
    assert PAGE_TOKEN not in response.text
    time.sleep(0.3)  # well past the outbox's backoff: still the one call
    assert len(fake_graph.send_requests(psid)) == 1
    assert inbox.message(body["message_id"])["status"] == "failed"


def test_other_refusals_are_a_422_with_graphs_message_and_code(client, inbox, fake_graph):
    """Graph's #100 "No matching user found": 422 send_rejected, code "100" and Graph's
    message, kept on the failed message; not retried."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.error(INVALID_PARAMETER, subcode=NO_MATCHING_USER))
    response = reply(client, conversation_id, text="x")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "send_rejected"
    assert body["code"] == "100"
    assert body["message"] == "(#100) No matching user found"
    failed = inbox.message(body["message_id"])
    assert (failed["status"], failed["error_code"], failed["attempts"]) == ("failed", "100", 1)
    assert failed["error_message"] == "(#100) No matching user found"
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
    it is sent once, answered 504 send_outcome_unknown, and left "sending", in doubt, for
    its echo: Messenger is not resend-safe, the outbox does not send it again."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.garbage(status=502))
    response = reply(client, conversation_id, text="maybe sent")
    assert response.status_code == 504, response.text
    assert response.json()["error"] == "send_outcome_unknown"
    time.sleep(0.5)  # ten times the outbox's backoff here
    doubtful = inbox.message(response.json()["message_id"])
    assert (doubtful["status"], doubtful["in_doubt"], doubtful["attempts"]) == ("sending", True, 1)
    assert len(fake_graph.send_requests(psid)) == 1


def test_a_lost_answer_is_504_and_the_echo_settles_it(client, inbox, fake_graph):
    """Facebook answering 200 with something that is not JSON: the message may have gone,
    so 504 send_outcome_unknown and it stays "sending", in doubt; the echo naming it then
    records its mid and moves it to sent, no longer in doubt."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.garbage())
    response = reply(client, conversation_id, text="did it go?")
    assert response.status_code == 504, response.text
    message_id = response.json()["message_id"]
    stored = response.json()["stored_message"]
    assert (stored["status"], stored["in_doubt"]) == ("sending", True)
    assert inbox.message(message_id)["status"] == "sending"
    assert len(fake_graph.send_requests(psid)) == 1  # never sent twice

    mid = new_mid()
    echo = echo_event(psid, mid, "did it go?", metadata=f"omnichannel:{message_id}")
    assert post_webhook(client, webhook(echo)).status_code == 200
    confirmed = inbox.message(message_id)
    assert (confirmed["status"], confirmed["provider_message_id"]) == ("sent", mid)
    assert confirmed["in_doubt"] is False
    assert [m["direction"] for m in inbox.messages(conversation_id)] == ["inbound", "outbound"]


def test_a_message_in_doubt_is_settled_by_its_echo(client, inbox, fake_graph):
    """Not waiting (202): the outbox's attempt loses Facebook's answer, so the message goes
    in doubt and is not sent again; Messenger's echo of it (its metadata naming our message
    id), signed and posted to the webhook, settles it: sent, with the echo's mid, and a later
    part's echo or a second echo changes nothing."""
    psid, conversation_id = open_conversation(client, inbox)
    fake_graph.queue(GraphAnswer.garbage())
    response = reply(client, conversation_id, headers=None, text="lost in transit")
    assert response.status_code == 202, response.text
    message_id = response.json()["id"]

    doubtful = message_when(inbox, message_id, lambda message: message["in_doubt"])
    assert (doubtful["status"], doubtful["provider_message_id"]) == ("sending", None)
    time.sleep(0.5)  # ten times the outbox's backoff here: no second attempt
    assert inbox.message(message_id)["attempts"] == 1
    [request] = fake_graph.send_requests(psid)
    assert request.body["message"]["metadata"] == f"omnichannel:{message_id}"

    mid = new_mid()
    echo = echo_event(psid, mid, "lost in transit", metadata=request.body["message"]["metadata"])
    assert post_webhook(client, webhook(echo)).status_code == 200
    confirmed = inbox.message(message_id)
    assert (confirmed["status"], confirmed["in_doubt"]) == ("sent", False)
    assert confirmed["provider_message_id"] == mid

    again = echo_event(psid, new_mid(), "lost in transit", metadata=f"omnichannel:{message_id}")
    assert post_webhook(client, webhook(again)).status_code == 200
    assert inbox.message(message_id)["provider_message_id"] == mid
    assert len(fake_graph.send_requests(psid)) == 1
    assert [m["direction"] for m in inbox.messages(conversation_id)] == ["inbound", "outbound"]


@pytest.mark.parametrize("to", ["+15551234567", "not-a-psid"])
def test_a_recipient_that_is_not_a_psid_is_refused_before_facebook(client, fake_graph, to):
    """Sending to an address that is not a PSID: 422 invalid_recipient, Facebook not called."""
    before = len(fake_graph.send_requests())
    response = send(client, {"to": to, "text": "x", "metadata": {"message_tag": "HUMAN_AGENT"}})
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "invalid_recipient"
    assert len(fake_graph.send_requests()) == before


def test_repeated_idempotency_key_sends_once(client, inbox, fake_graph):
    """The same request with the same Idempotency-Key: one Send API call, the same message
    (201 once sent, then 200: it is not queued twice)."""
    psid, conversation_id = open_conversation(client, inbox)
    headers = {"Idempotency-Key": "fb-idem-" + psid, **WAIT}
    path = f"/api/conversations/{conversation_id}/messages"
    first = client.post(path, json={"text": "once"}, headers=headers)
    second = client.post(path, json={"text": "once"}, headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert second.json()["status"] == "sent"
    time.sleep(0.3)  # well past the outbox's backoff
    assert len(fake_graph.send_requests(psid)) == 1


# other servers ------------------------------------------------------------------------------


def test_send_with_a_token_facebook_refuses_is_503(wrong_token_server, fake_graph):
    """The fake refusing the configured token (190): 503 naming the variable."""
    psid = unique_psid()
    with wrong_token_server.client() as client:
        response = send(
            client, {"to": psid, "text": "x", "metadata": {"message_tag": "HUMAN_AGENT"}}
        )
    assert response.status_code == 503, response.text
    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in response.json()["message"]
    assert response.json()["stored_message"]["status"] == "failed"


def test_send_to_unreachable_graph_is_retried_by_the_outbox(unreachable_server):
    """Nobody listening at the Graph API URL: the first attempt (the channel's own tries)
    answers 502 provider_unavailable with code unreachable, the message queued with the
    error; the outbox then makes more attempts, the message still queued with it."""
    payload = {"to": unique_psid(), "text": "x", "metadata": {"message_tag": "HUMAN_AGENT"}}
    with unreachable_server.client() as client:
        # a message being retried is answered when the wait is over: long enough for the
        # channel's own tries (1.75 s of backoff) on a loaded machine
        response = client.post(SEND, json=payload, headers={"Prefer": "wait=8"}, timeout=30)
        assert response.status_code == 502, response.text
        body = response.json()
        assert (body["error"], body["code"]) == ("provider_unavailable", "unreachable")
        assert (body["stored_message"]["status"], body["stored_message"]["error_code"]) == (
            "queued",
            "unreachable",
        )
        retried = message_when(
            InboxReader(client, "facebook"), body["message_id"], lambda m: m["attempts"] >= 2
        )
    assert (retried["status"], retried["error_code"]) == ("queued", "unreachable")
    assert "could not be reached" in retried["error_message"]


def test_unconfigured_send_is_503_with_the_reason(unconfigured_server):
    """A send on an unconfigured channel: 503 channel_unavailable naming what is missing, the
    message failed; without waiting, 202 and then the same failure on the message."""
    with unconfigured_server.client() as client:
        response = send(client, {"to": unique_psid(), "text": "x"})
        accepted = send(client, {"to": unique_psid(), "text": "y"}, headers=None)
        assert accepted.status_code == 202, accepted.text
        failed = message_when(InboxReader(client, "facebook"), accepted.json()["id"], settled)
    assert response.status_code == 503, response.text
    body = response.json()
    assert body["error"] == "channel_unavailable"
    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in body["message"]
    assert body["stored_message"]["status"] == "failed"
    assert (failed["status"], failed["error_code"]) == ("failed", "channel_unavailable")
    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in failed["error_message"]
