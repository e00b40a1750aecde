"""What the channel asks the Send API, decided in process: the 24-hour window and message
tags, parts and attachment types, quick replies, the checks made before Facebook is called,
the backoff between tries (against the fake Graph API, with the waits recorded), what the
outbox may retry, and the channel's send policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from fake_graph import GRAPH_VERSION, RATE_LIMITED, FakeGraph, GraphAnswer
from messenger_events import APP_SECRET, PAGE_ID, PAGE_TOKEN
from omnichannel_facebook.channel import FacebookChannel
from omnichannel_facebook.graph_client import GraphError
from omnichannel_facebook.outbound import (
    SEND_ATTEMPTS,
    attachment_type,
    deliver,
    message_parts,
    messaging_type,
    rejected,
    retry_delay,
    send_requests,
)
from omnichannel_facebook.settings import parse_settings

from omnichannel_core.channel import (
    ChannelUnavailable,
    Config,
    Media,
    OutboundMessage,
    SendFailed,
    SendPolicy,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def outbound(
    text: str | None = "hi",
    media: tuple[Media, ...] = (),
    metadata: dict | None = None,
    last_inbound_at: datetime | None = NOW - timedelta(hours=1),
    to: str = "1234567890",
) -> OutboundMessage:
    return OutboundMessage(
        id="msg_test",
        conversation_id="cnv_test",
        to=to,
        text=text,
        media=media,
        metadata=metadata or {},
        last_inbound_at=last_inbound_at,
    )


def test_inside_the_window_is_a_response():
    """The customer wrote 23 h 59 min ago: RESPONSE, no tag."""
    message = outbound(last_inbound_at=NOW - timedelta(hours=23, minutes=59))
    assert messaging_type(message, NOW) == {"messaging_type": "RESPONSE"}


def test_outside_the_window_with_a_tag_is_a_tagged_message():
    """24 hours or more since the customer wrote, with a tag: MESSAGE_TAG and the tag
    (upper-cased)."""
    message = outbound(
        metadata={"message_tag": "human_agent"}, last_inbound_at=NOW - timedelta(hours=24)
    )
    assert messaging_type(message, NOW) == {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}


@pytest.mark.parametrize("last_inbound_at", [None, NOW - timedelta(days=3)])
def test_outside_the_window_without_a_tag_is_refused(last_inbound_at):
    """Never wrote, or wrote days ago, and no tag: SendFailed outside_messaging_window, not
    retryable, explaining the tags."""
    with pytest.raises(SendFailed) as raised:
        messaging_type(outbound(last_inbound_at=last_inbound_at), NOW)
    assert raised.value.code == "outside_messaging_window"
    assert not raised.value.retryable
    assert "24-hour" in raised.value.message and "HUMAN_AGENT" in raised.value.message


def test_an_unknown_tag_is_refused_even_inside_the_window():
    """metadata.message_tag not one of Messenger's tags: invalid_message_tag."""
    with pytest.raises(SendFailed) as raised:
        messaging_type(outbound(metadata={"message_tag": "NON_PROMOTIONAL_SUBSCRIPTION"}), NOW)
    assert raised.value.code == "invalid_message_tag"


def test_text_and_media_go_out_as_parts_with_quick_replies_on_the_last():
    """Text first, then one attachment per media item; quick replies on the last part;
    every part's metadata names the message (the first without a part number)."""
    media = (
        Media("https://cdn.example.test/a.jpg"),
        Media("https://cdn.example.test/doc", content_type="application/pdf"),
    )
    replies = [{"title": "Yes", "payload": "YES"}, {"title": "No", "payload": "NO"}]
    parts = message_parts(outbound("Look", media, {"quick_replies": replies}))
    assert parts[0] == {"text": "Look", "metadata": "omnichannel:msg_test"}
    assert parts[1]["attachment"] == {
        "type": "image",
        "payload": {"url": "https://cdn.example.test/a.jpg", "is_reusable": False},
    }
    assert parts[1]["metadata"] == "omnichannel:msg_test#2"
    assert parts[2]["attachment"]["type"] == "file"
    assert parts[2]["quick_replies"] == [
        {"content_type": "text", "title": "Yes", "payload": "YES"},
        {"content_type": "text", "title": "No", "payload": "NO"},
    ]
    assert "quick_replies" not in parts[0] and "quick_replies" not in parts[1]


