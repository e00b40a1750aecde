"""Sending through Messenger's Send API: checks first, the 24-hour window, retries, clear
errors.

``POST /{version}/me/messages`` with ``{"recipient": {"id": PSID}, "messaging_type",
"message"}``. A Messenger message is text or one attachment, so a message with text and
media goes out in parts: the text, then each attachment by URL (its type from the media's
content type, else the URL's extension, else ``file``); quick replies
(``metadata["quick_replies"]``: ``[{"title", "payload"}]``) ride on the last part. The
message is known by its first part's mid. Every part carries ``metadata`` naming our message
id, which Messenger hands back in the echo (see :mod:`omnichannel_facebook.receipts`).

The window: within 24 hours of the customer's last message (``last_inbound_at``) a message
goes out as ``RESPONSE``; outside it only with a message tag (``metadata["message_tag"]``,
``MESSAGE_TAG``), and without one it is refused before Facebook is called
(``outside_messaging_window``, 422).

Graph's errors: rate limits (codes 4, 17, 32, 613, 80000-80014, HTTP 429), outages (5xx,
codes 1, 2, 1200) and failures to connect are retried with exponential backoff, then
SendFailed(retryable) (502); an invalid token (190) is ChannelUnavailable (503) saying to
renew it; anything else is SendFailed with Graph's message and code (422). A request sent
whose answer was lost is SendOutcomeUnknown: sending again could deliver twice.
"""

from __future__ import annotations

import mimetypes
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog

from omnichannel_core.channel import (
    ChannelUnavailable,
    DeliveryStatus,
    Media,
    OmnichannelError,
    OutboundMessage,
    Reach,
    SendFailed,
    SendOutcomeUnknown,
    SendPolicy,
    SendResult,
)
from omnichannel_facebook.graph_client import (
    GraphAnswerLost,
    GraphClient,
    GraphError,
    GraphUnreachable,
    graph_client,
)
from omnichannel_facebook.receipts import echo_metadata
from omnichannel_facebook.settings import FacebookSettings

log = structlog.get_logger("omnichannel.facebook")

MESSAGES_PATH = "me/messages"
WINDOW = timedelta(hours=24)
MESSAGE_TAGS = frozenset(
    {"ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE", "HUMAN_AGENT", "POST_PURCHASE_UPDATE"}
)
MAX_TEXT = 2000
MAX_QUICK_REPLIES = 13
MAX_QUICK_REPLY_TITLE = 20
MAX_QUICK_REPLY_PAYLOAD = 1000
QUICK_REPLY_TYPES = frozenset({"text", "user_phone_number", "user_email"})
SEND_ATTEMPTS = 4
FIRST_RETRY_DELAY_SECONDS = 0.25
"""Waits double from here: 0.25 s, 0.5 s, 1 s before the second, third and fourth try."""
PSID = re.compile(r"^\d{1,64}$")
OUTSIDE_WINDOW_SUBCODE = 2018278
ATTACHMENT_TYPES = ("image", "audio", "video")

Sleep = Callable[[float], None]


def retry_delay(attempt: int) -> float:
    """Seconds to wait before try ``attempt`` (2, 3...): exponential backoff."""
    return FIRST_RETRY_DELAY_SECONDS * 2 ** (attempt - 2)


def _tags() -> str:
    return ", ".join(sorted(MESSAGE_TAGS))


def message_tag(metadata: dict[str, Any]) -> str | None:
    """``metadata["message_tag"]``, upper-cased; SendFailed unless it is a Messenger tag."""
    tag = metadata.get("message_tag")
    if tag is None:
        return None
    if not isinstance(tag, str) or tag.strip().upper() not in MESSAGE_TAGS:
        raise SendFailed(f"message_tag must be one of {_tags()}", code="invalid_message_tag")
    return tag.strip().upper()


def within_window(last_inbound_at: datetime | None, now: datetime) -> bool:
    """True when the customer wrote less than 24 hours before ``now``."""
    return last_inbound_at is not None and now - last_inbound_at < WINDOW


def messaging_type(message: OutboundMessage, now: datetime) -> dict[str, str]:
    """``messaging_type`` (and ``tag``) for the message; SendFailed outside the window
    without a tag."""
    tag = message_tag(message.metadata)
    if within_window(message.last_inbound_at, now):
        return {"messaging_type": "RESPONSE"}
    if tag is not None:
        return {"messaging_type": "MESSAGE_TAG", "tag": tag}
    when = (
        "has never written on Messenger"
        if message.last_inbound_at is None
        else "last wrote more than 24 hours ago"
    )
    raise SendFailed(
        f"outside Messenger's 24-hour messaging window: the customer {when}. Messenger takes"
        " a message outside it only with a message tag: set metadata.message_tag to one of"
        f" {_tags()}",
        code="outside_messaging_window",
    )


