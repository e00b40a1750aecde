"""HTML mail bodies as safe plain text (used only when a mail has no plain-text body).

Script and style elements are cut out before parsing (to their end tag, or to the end when
unclosed, so no broken markup around them can turn their content into text); the head,
hidden elements and other non-content elements are dropped; block elements become line
breaks, a link becomes ``text (url)`` (``http``, ``https``, ``mailto`` and ``tel`` only),
entities are decoded. Quoting blockquotes come out as ``> `` lines, like a plain-text reply,
and the clients' signature blocks (``gmail_signature``, Outlook's ``Signature``) are dropped.
The result is plain text: no markup of the mail reaches it, though it may say ``<`` where the
sender wrote ``&lt;`` (so it is shown as text, as any text is). The stdlib's parser does the
reading.
"""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser

import attrs

MAX_QUOTE_DEPTH = 10
"""The most ``> `` an HTML quote's lines get, however deep its blockquotes nest (a prefix a
level on every line would make the text grow as the square of the nesting)."""

VOID_ELEMENTS = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
     "source", "track", "wbr"}
)  # fmt: skip
DROPPED_ELEMENTS = frozenset(
    {"script", "style", "head", "title", "template", "noscript", "svg", "math", "object",
     "iframe", "select", "textarea", "button"}
)  # fmt: skip
HEAD_ELEMENTS = frozenset(
    {"head", "title", "meta", "link", "style", "script", "base", "noscript", "template"}
)
LINE_ELEMENTS = frozenset(
    {"div", "li", "tr", "dt", "dd", "address", "article", "aside", "center", "details",
     "dialog", "fieldset", "figcaption", "figure", "footer", "form", "header", "main", "nav",
     "section", "summary", "caption", "tbody", "thead", "tfoot"}
)  # fmt: skip
PARAGRAPH_ELEMENTS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "dl", "table", "pre", "hr",
     "blockquote"}
)  # fmt: skip
LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
SIGNATURE_IDS = frozenset({"signature", "ms-outlook-mobile-signature", "x_signature"})
SIGNATURE_CLASSES = frozenset({"gmail_signature", "moz-signature", "signature"})
QUOTE_IDS = frozenset(
    {"divrplyfwdmsg", "appendonsend", "mail-editor-reference-message-container",
     "x_divrplyfwdmsg", "x_appendonsend"}
)  # fmt: skip
QUOTE_CLASSES = frozenset(
    {"gmail_quote", "gmail_quote_container", "outlookmessageheader", "yahoo_quoted",
     "protonmail_quote", "zmail_extra", "moz-forward-container"}
)  # fmt: skip
_MARKED_SECTION = re.compile(r"<!\[(?!CDATA\[)[^\]<>]*\]?>")
_SCRIPT_ELEMENT = re.compile(r"<(script|style)\b.*?(?:</\1\b[^>]*(?:>|\Z)|\Z)", re.I | re.S)
"""A script or style element to its end tag (or the end, unclosed), wherever it starts:
removed before parsing, so no trick of broken markup can make its content text."""
_HTML_WHITESPACE = re.compile(r"[ \t\n\r\f]+")
_STYLE_SPACE = re.compile(r"\s+")


@attrs.frozen
class HtmlText:
    """An HTML body as text; ``quote_at``: where the quoted history an Outlook-style marker
    starts begins in ``text`` (None when there is none)."""

    text: str
    quote_at: int | None = None


def _classes(attributes: dict[str, str]) -> set[str]:
    return set(attributes.get("class", "").lower().split())


