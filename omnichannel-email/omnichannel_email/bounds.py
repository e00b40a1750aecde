"""Bounds on a raw mail, measured before the standard library parses it.

The stdlib's parser takes about two milliseconds a MIME part and
over a microsecond a header line, and the reads after it more, so what a hostile mail could
make it do is measured first, on the bytes (linear scans, no parser); a mail over a bound is
*kept unread*: stored from its headers alone (no text, no attachments but the original,
``parts_left_out`` at least 1), where reading it would hold a worker for seconds to minutes
(a 16 MB mail of tiny header lines took 10 to 20 s, 25 MB up to 80 s):

- more than :data:`MAX_PARTS` lines starting ``--`` (the parts' delimiters);
- more than :data:`MAX_LINES` lines, shorter than :data:`SHORT_LINE` bytes on average: the
  parser takes a fifth of a microsecond a line however short (25 MB of empty lines held it
  seven seconds);
- a header block of more than :data:`MAX_HEADER_LINES` lines or :data:`MAX_HEADER_BYTES`
  bytes: no mail anyone writes has one (a long Received trail is a few hundred lines). Then
  only the headers the channel reads (:data:`HEADERS_READ`, wherever they are in the block,
  as many as fit the same bounds) are parsed; ``headers_left_out`` counts the lines not
  kept;
- more than :data:`MAX_PART_HEADER_LINES` header lines in the body together: the header
  blocks of its parts and attached mails (lines shaped like header lines, after a delimiter
  or a blank line, as the parser reads them).

Line ends are counted as the parser splits lines: CRLF, LF, or a lone CR.
"""

from __future__ import annotations

import re
from typing import BinaryIO

from omnichannel_core.channel import InvalidInput
from omnichannel_email.automated import HEADERS_READ as AUTOMATED_HEADERS

MAX_PARTS = 500
"""MIME parts read: the stdlib's parser takes about two milliseconds a part, so a hostile
mail of 100,000 tiny parts would hold a worker for minutes. A mail with more delimiter
lines than this is kept (its headers, and its source as the original) unread."""
MAX_LINES = 1_000_000
"""Lines read of a mail of short lines. Base64 and quoted-printable lines are 78 bytes (25 MB
of attachments is 340,000 lines), so only a mail over :data:`SHORT_LINE` bytes a line on
average is read whatever its number of lines."""
SHORT_LINE = 40
MAX_HEADER_LINES = 5_000
"""Lines of a mail's header block read (see the module's docstring)."""
MAX_HEADER_BYTES = 1024 * 1024
"""Bytes of a mail's header block read."""
MAX_PART_HEADER_LINES = 100_000
"""Header lines of the parts and attached mails read, together: a tenth of a second of the
parser's time. :data:`MAX_PARTS` parts have a few thousand, so a body of more is hostile, or
a text of a hundred thousand lines shaped like headers after blank lines (a log pasted as
is), whose mail is then kept unread."""
HEADERS_READ = (
    "from",
    "sender",
    "reply-to",
    "return-path",
    "x-original-from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    *AUTOMATED_HEADERS,
)
"""Every header the channel reads of a mail kept unread."""
_LINE_END = rb"(?:\r\n|\r|\n)"
_HEADER_LINE = rb"(?:From |[!-9;-~]*:|[ \t])[^\r\n]*"
"""A line the stdlib's parser takes for a header line (its ``headerRE``): a header, a
continuation, or an mbox ``From`` line."""
_HEADER_RUN = re.compile(b"(?:%s%s){0,%d}" % (_HEADER_LINE, _LINE_END, MAX_HEADER_LINES + 1))
"""At most MAX_HEADER_LINES + 1 header lines: the header block, read a run at a time."""
_PART_HEADERS = re.compile(
    b"%s(?:--[^\r\n]*)?%s(%s(?:%s%s){0,%d})"
    % (_LINE_END, _LINE_END, _HEADER_LINE, _LINE_END, _HEADER_LINE, MAX_PART_HEADER_LINES)
)
"""The header lines after a delimiter line or a blank line (where the parser starts the
header block of a part or of an attached mail), the last one's line end left for the next
search. Led by a line end, so the search skips ahead quickly."""


def _alternatives(names: list[bytes]) -> bytes:
    """A pattern matching any of ``names``, as a tree of their common prefixes: the regex
    engine tries the alternatives of a flat list one by one at every candidate, a tree
    one character at a time."""
    if b"" in names:
        rest = [name for name in names if name]
        return b"(?:%s)?" % _alternatives(rest) if rest else b""
    by_first: dict[bytes, list[bytes]] = {}
    for name in names:
        by_first.setdefault(name[:1], []).append(name[1:])
    branches = [re.escape(first) + _alternatives(rest) for first, rest in by_first.items()]
    return branches[0] if len(branches) == 1 else b"(?:%s)" % b"|".join(branches)


