"""A parsed mail's MIME parts, sorted into the parts that make its body text and its
attachments (inline images with their ``Content-ID``), with the limits on what is read.

Of ``multipart/alternative`` the richest body that is text is read (plain text before
HTML); of ``multipart/related`` the root is the body and the rest are inline; signature
parts (``.p7s``, ``.asc`` of signed mail) and empty parts are left out; file names lose any
folder and control character.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from email import policy
from email.message import Message

import attrs

from omnichannel_core.channel import Attachment, MediaRole
from omnichannel_email.charsets import part_text
from omnichannel_email.headers import message_id, no_surrogates, raw_header, readable

MAX_ATTACHMENTS = 100
MAX_DEPTH = 30
"""MIME nesting followed; deeper parts are left out (they are in the original)."""
MAX_FILENAME = 255
SIGNATURE_TYPES = frozenset(
    {"application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature"}
)
BODY_TYPES = frozenset({"text/plain", "text/html"})
TYPE_ALIASES = {"application/ics": "text/calendar"}
"""Types some senders give a file that has a standard one (the media store takes these)."""
DEFAULT_NAMES = {
    "text/calendar": "invite.ics",
    "application/ics": "invite.ics",
    "message/rfc822": "message.eml",
    "message/delivery-status": "delivery-status.txt",
    "text/rfc822-headers": "headers.txt",
}
_UNSAFE_FILENAME = re.compile(r"[\x00-\x1f\x7f]")


def _children(part: Message) -> list[Message]:
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [child for child in payload if isinstance(child, Message)]


def _safe_filename(name: str) -> str | None:
    """A file name without any folder or control character, at most MAX_FILENAME long
    (its extension kept); None when nothing is left."""
    name = _UNSAFE_FILENAME.sub("", name.replace("\\", "/").rpartition("/")[2]).strip()
    if name in ("", ".", ".."):
        return None
    if len(name) > MAX_FILENAME:
        _, dot, extension = name.rpartition(".")
        keep = extension if dot and len(extension) <= 16 else ""
        name = name[: MAX_FILENAME - len(keep) - 1] + ("." + keep if keep else "")
    return name


@attrs.frozen
class _Facts:
    """What the walk needs of a part, read once: the stdlib's header registry parses a
    header again on every read, and that is most of the time a mail takes."""

    content_type: str
    disposition: str | None
    filename: str | None
    content_id: str | None

    @property
    def maintype(self) -> str:
        return self.content_type.partition("/")[0]

    @property
    def subtype(self) -> str:
        return self.content_type.partition("/")[2]


def _facts_of(part: Message) -> _Facts:
    try:
        disposition = part.get_content_disposition()
    except Exception:  # a Content-Disposition the parser chokes on
        disposition = None
    try:
        name = part.get_filename()
    except Exception:  # a parameter the parser chokes on
        name = None
    filename = None
    if name:
        name = readable(str(name))
        if "=?" in name:  # an encoded-word in a parameter, as Gmail and Outlook write
            name = no_surrogates(str(policy.default.header_factory("x-name", name)))
        filename = _safe_filename(name)
    return _Facts(
        content_type=part.get_content_type(),
        disposition=disposition,
        filename=filename,
        content_id=message_id(raw_header(part, "content-id")),
    )


class PartWalk:
    """A mail's leaves sorted into the parts that make its body text (``bodies``) and its
    ``attachments``; ``skipped`` counts what the limits left out."""

    def __init__(self) -> None:
        self.bodies: list[Message] = []
        self.attachments: list[Attachment] = []
        self.skipped = 0
        self._facts: dict[int, _Facts] = {}
        self._kinds: dict[int, str | None] = {}

    def facts(self, part: Message) -> _Facts:
        found = self._facts.get(id(part))
        if found is None:
            found = self._facts[id(part)] = _facts_of(part)
        return found

    def is_body_text(self, part: Message) -> bool:
        """A text/plain or text/html part shown as the message, not attached as a file."""
        facts = self.facts(part)
        return (
            facts.content_type in BODY_TYPES
            and facts.disposition != "attachment"
            and facts.filename is None
        )

    def body_kind(self, part: Message, depth: int = 0) -> str | None:
        """``"plain"`` or ``"html"``: what the body under ``part`` is written in; None when
        it has no body text (or only a blank plain text)."""
        if id(part) not in self._kinds:
            self._kinds[id(part)] = self._body_kind(part, depth)
        return self._kinds[id(part)]

    def _body_kind(self, part: Message, depth: int) -> str | None:
        if depth > MAX_DEPTH:
            return None
        facts = self.facts(part)
        if facts.maintype == "multipart":
            children = _children(part)
            if facts.subtype == "related":
                root = self.related_root(part, children)
                return self.body_kind(root, depth + 1) if root is not None else None
            kinds = [self.body_kind(child, depth + 1) for child in children]
            if facts.subtype == "alternative" and "plain" in kinds:
                return "plain"
            return next((kind for kind in kinds if kind), None)
        if not self.is_body_text(part):
            return None
        if facts.content_type == "text/html":
            return "html"
        return "plain" if part_text(part).strip() else None

    def chosen_alternative(self, children: list[Message]) -> Message | None:
        """Of an alternative's renderings, the one the text comes from: plain text when
        there is a non-blank one, else HTML (the last of each: the sender's preferred)."""
        for wanted in ("plain", "html"):
            for child in reversed(children):
                if self.body_kind(child) == wanted:
                    return child
        return None

    def related_root(self, part: Message, children: list[Message]) -> Message | None:
        """A multipart/related's root: the part its ``start`` names, else the first."""
        start = message_id(str(part.get_param("start", "") or ""))
        if start:
            for child in children:
                if self.facts(child).content_id == start:
                    return child
        return children[0] if children else None

    def attachment(self, part: Message, related: bool) -> Attachment | None:
        content = _content_bytes(part)
        if not content:
            return None
        facts = self.facts(part)
        inline = facts.content_id is not None and facts.disposition != "attachment"
        inline = inline and (related or facts.disposition == "inline" or facts.maintype == "image")
        filename = facts.filename or DEFAULT_NAMES.get(facts.content_type)
        if filename is None and inline:
            filename = "inline-image" + (mimetypes.guess_extension(facts.content_type) or "")
        return Attachment(
            content=content,
            content_type=TYPE_ALIASES.get(facts.content_type, facts.content_type),
            filename=filename,
            role=MediaRole.INLINE if inline else MediaRole.ATTACHMENT,
            content_id=facts.content_id if inline else None,
        )

    def collect(self, part: Message, body: bool, related: bool, depth: int = 0) -> None:
        """Sort the leaves under ``part``: body text (where ``body``: not the other
        rendering of an alternative) or attachment (``related``: inside a
        multipart/related, not its root)."""
        if depth > MAX_DEPTH:
            self.skipped += 1
            return
        facts = self.facts(part)
        if facts.maintype == "multipart":
            self._collect_children(part, facts.subtype, body, related, depth)
            return
        if self.is_body_text(part):
            if body:
                self.bodies.append(part)
            return
        if facts.content_type in SIGNATURE_TYPES:
            return
        if len(self.attachments) >= MAX_ATTACHMENTS:
            self.skipped += 1
            return
        attachment = self.attachment(part, related)
        if attachment is not None:
            self.attachments.append(attachment)

    def _collect_children(
        self, part: Message, subtype: str, body: bool, related: bool, depth: int
    ) -> None:
        children = _children(part)
        if not children:  # a multipart whose boundary is missing: its text is the body
            if body and isinstance(part.get_payload(), str):
                self.bodies.append(part)
            return
        chosen = self.chosen_alternative(children) if subtype == "alternative" else None
        root = self.related_root(part, children) if subtype == "related" else None
        for child in children:
            if subtype == "alternative":
                self.collect(child, body and child is chosen, related, depth + 1)
            elif subtype == "related":
                self.collect(child, body and child is root, child is not root, depth + 1)
            else:
                self.collect(child, body, False, depth + 1)


def _content_bytes(part: Message) -> bytes:
    """A leaf's content, transfer encoding decoded; a ``message/*`` part's enclosed mail."""
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and len(payload) == 1 else None
        try:
            if isinstance(inner, Message):
                return inner.as_bytes(policy=policy.compat32)
            if isinstance(payload, list):  # delivery-status: its field blocks
                return b"".join(
                    block.as_bytes(policy=policy.compat32)
                    for block in payload
                    if isinstance(block, Message)
                )
        except Exception:  # a header the generator chokes on: the part as text instead
            return part_text(part).encode()
    try:
        data = part.get_payload(decode=True)
    except Exception:  # a broken transfer encoding: the bytes as they came
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("ascii", "surrogateescape") if isinstance(raw, str) else b""


# the message ----------------------------------------------------------------------------


def distinct(attachments: list[Attachment]) -> list[Attachment]:
    """``attachments`` less repeats of the same file: Google's invitations carry the event
    twice (``text/calendar`` in the body's alternatives and ``invite.ics``). Text is compared
    with its line ends made alike, since transfer encodings differ in them."""
    seen: set[bytes] = set()
    kept = []
    for attachment in attachments:
        content = attachment.content
        if attachment.content_type.startswith("text/"):
            content = content.replace(b"\r\n", b"\n")
        key = hashlib.sha256(content).digest()
        if attachment.role is MediaRole.ATTACHMENT and key in seen:
            continue
        seen.add(key)
        kept.append(attachment)
    return kept
