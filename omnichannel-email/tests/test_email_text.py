"""The new text of a mail (``omnichannel_email.text`` and the charsets, html_text and
quotes modules it uses): charsets, HTML to safe text, quoted
history and signatures stripped, forwards kept, on the tricky shapes real clients write.
The whole mails of ``corpus/`` are in test_email_parse.py."""

from __future__ import annotations

import random
import time
from email import policy
from email.message import Message
from email.parser import BytesParser

import pytest
from omnichannel_email.charsets import decode_text, unflow
from omnichannel_email.html_text import html_to_text
from omnichannel_email.quotes import is_forward, strip_quotes, strip_signature
from omnichannel_email.text import MAX_HTML_CHARS, MAX_INPUT_CHARS, MAX_TEXT_CHARS, mail_text, tidy


def new_text(text: str) -> str:
    return tidy(strip_signature(strip_quotes(text)))


def html_text(markup: str) -> str:
    return tidy(html_to_text(markup).text)


def part(content_type: str, body: bytes, headers: str = "") -> Message:
    raw = f"Content-Type: {content_type}\n{headers}\n".encode() + body
    return BytesParser(policy=policy.default).parsebytes(raw)


# charsets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "charset", "expected"),
    [
        ("Grüße".encode(), "utf-8", "Grüße"),
        (b"caf\xe9", "iso-8859-1", "café"),
        (
            b"it\x92s \x93fine\x94 \x96 ok",
            "iso-8859-1",
            "it\u2019s \u201cfine\u201d \u2013 ok",
        ),  # Outlook
        (b"\x80 49,90", "windows-1252", "€ 49,90"),
        ("naïve".encode(), "us-ascii", "naïve"),  # 8-bit UTF-8 declared as ASCII
        (b"na\xefve", None, "naïve"),  # undeclared Latin-1
        ("naïve".encode(), "x-no-such-charset", "naïve"),
        ("中文".encode("gb18030"), "gb2312", "中文"),
        (b"abc", "base64", "abc"),  # a bytes codec is no charset
        (b'"quoted"', '"UTF-8"', '"quoted"'),
        ("naïve".encode(), "utf-8\x00", "naïve"),  # the registry raises ValueError on a NUL
        ("naïve".encode(), "utf-8\udcff", "naïve"),  # a raw 8-bit byte in the name
    ],
)
def test_bodies_decode_by_their_charset_with_the_usual_lies_forgiven(
    data: bytes, charset: str | None, expected: str
) -> None:
    """Declared charsets are honoured, ISO-8859-1 and ASCII read as the Windows-1252 and
    UTF-8 senders really write, unknown charsets tried as UTF-8 then Windows-1252."""
    assert decode_text(data, charset) == expected


def test_undecodable_bytes_are_replaced_never_raised() -> None:
    """Invalid UTF-8 under a UTF-8 label becomes U+FFFD rather than an error."""
    assert decode_text(b"ok \xff\xfe end", "utf-8") == "ok \ufffd\ufffd end"


def test_quoted_printable_base64_and_8bit_bodies_decode_alike() -> None:
    """The same words arrive the same way whatever the transfer encoding."""
    for cte, body in (
        ("quoted-printable", b"Gr=C3=BC=C3=9Fe, J=C3=BCrgen"),
        ("base64", b"R3LDvMOfZSwgSsO8cmdlbg=="),
        ("8bit", "Grüße, Jürgen".encode()),
    ):
        mail = part('text/plain; charset="utf-8"', body, f"Content-Transfer-Encoding: {cte}\n")
        assert mail_text([mail], None).text == "Grüße, Jürgen"


# HTML -----------------------------------------------------------------------------------


def test_html_drops_scripts_styles_head_and_hidden_elements() -> None:
    """No script, style, title or hidden preheader reaches the text, even unclosed."""
    markup = (
        "<html><head><title>T</title><style>p {color: red}</style>"
        "<script>steal()</script></head><body><div style='display: none'>preheader</div>"
        "<p onclick='x()'>Visible</p><script>more()</script><noscript>no</noscript></body>"
    )
    assert html_text(markup) == "Visible"


@pytest.mark.parametrize(
    "markup",
    [
        "<head><title>Title</title><body><p>Body text</p>",
        "<html><head><meta charset=utf-8><p>Body text",
        "<head><meta x><title>Title</title>Body text",
    ],
)
def test_an_unclosed_head_ends_where_the_content_starts(markup: str) -> None:
    """A head never closed hides its title, not the mail: it ends at the first content
    element or text, as browsers end it."""
    assert html_text(markup) == "Body text"


