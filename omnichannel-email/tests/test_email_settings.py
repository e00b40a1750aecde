"""The email channel's settings: what health calls missing or invalid."""

from __future__ import annotations

import pytest
from omnichannel_email.settings import RECEIVING, parse_settings

from omnichannel_core.channel import ChannelUnavailable, Config

SECRET = "s" * 20


def test_an_empty_from_address_is_missing():
    """A variable set to nothing (a container template's ``EMAIL_FROM_ADDRESS=``) is
    missing, not silently unusable: health names it, and sending says why."""
    settings = parse_settings(
        Config(
            environ={
                "EMAIL_FROM_ADDRESS": "",
                "EMAIL_SMTP_HOST": "smtp.example.com",
                "EMAIL_INBOUND_SECRET": SECRET,
            }
        )
    )
    assert settings.missing == ("EMAIL_FROM_ADDRESS",)
    assert settings.can_send is False
    assert "EMAIL_FROM_ADDRESS" in settings.problems


def test_an_address_that_is_no_address_is_invalid():
    """A From address that does not parse is named as invalid, not as missing."""
    settings = parse_settings(
        Config(
            environ={
                "EMAIL_FROM_ADDRESS": "support",
                "EMAIL_SMTP_HOST": "smtp.example.com",
                "EMAIL_INBOUND_SECRET": SECRET,
            }
        )
    )
    assert settings.missing == ()
    assert settings.invalid == (
        "EMAIL_FROM_ADDRESS must be an email address like support@example.com",
    )


def test_with_neither_webhook_nor_imap_there_is_no_way_to_receive():
    """Health says the channel cannot receive until one of the two ways is set up."""
    settings = parse_settings(
        Config(environ={"EMAIL_FROM_ADDRESS": "a@example.com", "EMAIL_SMTP_HOST": "smtp.x.com"})
    )
    assert settings.missing == (RECEIVING,)


def test_a_receiving_setting_that_is_invalid_never_stops_sending():
    """A short webhook secret or a wrong IMAP port is reported (the webhook is off, the
    poller reads the default), but answers still go out; an invalid value sending reads (a
    port, or EMAIL_MAX_MESSAGE_BYTES, which caps attachments too) stops them, naming it."""
    sending = {"EMAIL_FROM_ADDRESS": "support@example.com", "EMAIL_SMTP_HOST": "smtp.x.com"}
    settings = parse_settings(
        Config(
            environ={
                **sending,
                "EMAIL_INBOUND_SECRET": "short",
                "EMAIL_IMAP_HOST": "imap.x.com",
                "EMAIL_IMAP_PORT": "99999",
                "EMAIL_MAX_MESSAGE_BYTES": "100",
            }
        )
    )
    assert len(settings.invalid) == 4  # the IMAP login is missing too
    assert settings.can_send is False  # EMAIL_MAX_MESSAGE_BYTES caps attachments too
    settings = parse_settings(
        Config(
            environ={
                **sending,
                "EMAIL_INBOUND_SECRET": "short",
                "EMAIL_IMAP_HOST": "imap.x.com",
                "EMAIL_IMAP_PORT": "99999",
            }
        )
    )
    assert settings.can_send is True
    assert settings.require_sending("email") == ("support@example.com", settings.smtp)
    broken = parse_settings(Config(environ={**sending, "EMAIL_SMTP_PORT": "0"}))
    assert broken.can_send is False
    with pytest.raises(ChannelUnavailable, match="EMAIL_SMTP_PORT must be a port number"):
        broken.require_sending("email")
