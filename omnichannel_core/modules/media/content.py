"""What a media item is: its content type checked against its bytes and the allowed types,
and a filename safe to hand back.

The rule (docs/media.md): the bytes of a picture or a PDF say what they are (their first
bytes, "magic numbers"). A declared picture or PDF whose bytes are another kind of picture
or a PDF is kept as what the bytes are; one whose bytes are neither is kept as
``application/octet-stream``, a file to download, never shown as what it claims to be. An
item declared as nothing (or ``application/octet-stream``) whose bytes are a picture or a
PDF is kept as that. Other types (sound, video, documents, text) are kept as declared: the
server always serves media as a download with ``nosniff``, so a false type renders nothing.
Then the type must be one of ``OMNICHANNEL_MEDIA_TYPES``, else the item is refused.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from urllib.parse import quote

from omnichannel_core.channel import UnsupportedMediaType

OCTET_STREAM = "application/octet-stream"
PDF = "application/pdf"
SNIFF_BYTES = 32
"""How many leading bytes :func:`sniff` reads."""

_SIGNATURES: tuple[tuple[bytes, int, str], ...] = (
    (b"\xff\xd8\xff", 0, "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", 0, "image/png"),
    (b"GIF87a", 0, "image/gif"),
    (b"GIF89a", 0, "image/gif"),
    (b"BM", 0, "image/bmp"),
    (b"II*\x00", 0, "image/tiff"),
    (b"MM\x00*", 0, "image/tiff"),
    (b"%PDF-", 0, PDF),
)
"""(signature, offset, type): the pictures and documents whose bytes say what they are."""
_HEIF_BRANDS = {
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"heim": "image/heic",
    b"heis": "image/heic",
    b"hevc": "image/heic",
    b"hevx": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"avif": "image/avif",
}
"""ISO base media files (``....ftyp<brand>``) that are pictures, by brand."""


def sniff(content: bytes) -> str | None:
    """The type the first bytes of ``content`` announce, if a picture or a PDF; else None."""
    head = content[:SNIFF_BYTES]
    for signature, offset, media_type in _SIGNATURES:
        if head[offset : offset + len(signature)] == signature:
            return media_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        return _HEIF_BRANDS.get(head[8:12])
    return None


def normal_type(declared: str | None) -> str:
    """A declared ``Content-Type`` without its parameters, in lower case; octet-stream for
    none, or for a value that is not ``type/subtype``."""
    value = (declared or "").split(";", 1)[0].strip().lower()
    if not re.match(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$", value):
        return OCTET_STREAM
    return value


def _speaks_for_itself(media_type: str) -> bool:
    """Pictures and PDFs: types whose bytes :func:`sniff` can confirm."""
    return media_type.startswith("image/") or media_type == PDF


def checked_type(declared: str | None, content: bytes, allowed: Iterable[str]) -> str:
    """The type ``content`` is kept as (the module's rule, above);
    UnsupportedMediaType when that type is not ``allowed``."""
    claimed = normal_type(declared)
    found = sniff(content)
    if _speaks_for_itself(claimed) or claimed == OCTET_STREAM:
        kept = found or OCTET_STREAM
    else:
        kept = claimed
    if not is_allowed(kept, allowed):
        shown = kept if kept == claimed else f"{kept} (declared {claimed})"
        raise UnsupportedMediaType(
            f"media of type {shown} is not kept here (OMNICHANNEL_MEDIA_TYPES)",
            content_type=kept,
        )
    return kept


def is_allowed(media_type: str, allowed: Iterable[str]) -> bool:
    """True when ``media_type`` is one of ``allowed`` (``type/*`` names every subtype)."""
    family = media_type.split("/", 1)[0] + "/*"
    return any(item in (media_type, family) for item in allowed)


MAX_FILENAME = 200


def safe_filename(name: str | None) -> str | None:
    """A filename to keep and hand back: its last path part, without control characters,
    quotes or backslashes, at most 200 characters (its extension kept); None when nothing
    is left."""
    if not name:
        return None
    last = re.split(r"[/\\]", name)[-1]
    cleaned = "".join(
        " " if unicodedata.category(char)[0] in "CZ" and char != " " else char
        for char in unicodedata.normalize("NFC", last)
        if char not in "\"'`<>|*?:"
    ).strip(" .")
    if not cleaned:
        return None
    if len(cleaned) > MAX_FILENAME:
        stem, dot, extension = cleaned.rpartition(".")
        if dot and 0 < len(extension) <= 16:
            cleaned = stem[: MAX_FILENAME - len(extension) - 1] + "." + extension
        else:
            cleaned = cleaned[:MAX_FILENAME]
    return cleaned


def content_disposition(filename: str | None, fallback: str) -> str:
    """``attachment`` with the filename for every browser: an ASCII ``filename`` and the
    exact ``filename*`` (RFC 6266)."""
    name = safe_filename(filename) or fallback
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_").replace("%", "_")
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value
