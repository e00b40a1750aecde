"""The email channel's settings, read from the server's configuration.

Each ``EMAIL_*`` variable comes from ``config.settings``: the environment, or else what an
admin stored through the settings API (:data:`SETTINGS` declares them). Parsed once per
:class:`~omnichannel_core.channel.Config` and version of the stored settings (through
:func:`~omnichannel_core.channel.settings_for`). Passwords and the inbound secret are kept out
of ``repr``, and :attr:`EmailSettings.problems` names variables, never values.

Sending needs ``EMAIL_FROM_ADDRESS`` and ``EMAIL_SMTP_HOST``; receiving needs
``EMAIL_INBOUND_SECRET`` (the raw MIME webhook) or the ``EMAIL_IMAP_*`` settings (polling),
or both. Unconfigured, the channel loads, and its health names what is missing.
"""

from __future__ import annotations

import enum
from email.errors import HeaderParseError
from email.headerregistry import Address
from pathlib import Path

import attrs

from omnichannel_core.channel import (
    ChannelSettings,
    ChannelUnavailable,
    Config,
    Setting,
    settings_for,
)

DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
"""The largest mail taken, source and attachments: what Gmail and Microsoft 365 accept."""
DEFAULT_SUBJECT = "Your message"
DEFAULT_IMAP_FOLDER = "INBOX"
RECEIVING = "a way to receive (EMAIL_INBOUND_SECRET, or EMAIL_IMAP_HOST and its login)"
"""What health names when neither the webhook nor IMAP is set up."""
RECEIVING_ONLY = ("EMAIL_INBOUND_SECRET", "EMAIL_IMAP_")
"""The variables only receiving reads: an invalid one never stops sending."""
DEFAULT_IMAP_POLL_SECONDS = 60
"""How often a server without IMAP IDLE is asked for new mail."""
SETTINGS = (
    Setting(
        "EMAIL_FROM_ADDRESS", "the business's address, the From of every answer", required=True
    ),
    Setting("EMAIL_FROM_NAME", "the display name beside the From address"),
    Setting(
        "EMAIL_SMTP_HOST",
        "the SMTP server answers are submitted to",
        required=True,
        storable=False,
    ),
    Setting(
        "EMAIL_SMTP_PORT",
        "its port; 587 (starttls), 465 (ssl) or 25 (none) unless set",
        storable=False,
    ),
    Setting("EMAIL_SMTP_SECURITY", "starttls (the default), ssl or none", storable=False),
    Setting("EMAIL_SMTP_USERNAME", "the SMTP login (with its password, or neither)"),
    Setting("EMAIL_SMTP_PASSWORD", "the SMTP login's password", secret=True),
    Setting(
        "EMAIL_INBOUND_SECRET",
        "what the raw MIME webhook's caller presents (16 characters at least)",
        secret=True,
    ),
    Setting(
        "EMAIL_IMAP_HOST",
        "the IMAP server mail is taken from; no IMAP unless set",
        storable=False,
    ),
    Setting("EMAIL_IMAP_PORT", "its port; 993 (ssl) or 143 unless set", storable=False),
    Setting("EMAIL_IMAP_SECURITY", "ssl (the default), starttls or none", storable=False),
    Setting("EMAIL_IMAP_USERNAME", "the mailbox's login"),
    Setting("EMAIL_IMAP_PASSWORD", "the mailbox login's password", secret=True),
    Setting("EMAIL_IMAP_FOLDER", f"the folder watched, {DEFAULT_IMAP_FOLDER} unless set"),
    Setting(
        "EMAIL_IMAP_POLL_SECONDS",
        f"how often a server without IDLE is asked for mail, {DEFAULT_IMAP_POLL_SECONDS} s"
        " unless set",
    ),
    Setting("EMAIL_MAX_MESSAGE_BYTES", "the largest mail taken, 25 MB unless set"),
    Setting(
        "EMAIL_MESSAGE_ID_DOMAIN", "the domain of every answer's Message-ID; the From's unless set"
    ),
    Setting(
        "EMAIL_DEFAULT_SUBJECT", f"the subject of a first mail, {DEFAULT_SUBJECT!r} unless set"
    ),
    Setting("EMAIL_TEMPLATES_DIR", "a folder on the server of your own templates", storable=False),
    Setting(
        "EMAIL_TLS_CA_FILE",
        "a CA bundle on the server to trust besides the system's",
        storable=False,
    ),
)
"""Every variable the channel reads, for its ``settings`` hook; where it connects (the mail
servers, their ports and TLS) and the files it reads from the environment only."""