def _quick_reply(item: Any, index: int) -> dict[str, str]:
    field = f"quick_replies[{index}]"
    if not isinstance(item, dict):
        raise SendFailed(f"{field} must be an object", code="invalid_quick_replies")
    kind = item.get("content_type", "text")
    if kind not in QUICK_REPLY_TYPES:
        raise SendFailed(
            f"{field}.content_type must be one of {', '.join(sorted(QUICK_REPLY_TYPES))}",
            code="invalid_quick_replies",
        )
    if kind != "text":
        return {"content_type": kind}
    title, payload = item.get("title"), item.get("payload")
    if not isinstance(title, str) or not 0 < len(title) <= MAX_QUICK_REPLY_TITLE:
        raise SendFailed(
            f"{field}.title must be 1 to {MAX_QUICK_REPLY_TITLE} characters",
            code="invalid_quick_replies",
        )
    if not isinstance(payload, str) or not 0 < len(payload) <= MAX_QUICK_REPLY_PAYLOAD:
        raise SendFailed(
            f"{field}.payload must be 1 to {MAX_QUICK_REPLY_PAYLOAD} characters",
            code="invalid_quick_replies",
        )
    reply = {"content_type": "text", "title": title, "payload": payload}
    image_url = item.get("image_url")
    if isinstance(image_url, str) and image_url.startswith(("https://", "http://")):
        reply["image_url"] = image_url
    return reply


def quick_replies(metadata: dict[str, Any]) -> list[dict[str, str]]:
    """``metadata["quick_replies"]`` as the Send API takes them; SendFailed when malformed."""
    items = metadata.get("quick_replies")
    if items is None:
        return []
    if not isinstance(items, list) or not 0 < len(items) <= MAX_QUICK_REPLIES:
        raise SendFailed(
            f"quick_replies must be a list of 1 to {MAX_QUICK_REPLIES} objects",
            code="invalid_quick_replies",
        )
    return [_quick_reply(item, index) for index, item in enumerate(items)]


def attachment_type(media: Media) -> str:
    """``image``, ``audio``, ``video`` or ``file``, from the content type, else the URL."""
    content_type = media.content_type or mimetypes.guess_type(urlsplit(media.url).path)[0] or ""
    major = content_type.split("/", 1)[0].lower()
    return major if major in ATTACHMENT_TYPES else "file"


def message_parts(message: OutboundMessage) -> list[dict[str, Any]]:
    """The ``message`` objects to send, in order; SendFailed when there is nothing to send
    or the text is too long."""
    if message.text is not None and len(message.text) > MAX_TEXT:
        raise SendFailed(f"text is longer than {MAX_TEXT} characters", code="text_too_long")
    parts: list[dict[str, Any]] = []
    if message.text and message.text.strip():
        parts.append({"text": message.text})
    for media in message.media:
        payload = {"url": media.url, "is_reusable": False}
        parts.append({"attachment": {"type": attachment_type(media), "payload": payload}})
    if not parts:
        raise SendFailed("nothing to send: give a text or at least one media item", code="empty")
    replies = quick_replies(message.metadata)
    if replies:
        parts[-1]["quick_replies"] = replies
    for number, part in enumerate(parts, start=1):
        part["metadata"] = echo_metadata(message.id, number)
    return parts


def send_requests(message: OutboundMessage, now: datetime) -> list[dict[str, Any]]:
    """The Send API bodies for ``message``, after every local check."""
    if not PSID.match(message.to):
        raise SendFailed(
            f"recipient {message.to[:80]!r} is not a page-scoped id (digits)",
            code="invalid_recipient",
        )
    kind = messaging_type(message, now)
    return [
        {"recipient": {"id": message.to}, **kind, "message": part}
        for part in message_parts(message)
    ]