def test_html_blocks_become_lines_and_paragraphs() -> None:
    """Gmail's one div per line and ``<div><br></div>`` blank lines read as the sender
    saw them; paragraphs are separated by a blank line."""
    gmail = (
        "<div dir=ltr><div>Line one</div><div>Line two</div><div><br></div><div>After</div></div>"
    )
    assert html_text(gmail) == "Line one\nLine two\n\nAfter"
    assert html_text("<p>One</p><p>Two<br>Three</p>") == "One\n\nTwo\nThree"


def test_html_links_read_as_text_and_url() -> None:
    """A link is ``text (url)``; its bare URL once when the text is the URL; only web,
    mail and phone links: a ``javascript:`` or ``data:`` target is dropped."""
    markup = (
        '<a href="https://shop.example/o/1">my order</a>, '
        '<a href="https://x.example">https://x.example</a>, '
        '<a href="mailto:a@b.example">a@b.example</a>, '
        '<a href="mailto:a@b.example">write</a>, '
        '<a href="javascript:alert(1)">click</a>, <a href="data:text/html,x">data</a>'
    )
    assert html_text(markup) == (
        "my order (https://shop.example/o/1), https://x.example, a@b.example,"
        " write (a@b.example), click, data"
    )


def test_html_entities_decode_to_plain_characters() -> None:
    """Entities become the characters they name; escaped markup stays the literal text
    the sender saw, not markup."""
    assert html_text("<p>&euro;&nbsp;5 &amp; &#x1F600; &lt;b&gt;</p>") == "€ 5 & 😀 <b>"


def test_html_lists_tables_pre_and_images() -> None:
    """List items get a dash, table cells a space, pre keeps its spacing, an image its
    alt text."""
    markup = (
        "<ul><li>One</li><li>Two</li></ul><table><tr><td>A</td><td>B</td></tr></table>"
        "<pre>  x = 1\n    y = 2</pre><img src='cid:1' alt='photo.jpg'><img src='t.gif' alt=''>"
    )
    assert html_text(markup) == "- One\n- Two\n\nA B\n\n  x = 1\n    y = 2\n\n[image: photo.jpg]"


def test_html_the_parser_refuses_still_gives_text() -> None:
    """Declarations the stdlib parser asserts on fall back to stripping tags by brute
    force, with scripts still dropped."""
    assert html_text("<p>a</p><![foo[ bar <script>evil()</script><p>b</p>") == "a b"
    assert html_text("<![ if x ]><p>a</p><script>evil()</script>") == "a"


SCRIPTS = (
    "<script>SECRET()</script>",
    "<SCRIPT type=text/javascript>SECRET</SCRIPT>",
    "<script\n>SECRET</script\n>",
    "<script src=x>SECRET",
    "<style>SECRET{}</style>",
)
TAG_SOUP = (
    "<p>", "</p>", "<div>", "</div>", "<![if x]>", "<![endif]>", "<![foo[ bar", "<![ if x ]>",
    "<!--", "-->", "<!-- a", "<!DOCTYPE html>", "<![CDATA[", "]]>", "<a href='", "'>", "<b",
    ">", "</", "<", "<head>", "</head>", "<body>", "<title>", "<textarea>", "text", "&amp;",
    "<br>", "<!", "<?php", "?>", "<scr", "<svg>", "</svg>", '<div style="display:none">',
    "<template>", "<plaintext>", "<xmp>",
)  # fmt: skip


def test_no_script_or_style_content_ever_reaches_the_text() -> None:
    """Whatever broken markup surrounds it, nothing inside a script or style element is
    in the text (3,000 random tag soups, fixed seed)."""
    generator = random.Random(14)
    for _ in range(3000):
        pieces = [generator.choice(TAG_SOUP) for _ in range(generator.randint(0, 8))]
        pieces.insert(generator.randint(0, len(pieces)), generator.choice(SCRIPTS))
        markup = "".join(pieces)
        assert "SECRET" not in html_to_text(markup).text, markup


def test_outlook_web_html_quote_starts_at_its_separator() -> None:
    """Outlook on the web's ``appendonsend``/``hr``/``divRplyFwdMsg`` start the history."""
    markup = (
        '<div>Done, thanks.</div><div id="appendonsend"></div>'
        '<hr style="display:inline-block;width:98%" tabindex="-1">'
        '<div id="divRplyFwdMsg" dir="ltr"><b>From:</b> Support<br><b>Sent:</b> Tue</div>'
        "<div>Hello Jane</div>"
    )
    converted = html_to_text(markup)
    assert converted.text[: converted.quote_at].strip() == "Done, thanks."


