"""Values that cross the plugin boundary (``omnichannel_core.hooktypes``): a watermark is
refused when built wrong, so a channel's mistake shows where it made it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from omnichannel_core.hooktypes import OutboundMessage, StatusWatermark, WebhookResult
from omnichannel_core.models import DeliveryStatus

AT = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_a_watermark_keeps_its_time_in_utc():
    """A watermark's status is converted from its text, and an aware time in another zone
    is kept as the same instant in UTC."""
    eastern = AT.astimezone(timezone(timedelta(hours=-4)))
    watermark = StatusWatermark("psid-1", "read", eastern)
    assert watermark.status is DeliveryStatus.READ
    assert watermark.up_to == AT
    assert watermark.up_to.utcoffset() == timedelta(0)


@pytest.mark.parametrize("status", ["queued", "sending", "sent", "failed", "undelivered"])
def test_a_watermark_is_delivered_or_read(status):
    """A watermark reports receipts: any status but delivered or read is refused."""
    with pytest.raises(ValueError, match="delivered or read"):
        StatusWatermark("psid-1", status, AT)


def test_a_watermark_needs_an_aware_time_and_a_recipient():
    """A naive time (its zone would be a guess), something not a time, and an empty
    recipient are refused."""
    with pytest.raises(ValueError, match="timezone-aware"):
        StatusWatermark("psid-1", DeliveryStatus.DELIVERED, datetime(2024, 5, 1))
    with pytest.raises(TypeError, match="datetime"):
        StatusWatermark("psid-1", DeliveryStatus.DELIVERED, "2024-05-01T00:00:00Z")
    with pytest.raises(ValueError):
        StatusWatermark("", DeliveryStatus.DELIVERED, AT)


def test_webhook_result_watermarks_default_empty_and_become_a_tuple():
    """A result has no watermarks unless given; a list given is kept as a tuple, so the
    frozen result cannot be changed through it."""
    assert WebhookResult().watermarks == ()
    watermark = StatusWatermark("psid-1", DeliveryStatus.READ, AT)
    assert WebhookResult(watermarks=[watermark]).watermarks == (watermark,)


def test_outbound_message_last_inbound_at_defaults_to_none():
    """A channel built before the messaging window, or a test, may leave it out."""
    assert OutboundMessage(id="msg_1", conversation_id="cv_1", to="+1").last_inbound_at is None