_HEADER_READ = re.compile(b"[\\r\\n]%s:" % _alternatives([name.encode() for name in HEADERS_READ]))
"""One of :data:`HEADERS_READ` at the start of a line (in a lower-cased header block)."""
_FIELD = re.compile(b"[^\\r\\n]*(?:%s[ \\t][^\\r\\n]*){0,%d}" % (_LINE_END, MAX_HEADER_LINES))
"""A header field from its name to its last continuation line."""


def read_mail(source: BinaryIO | bytes, limit: int) -> bytes:
    """The bytes of a mail, refused (:class:`InvalidInput`) when over ``limit`` or empty."""
    raw = bytes(source) if isinstance(source, bytes | bytearray) else source.read(limit + 1)
    if len(raw) > limit:
        raise InvalidInput(
            f"the mail is larger than {limit} bytes (EMAIL_MAX_MESSAGE_BYTES)", limit=limit
        )
    if not raw.strip():
        raise InvalidInput("the mail is empty")
    return raw


def delimiter_lines(raw: bytes) -> int:
    """How many lines start ``--``: every MIME part starts on one."""
    return raw.count(b"\n--") + raw.count(b"\r--")  # a lone CR ends a line too


def has_too_many_parts(raw: bytes) -> bool:
    """More lines starting ``--`` than :data:`MAX_PARTS`: this bounds the parts before the
    parser spends its time on them."""
    return delimiter_lines(raw) > MAX_PARTS


def has_too_many_lines(raw: bytes) -> bool:
    """More than :data:`MAX_LINES` lines, of :data:`SHORT_LINE` bytes or less on average."""
    lines = _lines(raw)
    return lines > MAX_LINES and len(raw) <= lines * SHORT_LINE


def _lines(raw: bytes, start: int = 0, end: int | None = None) -> int:
    """The line ends in ``raw[start:end]``: CRLF, LF or a lone CR each one."""
    end = len(raw) if end is None else end
    crlf = raw.count(b"\r\n", start, end)
    return raw.count(b"\n", start, end) + raw.count(b"\r", start, end) - crlf


def header_block(raw: bytes) -> tuple[int, bool]:
    """Where the mail's header block ends (as the parser reads it: at its first line that
    is no header line), and whether it is over :data:`MAX_HEADER_LINES` lines or
    :data:`MAX_HEADER_BYTES` bytes; when it is, the end is where its blank line is (found
    without reading its lines)."""
    match = _HEADER_RUN.match(raw)
    end = match.end() if match else 0
    if end <= MAX_HEADER_BYTES and _lines(raw, 0, end) <= MAX_HEADER_LINES:
        return end, False
    ends = (raw.find(blank) for blank in (b"\n\n", b"\n\r", b"\r\r"))  # a line end, then
    return min((found + 1 for found in ends if found >= 0), default=len(raw)), True  # one more


def has_too_many_part_headers(raw: bytes, body_start: int) -> bool:
    """More than :data:`MAX_PART_HEADER_LINES` header lines after delimiter or blank lines
    of the body (which starts at ``body_start``, where the mail's header block ends)."""
    total = 0
    for match in _PART_HEADERS.finditer(raw, max(body_start - 1, 0)):
        total += _lines(raw, match.start(1), match.end(1)) + 1
        if total > MAX_PART_HEADER_LINES:
            return True
    return False


def headers_read(block: bytes) -> tuple[bytes, int]:
    """Of a header block too long to read, :data:`HEADERS_READ` only (in their order, as
    many as fit :data:`MAX_HEADER_LINES` and :data:`MAX_HEADER_BYTES`, less any one field
    over half of either), as a header block to parse; and how many lines of ``block`` were
    left out. Found by a search for their names (a tenth of a second in 25 MB), not by
    reading the lines one by one."""
    lowered = b"\n" + block.lower()  # each name after a line end, the first one too
    kept: list[bytes] = []
    lines = size = 0
    for name in _HEADER_READ.finditer(lowered):
        match = _FIELD.match(block, name.start())  # ``lowered`` is one byte ahead
        assert match is not None  # it matches an empty field too
        field = match.group()
        field_lines = _lines(field) + 1
        if field_lines > MAX_HEADER_LINES // 2 or len(field) > MAX_HEADER_BYTES // 2:
            continue  # one huge field: left out, the others still read (few can be this big)
        if lines + field_lines > MAX_HEADER_LINES or size + len(field) > MAX_HEADER_BYTES:
            break
        kept.append(field)
        lines, size = lines + field_lines, size + len(field)
    return b"\n".join(kept) + b"\n\n", max(_lines(block) - lines, 1)
