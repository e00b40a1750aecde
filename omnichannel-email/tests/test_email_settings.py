"""The email channel's settings: what health calls missing or invalid."""

from __future__ import annotations

import asyncio

import pytest
from omnichannel_email.channel import EmailChannel
from omnichannel_email.settings import RECEIVING, EmailSettings, parse_settings

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


class ReadNames(dict[str, str]):
    """An environment that notes the name of every variable read from it."""

    def __init__(self, values: dict[str, str]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def get(self, name: str, default: str | None = None) -> str | None:  # type: ignore[override]
        self.read.add(name)
        return super().get(name, default)


def test_the_settings_hook_declares_every_variable_the_channel_reads():
    """With SMTP and IMAP set up, what the settings read from ``config.settings`` is exactly
    what the ``settings`` hook declares; the passwords and the webhook's secret are its
    secrets; where it connects (the mail servers, their ports and TLS) and the files it
    reads are the environment's only."""
    environ = ReadNames(
        {
            "EMAIL_FROM_ADDRESS": "support@example.com",
            "EMAIL_SMTP_HOST": "smtp.example.com",
            "EMAIL_IMAP_HOST": "imap.example.com",
        }
    )
    parse_settings(Config(environ=environ))
    declared = asyncio.run(EmailChannel().settings())
    assert environ.read == {item.name for item in declared}
    assert {item.name for item in declared if item.secret} == {
        "EMAIL_SMTP_PASSWORD",
        "EMAIL_IMAP_PASSWORD",
        "EMAIL_INBOUND_SECRET",
    }
    assert {item.name for item in declared if not item.storable} == {
        "EMAIL_SMTP_HOST",
        "EMAIL_SMTP_PORT",
        "EMAIL_SMTP_SECURITY",
        "EMAIL_IMAP_HOST",
        "EMAIL_IMAP_PORT",
        "EMAIL_IMAP_SECURITY",
        "EMAIL_TEMPLATES_DIR",
        "EMAIL_TLS_CA_FILE",
    }


def test_a_stored_smtp_login_is_used_and_the_environment_wins():
    """The SMTP login an admin stored is what sending uses (the password kept as stored,
    spaces and all); the environment's host wins over the stored one; a replaced
    password is read at once."""
    config = Config(
        environ={"EMAIL_FROM_ADDRESS": "support@example.com", "EMAIL_SMTP_HOST": "smtp.env.com"}
    )
    stored = {
        "EMAIL_SMTP_HOST": "smtp.stored.com",
        "EMAIL_SMTP_USERNAME": "support",
        "EMAIL_SMTP_PASSWORD": " pass word ",
        "EMAIL_INBOUND_SECRET": SECRET,
    }
    config.stored_settings.replace(stored, 1)
    _, smtp = EmailSettings.from_config(config).require_sending("email")
    assert (smtp.host, smtp.username, smtp.password) == ("smtp.env.com", "support", " pass word ")
    config.stored_settings.replace({**stored, "EMAIL_SMTP_PASSWORD": "new"}, 2)
    assert EmailSettings.from_config(config).require_sending("email")[1].password == "new"
