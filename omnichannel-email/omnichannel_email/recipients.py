"""What a caller may send to: one plain address, in the form mail that comes in is stored
under, so a customer's answer finds the contact the agent wrote to."""

from __future__ import annotations

from email.errors import HeaderParseError
from email.headerregistry import Address

from omnichannel_core.channel import InvalidInput


def normal_address(address: str) -> str:
    """``address`` as contacts are kept (lower case, as :mod:`omnichannel_email.parse`
    stores a sender), or InvalidInput (400) for anything but one addr-spec: a display name,
    several addresses, line breaks, a local part that is not ASCII (not every server takes
    RFC 6531 mail), or a domain without a dot."""
    try:
        parsed = Address(addr_spec=address)
        parsed.domain.encode("idna")
    except (HeaderParseError, ValueError, IndexError, UnicodeError):
        parsed = None
    if (
        parsed is None
        or parsed.addr_spec != address
        or not parsed.username.isascii()
        or not parsed.username
        or "." not in parsed.domain
    ):
        raise InvalidInput(
            "must be one email address like ana@example.com, with ASCII before the @",
            field="to",
        )
    return address.lower()
