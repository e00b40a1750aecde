"""``POST /api/channels/facebook/webhook``: one signed body, everything in it.

The signature is checked first (nothing is parsed before); then every event of every entry
is handled: customer messages, postbacks and referrals are stored (once per provider id, even
when a batch repeats one), receipts and echoes become status changes, and other kinds are
counted in the log and acknowledged. Facebook gets ``200 EVENT_RECEIVED`` once all of it is
stored; it retries anything else, and the store keeps one message per provider id.
"""

from __future__ import annotations

from collections import Counter

import attrs
import structlog

from omnichannel_core.channel import (
    InboundMessage,
    WebhookRequest,
    WebhookResponse,
    WebhookResult,
)
from omnichannel_facebook.inbound import CUSTOMER_KINDS, inbound_message
from omnichannel_facebook.profiles import profile_names
from omnichannel_facebook.receipts import RECEIPT_KINDS, receipts
from omnichannel_facebook.settings import FacebookSettings
from omnichannel_facebook.signature import verify_signature
from omnichannel_facebook.webhook_events import MessagingEvent, parse_events

log = structlog.get_logger("omnichannel.facebook")

EVENT_RECEIVED = WebhookResponse(200, b"EVENT_RECEIVED", "text/plain")


def customer_messages(events: list[MessagingEvent]) -> list[InboundMessage]:
    """The messages of the customer events, the first of each provider id only."""
    messages: dict[str, InboundMessage] = {}
    for event in events:
        if event.kind not in CUSTOMER_KINDS:
            continue
        message = inbound_message(event)
        if message is not None and message.provider_message_id not in messages:
            messages[message.provider_message_id] = message
    return list(messages.values())


def named(messages: list[InboundMessage], settings: FacebookSettings) -> list[InboundMessage]:
    """The messages with their senders' names, where the User Profile API gives them."""
    if not messages or not settings.can_call_graph:
        return messages
    names = profile_names(settings).names(message.sender for message in messages)
    return [attrs.evolve(m, sender_name=names.get(m.sender)) for m in messages]


def receive_result(
    request: WebhookRequest, settings: FacebookSettings, channel: str
) -> WebhookResult:
    """What a Messenger webhook carries; WebhookRejected (403) unless signed with the app
    secret, ChannelUnavailable (503) without one, InvalidInput (400) for a body that is not
    a webhook."""
    verify_signature(request, settings.require_app_secret(channel))
    events = parse_events(request.body)
    ignored = Counter(
        event.kind
        for event in events
        if event.kind not in CUSTOMER_KINDS and event.kind not in RECEIPT_KINDS
    )
    if ignored:
        log.info("facebook_events_ignored", kinds=dict(ignored))
    statuses, watermarks = receipts(events)
    return WebhookResult(
        messages=tuple(named(customer_messages(events), settings)),
        statuses=statuses,
        watermarks=watermarks,
        response=EVENT_RECEIVED,
    )