def rejected(error: GraphError, channel: str) -> OmnichannelError:
    """Graph's refusal as the core's error: ChannelUnavailable for a bad token, else
    SendFailed carrying Graph's message and code."""
    if error.is_invalid_token:
        return ChannelUnavailable(
            "Facebook refused the page access token (Graph code 190): set a valid"
            f" FACEBOOK_PAGE_ACCESS_TOKEN. Facebook said: {error.message}",
            channel=channel,
            **error.details(),
        )
    message = error.message
    if error.subcode == OUTSIDE_WINDOW_SUBCODE:
        message += (
            " (Messenger takes a message more than 24 hours after the customer's last one only"
            f" with a message tag: set metadata.message_tag to one of {_tags()})"
        )
    return SendFailed(
        message,
        code=str(error.code if error.code is not None else error.status),
        retryable=False,
        **error.details(),
    )


def _send_part(
    client: GraphClient, body: dict[str, Any], channel: str, message_id: str, sleep: Sleep
) -> str:
    """One Send API call, retried while Facebook throttles, says a failure is temporary or
    cannot be reached (nothing was sent); the mid it answers."""
    failure = SendFailed("not sent", retryable=True)
    for attempt in range(1, SEND_ATTEMPTS + 1):
        if attempt > 1:
            sleep(retry_delay(attempt))
        try:
            answer = client.post(MESSAGES_PATH, body)
        except GraphError as error:
            if error.status >= 500 and not (error.is_rate_limit or error.is_transient_code):
                # A 500 that does not say "try again" (a proxy's 502, a timeout's 504) does not
                # say the message was not sent either: sending again could deliver it twice.
                raise SendOutcomeUnknown(
                    f"Facebook answered {error.status} without saying the message was not"
                    " sent; it may have been: do not resend, its echo will settle it",
                    channel=channel,
                ) from None
            if not (error.is_rate_limit or error.is_transient):
                raise rejected(error, channel) from None
            reason = "is rate limiting sends" if error.is_rate_limit else "failed"
            failure = SendFailed(
                f"Facebook {reason}, {SEND_ATTEMPTS} tries: {error.message}",
                code=str(error.code if error.code is not None else error.status),
                retryable=True,
                throttled=error.is_rate_limit,  # the outbox slows the Page's pace
                **error.details(),
            )
        except GraphUnreachable as error:
            failure = SendFailed(
                f"Facebook could not be reached: {error}", code="unreachable", retryable=True
            )
        except GraphAnswerLost as error:
            raise SendOutcomeUnknown(
                f"Facebook's answer was lost ({error}); the message may have been sent: do not"
                " resend, its echo will settle it",
                channel=channel,
            ) from None
        else:
            mid = answer.get("message_id")
            if not isinstance(mid, str) or not mid:
                raise SendOutcomeUnknown(
                    "Facebook's answer named no message_id; the message may have been sent",
                    channel=channel,
                )
            return mid
        log.warning(
            "facebook_send_attempt_failed",
            message_id=message_id,
            attempt=attempt,
            error_code=failure.code,
        )
    raise failure


def _after_parts(error: OmnichannelError, sent: int, total: int, first_mid: str) -> None:
    """Say in ``error`` that the first ``sent`` parts of ``total`` went out."""
    error.message = f"{sent} of {total} parts were sent, then: {error.message}"
    error.args = (error.message,)
    error.details.update(sent_parts=sent, provider_message_id=first_mid)


def deliver(
    message: OutboundMessage,
    settings: FacebookSettings,
    channel: str,
    sleep: Sleep = time.sleep,
    now: datetime | None = None,
) -> SendResult:
    """Send ``message``, part by part; its first part's mid is the provider id."""
    settings.require_graph(channel)
    bodies = send_requests(message, now or datetime.now(UTC))
    client = graph_client(settings)
    mids: list[str] = []
    for body in bodies:
        try:
            mids.append(_send_part(client, body, channel, message.id, sleep))
        except (SendFailed, ChannelUnavailable, SendOutcomeUnknown) as error:
            if mids:
                _after_parts(error, len(mids), len(bodies), mids[0])
                if isinstance(error, SendFailed):
                    error.retryable = False  # another attempt would send the first parts again
            raise
    return SendResult(provider_message_id=mids[0], status=DeliveryStatus.SENT)


SEND_RATE = 100.0
"""Messages per second per Page: under Meta's 300 Send API calls per second for text (a
message with attachments makes one call per part); 10 per second for audio and video."""


def send_policy() -> SendPolicy:
    """Facebook's pace, and an hour for the echo of a message in doubt (its ``metadata``
    names our message id)."""
    # Meta's standard messaging window: free-form messages within 24 hours of the person's
    # last message; the message tags that allow more are not sent by campaigns
    messenger = Reach("messenger", window_hours=24)
    return SendPolicy(rate=SEND_RATE, retry_for=3600, confirm_within=3600, reaches=(messenger,))
