"""Odd but signed webhook parameters: Twilio signed the message, so it is kept, and consent
keywords count only where Twilio's opt-out handling does (SMS)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from omnichannel_twilio.inbound import inbound_message
from omnichannel_twilio.signature import parse_form

from omnichannel_core.channel import (
    Consent,
)

SMS = {"MessageSid": "SM" + "1" * 32, "From": "+15551230000", "To": "+15550000000"}
WHATSAPP = {**SMS, "From": "whatsapp:+15551230000", "To": "whatsapp:+15550000000"}


def form(**params: str) -> dict[str, list[str]]:
    return parse_form(urlencode(params).encode())


@pytest.mark.parametrize("num_media", ["-1", "x", "²", "9" * 5000, "999", ""])
def test_an_odd_num_media_keeps_the_message_and_the_items_present(num_media):
    """NumMedia that is not a small count (negative, not a number, a superscript digit,
    thousands of digits) neither loses the message nor crashes: the MediaUrl items present
    are kept, at most ten."""
    params = {**SMS, "Body": "pics", "NumMedia": num_media}
    params |= {f"MediaUrl{i}": f"https://api.twilio.com/m/{i}" for i in range(12)}
    message = inbound_message(form(**params))
    assert message.text == "pics"
    assert len(message.media) <= 10


@pytest.mark.parametrize("segments", ["²", "9" * 5000, "x"])
def test_an_odd_num_segments_is_left_out(segments):
    """NumSegments that is not a small count is not stored, and the message is kept."""
    message = inbound_message(form(**SMS, Body="hi", NumSegments=segments))
    assert "num_segments" not in message.metadata["twilio"]


@pytest.mark.parametrize("word", ["Cancel", "STOP", "end", "quit", "START"])
def test_whatsapp_words_never_change_consent(word):
    """On WhatsApp "Cancel" is a word in a chat, not Twilio's SMS opt-out keyword."""
    assert inbound_message(form(**WHATSAPP, Body=word)).consent is None


@pytest.mark.parametrize(
    ("word", "consent"),
    [("REVOKE", Consent.OPT_OUT), ("optout", Consent.OPT_OUT), (" Stop ", Consent.OPT_OUT)],
)
def test_sms_opt_out_keywords_include_twilios_newer_ones(word, consent):
    """Twilio's default SMS opt-out list includes REVOKE and OPTOUT."""
    assert inbound_message(form(**SMS, Body=word)).consent is consent
