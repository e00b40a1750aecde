"""Reading a mail's headers without tripping on the malformed ones.

The standard library's header registry (``email.policy.default``) decodes RFC 2047
encoded-words and parses addresses, but hostile or broken mail still trips it: a message id
with a space reads as half of itself (``<a b@c>`` as ``<a``), raw 8-bit bytes in a header
come out as U+FFFD, an encoded-word whose bytes are not its charset's decodes to lone
surrogates (which no store can write), and its parser has had crash bugs on odd input. Every
header the channel reads goes through here, starting from the raw value as written, and
nothing read here holds a surrogate (each is U+FFFD).

A message's headers are indexed by name on the first read (:func:`raw_values`), so reading
one is a look-up: the stdlib's ``Message.get`` scans every header on each call, and a
hostile mail of millions of header lines made the channel's twenty-odd reads take tens of
seconds.
The parser (:mod:`omnichannel_email.parse`) bounds the header lines it hands over.

- :func:`header_text`: a header as text (encoded-words decoded, 8-bit bytes read as UTF-8,
  else Windows-1252), unfolded, whitespace collapsed.
- :func:`addresses`: the mailboxes of an address header, falling back to anything shaped
  like an address when the header does not parse.
- :func:`message_ids` and :func:`message_id`: ``<id>`` lists without their brackets, ids
  with a character that is not printable (a control or format character) left out.
- :func:`mail_date`: the ``Date`` header as an aware datetime, or None.
- :func:`core_message_id`: the core's message id inside one of our own Message-IDs.
"""

from __future__ import annotations

import re
import weakref
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import Message
from email.utils import parsedate_to_datetime

import attrs

MAX_ADDRESS_LENGTH = 320
"""64 characters of local part, ``@``, 255 of domain (RFC 5321's limits)."""
MAX_NAME_LENGTH = 256
MAX_PARSED_CHARS = 8192
"""Of a header (of all the headers of one name together, for addresses), the characters
given to the stdlib's parsers, which take about a millisecond an address (a hostile To of
20,000 addresses took a minute; a hundred To headers of 8 KB each, seven seconds): over the
hundred addresses, or the subject, anyone writes."""
MAX_SCANNED_CHARS = 1_000_000
"""Of the address headers of one name the parser could not read, the characters searched
for anything shaped like an address."""

_MSG_ID = re.compile(r"<([^<>]*)>")
_SURROGATES = re.compile("[\ud800-\udfff]")
_WHITESPACE = re.compile(r"\s+")
_ADDRESS_SEPARATORS = re.compile(r"[\s<>()\[\],;:\"]+")
_ADDRESS_SHAPE = re.compile(r"[^@]+@[^@]+\.[^@]+")
_ANGLE_ADDRESS = re.compile(r"<\s*([^<>\s@]+@[^<>\s@]+)\s*>")
"""An address in angle brackets: in a name-addr, the mailbox (RFC 5322 3.4)."""
CORE_MESSAGE_ID = re.compile(r"msg_[0-9a-z]{26}")
"""A core message id: ``msg_`` and 26 characters of lower-case Crockford base32. Checked
exactly, so a colleague's own mail on our domain (Thunderbird makes its Message-IDs on the
sender's domain) is never taken for ours."""


@attrs.frozen
class Mailbox:
    """One address of an address header: ``address`` as written (case kept), ``name``
    decoded ("" when none)."""

    name: str
    address: str

    @property
    def display(self) -> str:
        """``Name <address>`` (the name quoted when it must be, ``"Doe, Jane"``), or the
        bare address: as a mail header writes it, decoded."""
        if not self.name:
            return self.address
        try:
            return str(Address(display_name=self.name, addr_spec=self.address))
        except (ValueError, IndexError, HeaderParseError):  # an address the registry refuses
            return f"{self.name} <{self.address}>"