class Security(enum.StrEnum):
    """How a connection to the mail server is protected."""

    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"


SMTP_PORTS = {Security.STARTTLS: 587, Security.SSL: 465, Security.NONE: 25}
IMAP_PORTS = {Security.STARTTLS: 143, Security.SSL: 993, Security.NONE: 143}


@attrs.frozen
class MailServer:
    """An SMTP or IMAP server and the account on it."""

    host: str
    port: int
    security: Security
    username: str | None
    password: str | None = attrs.field(repr=False)


@attrs.frozen
class EmailSettings(ChannelSettings):
    """What the channel needs to send and receive.

    :param from_address: the business's address, the ``From`` of every answer.
    :param message_id_domain: the domain of the ``Message-ID`` of every answer.
    :param smtp: None until ``EMAIL_SMTP_HOST`` is set.
    :param imap: None unless ``EMAIL_IMAP_HOST`` is set (IMAP is optional).
    :param ca_file: a CA bundle to trust besides the system's (a private mail server).
    :param templates_dir: the business's own templates (layout, signature, messages),
        used before the built-in ones.
    """

    from_address: str | None
    from_name: str | None
    message_id_domain: str | None
    smtp: MailServer | None
    inbound_secret: str | None = attrs.field(repr=False)
    imap: MailServer | None
    imap_folder: str
    max_message_bytes: int
    default_subject: str
    ca_file: Path | None
    templates_dir: Path | None
    imap_poll_seconds: int = DEFAULT_IMAP_POLL_SECONDS
    missing: tuple[str, ...] = ()
    invalid: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> EmailSettings:
        """The settings of ``config``, parsed on first use and cached for that object."""
        return settings_for(config, parse_settings)

    @property
    def invalid_for_sending(self) -> tuple[str, ...]:
        """The invalid values that concern sending: all but the receiving side's
        (:data:`RECEIVING_ONLY`), so a wrong IMAP port or a short webhook secret never
        stops the answers."""
        return tuple(problem for problem in self.invalid if not problem.startswith(RECEIVING_ONLY))

    @property
    def can_send(self) -> bool:
        return (
            self.from_address is not None and self.smtp is not None and not self.invalid_for_sending
        )

    def require_sending(self, channel: str) -> tuple[str, MailServer]:
        """The From address and the SMTP server, or ChannelUnavailable naming what is
        missing or invalid for sending."""
        if not self.can_send or self.from_address is None or self.smtp is None:
            missing = [
                name
                for name, value in (
                    ("EMAIL_FROM_ADDRESS", self.from_address),
                    ("EMAIL_SMTP_HOST", self.smtp),
                )
                if value is None
            ]
            problems = "; ".join(
                ([f"missing {', '.join(missing)}"] if missing else [])
                + list(self.invalid_for_sending)
            )
            raise ChannelUnavailable(f"email channel cannot send: {problems}", channel=channel)
        return self.from_address, self.smtp


def _value(config: Config, name: str) -> str | None:
    value = config.settings.get(name, "").strip()
    return value or None


def _port(config: Config, name: str, default: int, invalid: list[str]) -> int:
    raw = _value(config, name)
    if raw is None:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        invalid.append(f"{name} must be a port number from 1 to 65535")
        return default
    return int(raw)


def _security(config: Config, name: str, default: Security, invalid: list[str]) -> Security:
    raw = (_value(config, name) or default.value).lower()
    try:
        return Security(raw)
    except ValueError:
        invalid.append(f"{name} must be starttls, ssl or none")
        return default


def _address(config: Config, name: str, invalid: list[str]) -> str | None:
    """An addr-spec (``support@example.com``), or None (and a sentence) when unusable."""
    raw = _value(config, name)
    if raw is None:
        return None
    try:
        address = Address(addr_spec=raw)
    except (HeaderParseError, ValueError, IndexError):
        address = None
    if address is None or not address.username or "." not in address.domain:
        invalid.append(f"{name} must be an email address like support@example.com")
        return None
    return address.addr_spec