def test_quoting_blockquotes_read_as_quoted_lines_but_indents_do_not() -> None:
    """Apple Mail's ``type=cite`` and Gmail's ``gmail_quote`` blockquotes become ``>``
    lines; Gmail's indent button (a borderless blockquote) is the sender's own text."""
    assert html_text('<div>Hi</div><blockquote type="cite">Old<br>Older</blockquote>') == (
        "Hi\n\n> Old\n> Older"
    )
    indent = '<blockquote style="margin:0 0 0 40px;border:none;padding:0px">Mine</blockquote>'
    assert html_text(indent) == "Mine"


def test_iphone_html_reply_keeps_only_the_answer() -> None:
    """iOS Mail: the answer, "Sent from my iPhone", then the cited mail: only the answer."""
    bodies = [
        part(
            "text/html; charset=utf-8",
            b'<html><body dir="auto">Thanks!<br><br><div dir="ltr">Sent from my iPhone</div>'
            b'<div dir="ltr"><br><blockquote type="cite">On Mar 5, 2024, at 10:12, Support '
            b"&lt;support@shop.example&gt; wrote:<br><br></blockquote></div>"
            b'<blockquote type="cite"><div dir="ltr">Hello Ben</div></blockquote></body></html>',
        )
    ]
    assert mail_text(bodies, "Re: Delivery").text == "Thanks!"


# quoted history -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "Yes, go ahead.\n\nOn Thu, Aug 19, 2021 at 2:07 PM Tejaswini from Email sender test"
            " <\ntejaswini@chatwoot.com> wrote:\n\n> Any update on this?\n>\n",
            "Yes, go ahead.",
            id="gmail-wrapped-attribution",
        ),
        pytest.param(
            "On Tue, Mar 5, 2024 at 10:12 AM Support <support@shop.example> wrote:\n"
            "> Which colour?\n\nThe blue one, please.\n",
            "The blue one, please.",
            id="bottom-posted",
        ),
        pytest.param(
            "Support wrote:\n> Which colour?\nBlue.\n> Which size?\nXL.\n",
            "Blue.\n\nXL.",
            id="interleaved",
        ),
        pytest.param(
            "Fine by me.\n\n-----Original Message-----\nFrom: Support [mailto:s@shop.example]\n"
            "Sent: Tuesday, March 5, 2024 10:12 AM\nTo: Jane\nSubject: Question\n\nHello\n",
            "Fine by me.",
            id="outlook-original-message",
        ),
        pytest.param(
            "Done.\n\n________________________________\nFrom: Support <s@shop.example>\n"
            "Sent: Tuesday, March 5, 2024 10:12\nTo: Jane <j@x.example>\nSubject: Re: Q\n\nHi\n",
            "Done.",
            id="outlook-web-header-block",
        ),
        pytest.param(
            "Thanks\n\nFrom: Support <s@shop.example>\nDate: Tuesday, 5 March 2024 at 10:12\n"
            "To: Jane <j@x.example>\nSubject: Re: Q\n\nHi\n",
            "Thanks",
            id="outlook-mac-header-block",
        ),
        pytest.param(
            "Danke!\n\nVon: Shop <s@shop.example>\nGesendet: Dienstag, 5. März 2024 10:12\n"
            "An: Jürgen\nBetreff: AW: Frage\n\nHallo\n",
            "Danke!",
            id="outlook-german",
        ),
        pytest.param(
            "Merci !\n\nDe : Support <s@shop.example>\nEnvoyé : mardi 5 mars 2024 10:12\n"
            "À : Anaïs\nObjet : RE: Question\n\nBonjour\n",
            "Merci !",
            id="outlook-french",
        ),
        pytest.param(
            "Merci !\n\nLe mar. 5 mars 2024 à 10:12, Support <s@shop.example> a\u202fécrit\u00a0:"
            "\n\n> Bonjour\n",
            "Merci !",
            id="gmail-french",
        ),
        pytest.param(
            "Danke!\n\nAm Di., 5. März 2024 um 10:12 Uhr schrieb Support <s@shop.example>:\n\n"
            "> Hallo\n",
            "Danke!",
            id="gmail-german",
        ),
        pytest.param(
            "Danke!\n\nAm 05.03.2024 um 10:12 schrieb Support <s@shop.example>:\n\nHallo Herr W.,"
            "\ndie Ware ist unterwegs.\n",
            "Danke!",
            id="apple-german-unquoted",
        ),
        pytest.param(
            "Gracias\n\nEl mar, 5 mar 2024 a las 10:12, Support (<s@shop.example>) escribió:\n"
            "> Hola\n",
            "Gracias",
            id="gmail-spanish",
        ),
        pytest.param(
            "Hello\n> On 22 Aug 2015, at 19:21, Adam <a@example.com> wrote:\n>\n> Hi there!\n",
            "Hello",
            id="apple-mail-quoted-attribution",
        ),
    ],
)
def test_quoted_history_is_stripped(text: str, expected: str) -> None:
    """Each client's way of quoting the thread leaves only the new text."""
    assert new_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "From: my account page\nI can't see the invoice.\nTo: whom it may concern",
        "On Monday I wrote: the order is late.\nStill nothing.",
        "On 5 March I wrote:\nthe order is late, and nobody answered.",
        "Your form says:\nName: Jane\nSubject: refund",
    ],
)
def test_the_customers_own_words_are_not_taken_for_history(text: str) -> None:
    """Lines that merely look like markers (a From: line without a header block, an
    "On ... wrote:" without an address or quote) are kept."""
    assert new_text(text) == text


