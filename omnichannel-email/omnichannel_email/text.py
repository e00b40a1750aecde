"""The new text of a mail: what the customer wrote this time, as plain text.

A reply carries the whole thread below it, and a signature; the agent needs neither (the
thread is the conversation, and the full original stays downloadable). So the body parts
are decoded (:mod:`omnichannel_email.charsets`), HTML becomes safe text when there is no
plain-text alternative (:mod:`omnichannel_email.html_text`), and quoted history and
signatures are dropped (:mod:`omnichannel_email.quotes`). **Forwards are kept whole**: what
a customer forwards is the content they mean to send.

The text is capped at :data:`MAX_TEXT_CHARS` characters, and what is read of the body parts
at :data:`MAX_INPUT_CHARS` (plain) and :data:`MAX_HTML_CHARS` (HTML) in all (the full mail is
kept as its original).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from email.message import Message

import attrs

from omnichannel_email.charsets import part_text, unflow
from omnichannel_email.html_text import html_to_text
from omnichannel_email.quotes import (
    is_forward,
    strip_quotes,
    strip_signature,
    without_mobile_signature,
)

MAX_INPUT_CHARS = 1_000_000
"""Of the plain-text body parts of a mail, together, the characters read: a text that long is
not a customer's message, and the quote stripping below is linear in it (about a second a
million). Together: a mail of 500 parts of 44 KB took five seconds when each part had its
own limit."""
MAX_HTML_CHARS = 300_000
"""Of the HTML body parts of a mail, together, the characters read: three times what Gmail
shows before it clips a mail, and the stdlib's HTML parser takes up to seven seconds a
million (a mail of 100 HTML parts of 250 KB took 15 s when each had its own limit)."""
MAX_TEXT_CHARS = 65_536
"""The longest stored text, as for a message an agent sends."""


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b\ufeff]")
_MANY_BLANK_LINES = re.compile(r"\n{3,}")


def tidy(text: str) -> str:
    """Line ends as ``\\n``, control characters and zero-width spaces dropped, no-break
    spaces as spaces, trailing spaces and runs of blank lines removed."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _CONTROL.sub("", text).replace("\xa0", " ").replace("\u202f", " ")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return _MANY_BLANK_LINES.sub("\n\n", text).strip("\n")


@attrs.frozen
class MailText:
    """What :func:`mail_text` found.

    :param text: the new text, None when there is none (a mail of attachments only).
    :param from_html: the text came from an HTML body (there was no plain-text one).
    :param truncated: the text was cut at :data:`MAX_TEXT_CHARS` (or a body part at
        :data:`MAX_INPUT_CHARS`).
    """

    text: str | None
    from_html: bool = False
    truncated: bool = False


def _flowed(part: Message) -> tuple[bool, bool]:
    try:
        flowed = str(part.get_param("format", "") or "").lower() == "flowed"
        delsp = str(part.get_param("delsp", "") or "").lower() == "yes"
    except Exception:  # a Content-Type the parser chokes on
        return False, False
    return flowed, delsp


def mail_text(bodies: Sequence[Message], subject: str | None) -> MailText:
    """The new text of a mail whose body is ``bodies`` (text/plain or text/html parts, in
    order): quoted history and signature stripped, unless the mail is a forward."""
    whole: list[str] = []  # everything the body says
    fresh: list[str] = []  # less what follows an HTML quote marker
    from_html = truncated = False
    left = {True: MAX_HTML_CHARS, False: MAX_INPUT_CHARS}  # to read, of HTML and of plain
    for part in bodies:
        is_html = part.get_content_type() == "text/html"
        if left[is_html] <= 0:
            truncated = True
            continue
        content = part_text(part)
        if len(content) > left[is_html]:
            content, truncated = content[: left[is_html]], True
        left[is_html] -= len(content)
        if is_html:
            from_html = True
            converted = html_to_text(content)
            whole.append(converted.text)
            fresh.append(converted.text[: converted.quote_at])
        else:
            content = content.replace("\r\n", "\n").replace("\r", "\n")
            flowed, delsp = _flowed(part)
            if flowed:
                content = unflow(content, delsp)
            whole.append(content)
            fresh.append(content)
    everything = tidy("\n\n".join(tidy(piece) for piece in whole))
    if is_forward(subject, everything):
        text = tidy("\n".join(without_mobile_signature(everything.split("\n"))))
    else:
        new = tidy("\n\n".join(tidy(piece) for piece in fresh))
        text = tidy(strip_signature(strip_quotes(new)))
    if len(text) > MAX_TEXT_CHARS:
        text, truncated = text[: MAX_TEXT_CHARS - 2].rstrip() + "\n…", True
    return MailText(text or None, from_html, truncated)
