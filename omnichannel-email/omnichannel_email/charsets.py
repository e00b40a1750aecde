"""Mail body text as str: charsets, transfer encodings and ``format=flowed``.

A body is decoded by its declared charset; ``us-ascii`` and ``iso-8859-1`` are read as
Windows-1252, as browsers do (Outlook declares them and writes its curly quotes); an unknown
or missing charset is tried as UTF-8, then Windows-1252. Undecodable bytes become U+FFFD;
nothing here raises on bad input.
"""

from __future__ import annotations

import codecs
from email.message import Message

_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "iso-8859-8-i": "iso-8859-8",
    "x-sjis": "cp932",
    "shift_jis": "cp932",
}
"""Charsets read as their common superset: what the sender's software really wrote."""
_UNDECLARED = frozenset({"", "unknown-8bit", "x-unknown", "unknown", "default", "8bit"})


# charsets -------------------------------------------------------------------------------


def decode_text(data: bytes, charset: str | None) -> str:
    """``data`` as text in ``charset``. A missing, unknown or ASCII charset is tried as
    UTF-8 first (8-bit mail often omits or understates its charset), then Windows-1252.
    Never raises: bytes that do not decode become U+FFFD."""
    name = (charset or "").strip().strip('"').lower()
    if name in _UNDECLARED or name in ("us-ascii", "ascii"):
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
    name = _CHARSET_ALIASES.get(name, name)
    try:
        codecs.lookup(name)
    except (LookupError, ValueError):  # ValueError: a NUL or a raw 8-bit byte in the name
        return decode_text(data, None)
    try:
        return data.decode(name, errors="replace")
    except (UnicodeError, LookupError, ValueError):  # a codec that fails on its own
        return data.decode("utf-8", errors="replace")


def part_text(part: Message) -> str:
    """A text part's content, transfer encoding (base64, quoted-printable, 8-bit) and
    charset decoded."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: take the bytes as they are
        data = None
    if not isinstance(data, bytes):
        raw = part.get_payload()
        data = raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""
    try:
        charset = part.get_content_charset()
    except Exception:  # a Content-Type the parser chokes on
        charset = None
    return decode_text(data, charset)


def unflow(text: str, delsp: bool) -> str:
    """``format=flowed`` text (RFC 3676, Apple Mail and Thunderbird) with its soft line
    breaks joined: a line ending in a space continues on the next of the same quote depth.
    """
    out: list[str] = []
    pending: str | None = None
    pending_depth = 0

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            out.append((">" * pending_depth + " " if pending_depth else "") + pending)
            pending = None

    for line in text.split("\n"):
        depth = len(line) - len(line.lstrip(">"))
        content = line[depth:]
        if content.startswith(" "):  # space-stuffing
            content = content[1:]
        flowed = content.endswith(" ") and content != "-- "
        if flowed and delsp:
            content = content[:-1]
        if pending is not None and depth != pending_depth:
            flush()
        if pending is None:
            pending, pending_depth = content, depth
        else:
            pending += content
        if not flowed:
            flush()
    flush()
    return "\n".join(out)