HOSTILE_TEXTS = [
    ("On 1 " + "a " * 290 + "wrote :\n") * 3000,
    ("x " * 100 + "wrote wrote wrote" + " y" * 90 + ":\n> q\n") * 2000,
    ("Am " + "1 schrieb x" * 50 + " x" * 30 + ":\n") * 1500,
    "On " + "1" * 1_000_000 + " wrote:",
    " " * 1_000_000 + "x",
    "-" * 1_000_000,
]


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=["on", "wrote", "am", "long", "blank", "dash"])
def test_hostile_text_is_stripped_in_bounded_time(text: str) -> None:
    """A megabyte of lines built to make the quote patterns backtrack is read in well
    under the ten seconds allowed here."""
    started = time.monotonic()
    new_text(text)
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("markup", ["<" * 300_000, "<div>" * 60_000, "<blockquote>a" * 20_000])
def test_hostile_html_is_read_in_bounded_time(markup: str) -> None:
    """300 kB of pathological markup (what is read of an HTML part) converts in well under
    ten seconds."""
    started = time.monotonic()
    mail_text([part("text/html", markup.encode())], None)
    assert time.monotonic() - started < 10


def test_a_mail_that_is_only_quoted_has_no_new_text() -> None:
    """Nothing but the quote: no text (the original mail still holds it)."""
    assert new_text("On Tue, Mar 5, 2024 at 10:12 AM S <s@shop.example> wrote:\n> Hello\n") == ""


# signatures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Thanks\n\n-- \nJane Doe\nACME Ltd", "Thanks"),
        ("Thanks\n--\nJane", "Thanks"),  # the space eaten on the way
        ("Ok\n\nSent from my iPhone", "Ok"),
        ("Ok\n\nSent from my Galaxy", "Ok"),
        ("Ok\n\nGet Outlook for iOS<https://aka.ms/o0ukef>", "Ok"),
        ("Ok\n\nGet Outlook for Android", "Ok"),
        ("Ok\n\nVon meinem iPhone gesendet", "Ok"),
        ("Ok\n\nEnvoyé de mon iPad", "Ok"),
        ("Ok\n\nSent from Mail for Windows", "Ok"),
    ],
)
def test_signatures_are_stripped(text: str, expected: str) -> None:
    """The RFC 3676 delimiter and the mobile clients' taglines go."""
    assert new_text(text) == expected


def test_a_dash_line_followed_by_a_long_text_is_no_signature() -> None:
    """``--`` used as a separator, with more than 15 lines after it, is kept."""
    text = "Intro\n--\n" + "\n".join(f"point {number}" for number in range(20))
    assert new_text(text) == text


def test_gmail_html_signature_block_is_dropped() -> None:
    """Gmail's ``gmail_signature`` block never reaches the text."""
    markup = (
        '<div dir="ltr">See you.</div><br clear="all"><div><br></div>'
        '<span class="gmail_signature_prefix">-- </span><br>'
        '<div dir="ltr" class="gmail_signature">Jane Doe<br>+44 20 7946 0958</div>'
    )
    assert mail_text([part("text/html; charset=utf-8", markup.encode())], None).text == "See you."