def readable(value: str) -> str:
    """``value`` with the raw 8-bit bytes the parser kept (as surrogate escapes) read as
    UTF-8, else as Windows-1252 (what an undeclared 8-bit header almost always is)."""
    try:
        data = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:  # already text beyond ASCII: nothing escaped in it
        return value
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def no_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (an undecodable byte the stdlib kept as one) made
    U+FFFD: a store encodes text as UTF-8, which has no surrogates, and would fail on it."""
    return _SURROGATES.sub("\ufffd", text)


_INDEXES: weakref.WeakKeyDictionary[Message, dict[str, list[str]]] = weakref.WeakKeyDictionary()


def raw_values(message: Message, name: str) -> list[str]:
    """The raw values of every ``name`` header of ``message``, in order, as the parser kept
    them. The headers are indexed by lower-cased name on the first call for a message and
    the index kept while the message lives (the channel never changes a parsed mail's
    headers), so each later call is a look-up."""
    index = _INDEXES.get(message)
    if index is None:
        index = {}
        for key, value in message.raw_items():
            index.setdefault(key.lower(), []).append(value)
        _INDEXES[message] = index
    return index.get(name.lower(), [])


def _unfolded(value: str) -> str:
    return readable(value).replace("\r", "").replace("\n", "")


def raw_header(message: Message, name: str) -> str | None:
    """The first ``name`` header exactly as written, unfolded (8-bit bytes decoded as
    :func:`readable` does); None when absent."""
    values = raw_values(message, name)
    return _unfolded(values[0]) if values else None


def header_text(message: Message, name: str) -> str | None:
    """The first ``name`` header as text: encoded-words decoded, whitespace collapsed;
    None when absent."""
    raw = raw_header(message, name)
    if raw is None:
        return None
    raw = raw[:MAX_PARSED_CHARS]
    try:
        # The unstructured reader: encoded-words decoded, no structure to get wrong.
        value = str(policy.default.header_factory("x-text", raw))
    except Exception:  # the stdlib parser has crash bugs on hostile input; keep the raw text
        value = raw
    return no_surrogates(_WHITESPACE.sub(" ", value).strip())


def _plausible(address: str) -> bool:
    local, _, domain = address.rpartition("@")
    return (
        bool(local)
        and "." in domain.strip(".")
        and not any(char.isspace() for char in domain)
        and len(address) <= MAX_ADDRESS_LENGTH
    )


def addresses(message: Message, name: str) -> list[Mailbox]:
    """The mailboxes of the ``name`` headers (every one of them, in order, while their
    :data:`MAX_PARSED_CHARS` last), each an address with a domain; groups are flattened. A
    header that does not parse still gives what in it is shaped like an address.

    A header the parser reads only with a defect and that has addresses in angle brackets
    gives those: ``victim@x.example <attacker@evil.example>`` is parsed as the bare
    address in front, but the mailbox is the one in brackets, the one mail clients show
    and DMARC checks, so a stranger cannot pass for a customer by writing the customer's
    address as a display name."""
    found: list[Mailbox] = []
    parse_budget, scan_budget = MAX_PARSED_CHARS, MAX_SCANNED_CHARS
    for value in raw_values(message, name):
        if parse_budget <= 0:
            break
        raw = _unfolded(value)
        head = raw
        if len(raw) > parse_budget:  # cut between two addresses
            head = raw[: raw.rfind(",", 0, parse_budget) + 1 or parse_budget]
        parse_budget -= max(len(head), 1)
        parsed: list[Mailbox] = []
        try:
            header = policy.default.header_factory("to", head)  # parsed as an address list
            for item in header.addresses:
                if item.username and item.domain:
                    display_name = no_surrogates((item.display_name or "")[:MAX_NAME_LENGTH])
                    parsed.append(Mailbox(display_name, no_surrogates(item.addr_spec)))
            if header.defects:
                parsed = _bracketed(head, parsed) or parsed
        except Exception:  # the stdlib parser has crash bugs on hostile input
            parsed = []
        if not parsed and scan_budget > 0:
            # split into words, then each word tested: linear (a search backtracks)
            words = _ADDRESS_SEPARATORS.split(raw[:scan_budget])
            scan_budget -= len(raw)
            parsed = [Mailbox("", word) for word in words if _ADDRESS_SHAPE.fullmatch(word)]
        found.extend(mailbox for mailbox in parsed if _plausible(mailbox.address))
    return found


def _bracketed(raw: str, parsed: list[Mailbox]) -> list[Mailbox]:
    """The addresses in angle brackets in ``raw``, outside quoted strings and comments
    (``"<victim@x>" attacker@evil`` names no bracketed address), each with the parser's
    name for it, else the name written before it (between the last comma and the ``<``)."""
    bare = _blank_quotes_and_comments(raw)
    names = {mailbox.address: mailbox.name for mailbox in parsed}
    found: list[Mailbox] = []
    for match in _ANGLE_ADDRESS.finditer(bare):
        address = no_surrogates(match.group(1))
        start = bare.rfind(",", 0, match.start()) + 1
        written = raw[start : match.start()].strip().strip('"').strip()
        if "=?" in written:  # encoded-words, decoded as the parser decodes a name
            written = str(policy.default.header_factory("x-name", written))
        name = names.get(address) or no_surrogates(written[:MAX_NAME_LENGTH])
        found.append(Mailbox(name, address))
    return found


def _blank_quotes_and_comments(raw: str) -> str:
    """``raw`` with every character of its quoted strings and comments (RFC 5322: nested,
    with backslash escapes; an unclosed one runs to the end) made a space: the same length,
    so positions in it are positions in ``raw``."""
    out: list[str] = []
    depth, quoted, escaped = 0, False, False
    for char in raw:
        hidden = quoted or depth > 0
        if escaped:
            escaped = False
        elif hidden and char == "\\":
            escaped = True
        elif quoted:
            quoted = char != '"'
        elif char == "(":
            depth += 1
            hidden = True
        elif depth and char == ")":
            depth -= 1
        elif char == '"':
            quoted = hidden = True
        out.append(" " if hidden else char)
    return "".join(out)


def message_ids(value: str | None) -> list[str]:
    """The ``<id>``s of a Message-ID, In-Reply-To or References value, brackets stripped,
    whitespace inside removed (a folding artifact), in order; empty ones and ones with a
    character that is not printable (a control or format character: no mail system writes
    one, and it would only travel into stores and logs) left out. Printable non-ASCII ids
    are kept (RFC 6532 allows them; the customer's next mail cites them as written)."""
    if not value:
        return []
    ids = (_WHITESPACE.sub("", found) for found in _MSG_ID.findall(value))
    return [found for found in ids if found and found.isprintable()]


def message_id(value: str | None) -> str | None:
    """The id of a ``Message-ID`` value: the first ``<id>``, else a bare id written without
    its brackets (one word, printable); None when there is none."""
    ids = message_ids(value)
    if ids:
        return ids[0]
    bare = (value or "").strip()
    one_word = bare.isprintable() and not any(char.isspace() or char in "<>" for char in bare)
    return bare if bare and one_word else None


def mail_date(message: Message) -> datetime | None:
    """The ``Date`` header, timezone-aware; None when absent or unparsable. ``-0000`` (UTC,
    local zone unknown) reads as UTC."""
    value = header_text(message, "date")
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def core_message_id(provider_id: str, domain: str | None) -> str | None:
    """The core's message id when ``provider_id`` is one of our Message-IDs,
    ``{message.id}@{domain}``; else None."""
    if not domain:
        return None
    local, at, host = provider_id.rpartition("@")
    if not at or host.lower() != domain.lower() or not CORE_MESSAGE_ID.fullmatch(local):
        return None
    return local