def _server(
    config: Config, prefix: str, ports: dict[Security, int], default: Security, invalid: list[str]
) -> MailServer | None:
    host = _value(config, f"{prefix}_HOST")
    if host is None:
        return None
    security = _security(config, f"{prefix}_SECURITY", default, invalid)
    username = _value(config, f"{prefix}_USERNAME")
    password = config.settings.get(f"{prefix}_PASSWORD") or None  # spaces may be meant
    if (username is None) != (password is None):
        invalid.append(f"{prefix}_USERNAME and {prefix}_PASSWORD are set together or not at all")
    return MailServer(
        host=host,
        port=_port(config, f"{prefix}_PORT", ports[security], invalid),
        security=security,
        username=username,
        password=password,
    )


def _size(config: Config, name: str, default: int, invalid: list[str]) -> int:
    raw = _value(config, name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1024:
        invalid.append(f"{name} must be a whole number of bytes, at least 1024")
        return default
    return int(raw)


def _seconds(config: Config, name: str, default: int, invalid: list[str]) -> int:
    raw = _value(config, name)
    if raw is None:
        return default
    if not raw.isdigit() or not 1 <= int(raw) <= 3600:
        invalid.append(f"{name} must be a whole number of seconds, from 1 to 3600")
        return default
    return int(raw)


def _path(config: Config, name: str, invalid: list[str], directory: bool) -> Path | None:
    raw = _value(config, name)
    if raw is None:
        return None
    path = Path(raw)
    if not (path.is_dir() if directory else path.is_file()):
        invalid.append(f"{name} must name an existing {'folder' if directory else 'file'}")
        return None
    return path


def parse_settings(config: Config) -> EmailSettings:
    """Read the ``EMAIL_*`` variables from ``config`` (docs/channels/email.md lists them
    all, with their defaults)."""
    invalid: list[str] = []
    from_address = _address(config, "EMAIL_FROM_ADDRESS", invalid)
    smtp = _server(config, "EMAIL_SMTP", SMTP_PORTS, Security.STARTTLS, invalid)
    imap = _server(config, "EMAIL_IMAP", IMAP_PORTS, Security.SSL, invalid)
    if imap is not None and imap.username is None:
        invalid.append(
            "EMAIL_IMAP_USERNAME and EMAIL_IMAP_PASSWORD are needed with EMAIL_IMAP_HOST"
        )
    inbound_secret = config.settings.get("EMAIL_INBOUND_SECRET") or None
    if inbound_secret is not None and len(inbound_secret) < 16:
        invalid.append("EMAIL_INBOUND_SECRET must be at least 16 characters")
    domain = _value(config, "EMAIL_MESSAGE_ID_DOMAIN")
    if domain is None and from_address is not None:
        domain = from_address.rpartition("@")[2]

    missing = []
    if _value(config, "EMAIL_FROM_ADDRESS") is None:  # unset or empty; else invalid above
        missing.append("EMAIL_FROM_ADDRESS")
    if smtp is None:
        missing.append("EMAIL_SMTP_HOST")
    if inbound_secret is None and imap is None:
        missing.append(RECEIVING)

    return EmailSettings(
        from_address=from_address,
        from_name=_value(config, "EMAIL_FROM_NAME"),
        message_id_domain=domain,
        smtp=smtp,
        inbound_secret=inbound_secret,
        imap=imap,
        imap_folder=_value(config, "EMAIL_IMAP_FOLDER") or DEFAULT_IMAP_FOLDER,
        max_message_bytes=_size(
            config, "EMAIL_MAX_MESSAGE_BYTES", DEFAULT_MAX_MESSAGE_BYTES, invalid
        ),
        default_subject=_value(config, "EMAIL_DEFAULT_SUBJECT") or DEFAULT_SUBJECT,
        ca_file=_path(config, "EMAIL_TLS_CA_FILE", invalid, directory=False),
        templates_dir=_path(config, "EMAIL_TEMPLATES_DIR", invalid, directory=True),
        imap_poll_seconds=_seconds(
            config, "EMAIL_IMAP_POLL_SECONDS", DEFAULT_IMAP_POLL_SECONDS, invalid
        ),
        missing=tuple(missing),
        invalid=tuple(invalid),
    )