@pytest.mark.parametrize(
    ("media", "expected"),
    [
        (Media("https://x.test/a", content_type="image/png"), "image"),
        (Media("https://x.test/a", content_type="audio/mpeg"), "audio"),
        (Media("https://x.test/a", content_type="video/mp4"), "video"),
        (Media("https://x.test/a.mp4?sig=1"), "video"),
        (Media("https://x.test/a.mp3"), "audio"),
        (Media("https://x.test/a.pdf"), "file"),
        (Media("https://x.test/download"), "file"),
    ],
)
def test_attachment_type_from_content_type_else_the_url(media, expected):
    """The content type decides; without one, the URL's extension; else file."""
    assert attachment_type(media) == expected


@pytest.mark.parametrize(
    ("replies", "problem"),
    [
        ("yes", "list"),
        ([], "list"),
        ([{"title": "x", "payload": "X"}] * 14, "list"),
        ([{"title": "", "payload": "X"}], "title"),
        ([{"title": "a" * 21, "payload": "X"}], "title"),
        ([{"title": "ok"}], "payload"),
        ([{"content_type": "location"}], "content_type"),
        (["not an object"], "object"),
    ],
)
def test_malformed_quick_replies_are_refused(replies, problem):
    """Quick replies: 1 to 13 objects, each with a title of at most 20 characters and a
    payload; otherwise SendFailed invalid_quick_replies naming the problem."""
    with pytest.raises(SendFailed) as raised:
        message_parts(outbound(metadata={"quick_replies": replies}))
    assert raised.value.code == "invalid_quick_replies"
    assert problem in raised.value.message


def test_email_and_phone_quick_replies_need_no_title():
    """content_type user_email / user_phone_number are sent as just that."""
    replies = [{"content_type": "user_email"}, {"content_type": "user_phone_number"}]
    [part] = message_parts(outbound(metadata={"quick_replies": replies}))
    assert part["quick_replies"] == [
        {"content_type": "user_email"},
        {"content_type": "user_phone_number"},
    ]


def test_local_checks_before_facebook():
    """Text over 2000 characters, nothing to send, a recipient that is not a PSID: each is
    SendFailed with its own code."""
    with pytest.raises(SendFailed, match="2000") as raised:
        message_parts(outbound("x" * 2001))
    assert raised.value.code == "text_too_long"
    with pytest.raises(SendFailed) as raised:
        message_parts(outbound("   "))
    assert raised.value.code == "empty"
    with pytest.raises(SendFailed) as raised:
        send_requests(outbound(to="+15551234567"), NOW)
    assert raised.value.code == "invalid_recipient"


def test_send_requests_carry_recipient_type_and_message():
    """Each body: recipient id, messaging_type (and tag) and one message part."""
    [body] = send_requests(outbound("hello"), NOW)
    assert body == {
        "recipient": {"id": "1234567890"},
        "messaging_type": "RESPONSE",
        "message": {"text": "hello", "metadata": "omnichannel:msg_test"},
    }


def test_graph_refusals_become_clear_errors():
    """190: ChannelUnavailable naming FACEBOOK_PAGE_ACCESS_TOKEN; the window refusal
    (10/2018278) explains message tags; others keep Graph's message and code."""
    token = rejected(GraphError(400, 190, "Session has expired"), "facebook")
    assert isinstance(token, ChannelUnavailable)
    assert "FACEBOOK_PAGE_ACCESS_TOKEN" in token.message and "Session has expired" in token.message
    window = rejected(GraphError(400, 10, "(#10) outside window", subcode=2018278), "facebook")
    assert isinstance(window, SendFailed) and "message_tag" in window.message
    other = rejected(GraphError(400, 100, "(#100) No matching user found", 2018001), "facebook")
    assert isinstance(other, SendFailed)
    assert (other.code, other.retryable) == ("100", False)
    assert other.message == "(#100) No matching user found"
    assert other.details["graph_subcode"] == 2018001


def test_backoff_doubles():
    """0.25 s before the second try, then 0.5 s, then 1 s."""
    assert [retry_delay(attempt) for attempt in range(2, SEND_ATTEMPTS + 1)] == [0.25, 0.5, 1.0]