class _TextWriter(HTMLParser):
    """HTML to text, one pass; see the module's docstring for the rules."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.length = 0
        self.pending_breaks = 0
        self.line_has_text = False
        self.skipping: str | None = None  # the element whose content is being dropped
        self.skip_depth = 0
        self.head_element: str | None = None  # the element open inside a dropped head
        self.pre = 0
        self.quote_depth = 0
        self.blockquotes: list[bool] = []  # for each open blockquote: does it quote?
        self.links: list[tuple[str | None, int]] = []  # href, first chunk of its label
        self.quote_at: int | None = None

    # output --

    def _append(self, text: str) -> None:
        self.chunks.append(text)
        self.length += len(text)

    def _end_line(self) -> None:
        """Trailing spaces of the current line removed, then the pending line breaks."""
        while self.chunks and self.chunks[-1].endswith(" "):
            last = self.chunks.pop()
            self.length -= len(last)
            if last.rstrip(" "):
                self._append(last.rstrip(" "))
                break
        self._append("\n" * self.pending_breaks)
        self.line_has_text = False

    def _write(self, text: str, keep_spaces: bool = False) -> None:
        breaking = bool(self.pending_breaks and self.length)
        at_line_start = breaking or not self.line_has_text
        if not keep_spaces and (at_line_start or self.chunks[-1].endswith(" ")):
            text = text.lstrip(" ")
        if not text:
            return
        if breaking:
            self._end_line()
        self.pending_breaks = 0
        if not self.line_has_text and self.quote_depth:
            self._append("> " * min(self.quote_depth, MAX_QUOTE_DEPTH))
        self._append(text)
        self.line_has_text = True

    def _break(self, count: int) -> None:
        self.pending_breaks = max(self.pending_breaks, count)

    # parsing --

    @staticmethod
    def _style(attributes: dict[str, str]) -> str:
        return _STYLE_SPACE.sub("", attributes.get("style", "").lower())

    def _hidden(self, attributes: dict[str, str]) -> bool:
        """Not shown, or a signature block a mail client marks as such."""
        if "display:none" in self._style(attributes) or "hidden" in attributes:
            return True
        identifier = attributes.get("id", "").lower()
        return identifier in SIGNATURE_IDS or bool(_classes(attributes) & SIGNATURE_CLASSES)

    def _starts_quote(self, tag: str, attributes: dict[str, str]) -> bool:
        """An Outlook-style marker: the quoted history starts here and runs to the end."""
        if attributes.get("id", "").lower() in QUOTE_IDS:
            return True
        if _classes(attributes) & QUOTE_CLASSES:
            return True
        style = self._style(attributes)
        if tag == "hr":  # Outlook on the web's line above the quoted mail
            return attributes.get("tabindex") == "-1" or "display:inline-block" in style
        # Outlook for Windows: the top border of the quoted mail's header block
        return tag == "div" and "border-top:solid" in style and "padding:3.0pt0" in style

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skipping == "head":
            if tag not in HEAD_ELEMENTS:
                self.skipping = None  # a head never closed ends where the content starts
            elif tag not in VOID_ELEMENTS and tag != "head":
                self.head_element = tag  # its text is the head's (a title)
        if self.skipping is not None:
            if tag == self.skipping:
                self.skip_depth += 1
            return
        if tag == "body":
            return
        attributes = {name: value or "" for name, value in attrs}
        if tag not in VOID_ELEMENTS and (tag in DROPPED_ELEMENTS or self._hidden(attributes)):
            self.skipping, self.skip_depth = tag, 1
            return
        if self.quote_at is None and self._starts_quote(tag, attributes):
            self.quote_at = self.length
        if tag == "br":
            self.pending_breaks += 1
        elif tag in PARAGRAPH_ELEMENTS:
            self._break(2)
        elif tag in LINE_ELEMENTS:
            self._break(1)
        if tag == "blockquote":
            quoting = "border:none" not in self._style(attributes)  # Gmail's indent is not
            self.blockquotes.append(quoting)
            self.quote_depth += quoting
        elif tag == "pre":
            self.pre += 1
        elif tag == "li":
            self._write("- ")
        elif tag in ("td", "th") and self.line_has_text and not self.pending_breaks:
            self._write(" ")
        elif tag == "a":
            self.links.append((attributes.get("href", "").strip() or None, len(self.chunks)))
        elif tag == "img":
            alt = " ".join(attributes.get("alt", "").split())
            if alt:
                self._write(f"[image: {alt}]")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID_ELEMENTS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == self.head_element:
            self.head_element = None
        if self.skipping is not None:
            if tag == self.skipping:
                self.skip_depth -= 1
                if self.skip_depth == 0:
                    self.skipping = None
            return
        if tag in PARAGRAPH_ELEMENTS:
            self._break(2)
        elif tag in LINE_ELEMENTS:
            self._break(1)
        if tag == "blockquote" and self.blockquotes:
            self.quote_depth -= self.blockquotes.pop()
        elif tag == "pre" and self.pre:
            self.pre -= 1
        elif tag == "a" and self.links:
            self._close_link()

    def _close_link(self) -> None:
        """After a link's label, its target in brackets: ``text (url)``; the bare target
        for a link without a label; nothing when the label is the target."""
        href, first_chunk = self.links.pop()
        if href is None or not href.lower().startswith(LINK_SCHEMES):
            return
        label = "".join(self.chunks[first_chunk:]).strip()
        target = href[len("mailto:") :] if href.lower().startswith("mailto:") else href
        if not label:
            self._write(target)
        elif label not in (target, href):
            self._write(f" ({target})")

    def handle_data(self, data: str) -> None:
        if self.skipping == "head" and data.strip() and self.head_element is None:
            self.skipping = None  # text in a head never closed: the content has started
        if self.skipping is not None:
            return
        if not self.pre:
            self._write(_HTML_WHITESPACE.sub(" ", data))
            return
        for index, line in enumerate(data.split("\n")):
            if index:
                self.pending_breaks += 1
            if line:
                self._write(line, keep_spaces=True)

    def result(self) -> HtmlText:
        return HtmlText("".join(self.chunks), self.quote_at)


def html_to_text(markup: str) -> HtmlText:
    """The text of an HTML body (the module's docstring has the rules), with where its
    Outlook-style quoted history starts."""
    markup = _SCRIPT_ELEMENT.sub(" ", markup)
    markup = _MARKED_SECTION.sub("", markup)  # Outlook's <![if ...]>: no text, and a trap
    writer = _TextWriter()
    try:
        writer.feed(markup)
        writer.close()
    except (AssertionError, ValueError, IndexError):  # declarations the parser refuses
        return HtmlText(_crude_text(markup))
    return writer.result()


def _crude_text(markup: str) -> str:
    """Text by brute force, for HTML the parser gives up on (scripts and styles are gone
    already): the head and title removed, then every tag, entities decoded."""
    without = re.sub(r"<(head|title)\b.*?(</\1\s*>|\Z)", " ", markup, flags=re.S | re.I)
    text = html.unescape(re.sub(r"<[^>]*>?", " ", without))
    return "\n".join(" ".join(line.split()) for line in text.split("\n"))