# forwards -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("Fwd: Invoice", "See below", True),
        ("FW: Invoice", "See below", True),
        ("WG: Rechnung", "Siehe unten", True),
        ("TR: Facture", "Voir ci-dessous", True),
        ("[Ticket 42] Fwd: Invoice", "See below", True),
        ("Re: Fwd: Invoice", "Thanks", False),
        (None, "See below\n\nBegin forwarded message:\n\n> From: X <x@y.example>", True),
        (None, "FYI\n\n-------- Forwarded Message --------\nSubject: Hi", True),
        (None, "Thanks\n\nOn Tue, Mar 5, 2024 at 1 PM X <x@y.example> wrote:\n> ----------"
         " Forwarded message ---------", False),
    ],
)  # fmt: skip
def test_forwards_are_recognised(subject: str | None, text: str, expected: bool) -> None:
    """By subject prefix in the common languages, or a forwarded-message marker that comes
    before any quote."""
    assert is_forward(subject, text) is expected


def test_a_forward_keeps_the_forwarded_mail() -> None:
    """The forwarded mail is the message: its header block and body stay."""
    body = (
        "Please check this.\n\n---------- Forwarded message ---------\nFrom: Billing"
        " <b@shop.example>\nDate: Fri, Mar 8, 2024\nSubject: Payment failed\nTo: <j@x.example>\n\n"
        "We could not charge your card.\n"
    )
    found = mail_text([part("text/plain; charset=utf-8", body.encode())], "Fwd: Payment failed")
    assert found.text == body.strip()


# flowed text, tidying, limits -----------------------------------------------------------


def test_format_flowed_soft_breaks_are_joined() -> None:
    """RFC 3676: a trailing space continues the line (same quote depth), ``delsp=yes``
    removes that space, and the signature delimiter is never joined."""
    assert unflow("This is \nflowed.\n> quoted \n> more\n-- \nsig", delsp=False) == (
        "This is flowed.\n> quoted more\n-- \nsig"
    )
    assert unflow("Sehr geehr\nte\n", delsp=False) == "Sehr geehr\nte\n"
    assert unflow("Thi \ns word", delsp=True) == "This word"


def test_tidy_normalises_line_ends_spaces_and_invisible_characters() -> None:
    """CRLF, trailing spaces, no-break and zero-width spaces, control characters and
    runs of blank lines are cleaned."""
    assert tidy("\r\n a\u00a0b  \r\n\r\n\r\n\ufeffc\u200b\x00\x07\n\n") == " a b\n\nc"


def test_an_overlong_text_is_cut_and_flagged() -> None:
    """A text over MAX_TEXT_CHARS is cut there, ending with an ellipsis, and flagged."""
    found = mail_text([part("text/plain", b"word " * 20_000)], None)
    assert found.truncated
    assert found.text is not None
    assert len(found.text) <= MAX_TEXT_CHARS
    assert found.text.endswith("…")


def test_what_is_read_of_many_body_parts_is_bounded_in_all() -> None:
    """MAX_INPUT_CHARS and MAX_HTML_CHARS bound the text read of all the body parts
    together, not each: a mail of a hundred 250 KB HTML parts (15 s when each part had its
    own limit) is read in a fraction of the ten seconds allowed here, its text flagged
    cut."""
    markup = b"<div><b>a</b> <i>b</i> <a href='http://x.example/z'>c</a></div>\n" * 4000
    plain = b"Hello there, this is a line of my message.\n" * 6000
    bodies = [part("text/html", markup) for _ in range(100)]
    bodies += [part("text/plain", plain) for _ in range(100)]
    assert len(markup) * 100 > 10 * MAX_HTML_CHARS and len(plain) * 100 > 10 * MAX_INPUT_CHARS
    started = time.monotonic()
    found = mail_text(bodies, None)
    assert time.monotonic() - started < 10
    assert found.truncated and found.from_html
    assert found.text is not None and found.text.startswith("a b c (http://x.example/z)")


def test_multipart_bodies_are_joined_in_order() -> None:
    """Apple Mail's text, image, text: both texts, in order."""
    bodies = [part("text/plain", b"Before the photo."), part("text/plain", b"After it.")]
    assert mail_text(bodies, None).text == "Before the photo.\n\nAfter it."


def test_html_text_is_flagged_as_coming_from_html() -> None:
    """``from_html`` tells a text converted from HTML."""
    assert mail_text([part("text/html", b"<p>Hi</p>")], None).from_html
    assert not mail_text([part("text/plain", b"Hi")], None).from_html