@pytest.fixture(scope="module")
def graph():
    with FakeGraph(PAGE_TOKEN, APP_SECRET, PAGE_ID) as fake:
        yield fake


def _settings(url: str):
    return parse_settings(
        Config(
            environ={
                "FACEBOOK_PAGE_ACCESS_TOKEN": PAGE_TOKEN,
                "FACEBOOK_APP_SECRET": APP_SECRET,
                "FACEBOOK_VERIFY_TOKEN": "v",
                "FACEBOOK_GRAPH_API_VERSION": GRAPH_VERSION,
                "FACEBOOK_GRAPH_API_BASE_URL": url,
            }
        )
    )


def test_rate_limits_wait_longer_each_time_then_fail_retryable(graph):
    """Four rate-limit answers: four tries with 0.25, 0.5 and 1 s between them, then
    SendFailed retryable with Graph's code."""
    graph.queue(*[GraphAnswer.error(RATE_LIMITED)] * SEND_ATTEMPTS)
    waits: list[float] = []
    with pytest.raises(SendFailed) as raised:
        deliver(outbound(), _settings(graph.url), "facebook", sleep=waits.append, now=NOW)
    assert waits == [0.25, 0.5, 1.0]
    assert raised.value.retryable and raised.value.code == str(RATE_LIMITED)


def test_a_failure_after_the_first_part_says_what_went_out(graph):
    """Text sent, then the attachment refused: the error says 1 of 2 parts went out and
    names the first part's mid."""
    graph.queue(GraphAnswer.accept("m_first"), GraphAnswer.error(100))
    message = outbound("caption", (Media("https://cdn.example.test/a.jpg"),))
    with pytest.raises(SendFailed) as raised:
        deliver(message, _settings(graph.url), "facebook", sleep=lambda _: None, now=NOW)
    assert raised.value.message.startswith("1 of 2 parts were sent")
    assert raised.value.details["provider_message_id"] == "m_first"


def test_a_retryable_failure_after_the_first_part_is_not_retryable(graph):
    """Text sent, then the attachment rate limited on every try: the channel's own tries
    (0.25, 0.5 and 1 s apart), then SendFailed that the outbox must not retry, since another
    attempt would send the text again; it says 1 of 2 parts went out, with Graph's code."""
    graph.queue(GraphAnswer.accept("m_text"), *[GraphAnswer.error(RATE_LIMITED)] * SEND_ATTEMPTS)
    message = outbound("caption", (Media("https://cdn.example.test/a.jpg"),))
    waits: list[float] = []
    with pytest.raises(SendFailed) as raised:
        deliver(message, _settings(graph.url), "facebook", sleep=waits.append, now=NOW)
    assert not raised.value.retryable
    assert raised.value.code == str(RATE_LIMITED)
    assert raised.value.message.startswith("1 of 2 parts were sent")
    assert raised.value.details["sent_parts"] == 1
    assert raised.value.details["provider_message_id"] == "m_text"
    assert waits == [0.25, 0.5, 1.0]


def test_a_retryable_failure_of_the_first_part_stays_retryable(graph):
    """Nothing went out yet (the first part rate limited on every try): the outbox may try
    the whole message again."""
    graph.queue(*[GraphAnswer.error(RATE_LIMITED)] * SEND_ATTEMPTS)
    message = outbound("caption", (Media("https://cdn.example.test/a.jpg"),))
    with pytest.raises(SendFailed) as raised:
        deliver(message, _settings(graph.url), "facebook", sleep=lambda _: None, now=NOW)
    assert raised.value.retryable
    assert "sent_parts" not in raised.value.details


def test_send_policy_is_messengers_pace_and_an_hour_for_the_echo():
    """The channel's send_policy hook: 100 messages a second for the Page (no per-sender
    pace), retryable failures retried for an hour, a message in doubt waits an hour for its
    echo, and it is never sent again blindly (Messenger does not dedupe)."""
    policy = asyncio.run(FacebookChannel().send_policy())
    assert isinstance(policy, SendPolicy)
    assert (policy.rate, policy.sender) == (100, None)
    assert (policy.retry_for, policy.confirm_within) == (3600, 3600)
    assert policy.resend_safe is False
