"""A raw mail as what the core stores (``omnichannel_email.parse``, with ``automated``):
every mail of ``corpus/`` (the shapes Gmail, Outlook, Apple Mail, Thunderbird, Google
Calendar, Postfix and Exchange really send) gives the right text, sender, thread,
attachments, flag or status; then the edges: limits, missing headers, hostile input.

Pure functions, so no server here; the IMAP and webhook tests feed the same corpus through
the real server."""

from __future__ import annotations

import hashlib
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO, cast

import attrs
import pytest
from omnichannel_email.automated import is_automated
from omnichannel_email.bounds import MAX_PARTS
from omnichannel_email.headers import Mailbox
from omnichannel_email.parse import mail_result, parse_mail, provider_message_id, thread_refs
from omnichannel_email.parts import MAX_ATTACHMENTS
from omnichannel_email.settings import EmailSettings, parse_settings

from omnichannel_core.channel import (
    Attachment,
    Config,
    DeliveryStatus,
    InboundMessage,
    InvalidInput,
    MediaRole,
    WebhookResult,
)

CORPUS = Path(__file__).parent / "corpus"
OWN_ADDRESS = "support@shop.example"
ATTACHMENT, INLINE = MediaRole.ATTACHMENT, MediaRole.INLINE


def settings(**environ: str) -> EmailSettings:
    base = {
        "EMAIL_FROM_ADDRESS": OWN_ADDRESS,
        "EMAIL_SMTP_HOST": "smtp.shop.example",
        "EMAIL_INBOUND_SECRET": "s" * 24,
    }
    return parse_settings(Config.from_environ({**base, **environ}, dotenv=None))


SETTINGS = settings()


def corpus(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def only_message(raw: bytes, config: EmailSettings = SETTINGS) -> InboundMessage:
    result = mail_result(raw, config)
    assert not result.statuses
    (message,) = result.messages
    return message


def mail(headers: str, body: str = "Hello", **extra: str) -> bytes:
    """A minimal mail: ``headers`` (one per line) over the defaults, then ``body``."""
    defaults = {
        "From": "Jane Doe <jane@customer.example>",
        "To": OWN_ADDRESS,
        "Subject": "Question",
        "Message-ID": "<q1@customer.example>",
        "Date": "Tue, 5 Mar 2024 10:00:00 +0000",
    }
    given: dict[str, str] = {}
    for line in headers.strip().splitlines():
        if line[:1].isspace():  # a folded header goes on
            name = list(given)[-1]
            given[name] += "\n" + line
        elif line:
            name, value = line.split(": ", 1)
            given[name] = value
    lines = [f"{name}: {value}" for name, value in {**defaults, **given}.items() if value != "-"]
    return ("\n".join(lines) + "\n" + "".join(f"{k}: {v}\n" for k, v in extra.items())
            + "\n" + body).encode()  # fmt: skip


# the corpus -----------------------------------------------------------------------------


@attrs.frozen
class Stored:
    """What a corpus mail must become: a message with these fields."""

    file: str
    text: str | None
    sender: str
    sender_name: str | None
    subject: str
    refs: tuple[str, ...] = ()
    participants: tuple[str, ...] = ()
    attachments: tuple[tuple[str | None, str, int, MediaRole, str | None], ...] = ()
    automated: bool = False
    reply_to: str | None = None
    html: bool = False


MESSAGES = [
    Stored(
        "gmail_reply.eml",
        "Hi,\n\nThe tracking link says the parcel was delivered yesterday, but it isn\u2019t"
        " here. Could you check with the courier?\n\nThanks,\nJane",
        "jane.doe@gmail.com",
        "Jane Doe",
        "Re: Your order #1042 has shipped",
        refs=("msg_06jz3k9v7q2m4t8w1b5c0d6e9f@shop.example",),
        participants=("mark.doe@gmail.com",),
    ),
    Stored(
        "outlook_reply.eml",
        "Hi,\n\nThanks \u2013 that\u2019s the label I needed. I\u2019ll drop the parcel off at"
        " the post office tomorrow.\n\nKind regards\nTom Becker\nPurchasing | Contoso GmbH",
        "tom.becker@contoso.example",
        "Tom Becker",
        "RE: Return label for order #1107",
        refs=(
            "msg_06jz4a1b2c3d4e5f6g7h8j9k0m@shop.example",
            "AM9PR07MB7204F8E1D3C2B4A5968778A1A1572@AM9PR07MB7204.eurprd07.prod.outlook.com",
        ),
    ),
    Stored(
        "apple_mail_reply.eml",
        "Bonjour,\n\nYes, Saturday morning works for me. The coffee machine will be at the"
        " front desk.\n\nAna\u00efs",
        "anais.lefevre@icloud.com",
        "Ana\u00efs Lef\u00e8vre",
        "Re: Your repair request #88",
        refs=("msg_06jz5n2p3q4r5s6t7v8w9x0y1z@shop.example",),
    ),
    Stored(
        "iphone_reply.eml",
        "Afternoon is better, after 2pm please.",
        "ben.carter@me.com",
        "Ben Carter",
        "Re: Delivery window for order #1200",
        refs=("msg_06jz6b3c4d5e6f7g8h9j0k1m2n@shop.example",),
    ),
    Stored(
        "gmail_forward.eml",
        "Hi, I got this from you this morning but my card is fine. Can you take a look?\n\n"
        "---------- Forwarded message ---------\nFrom: Shop Billing <billing@shop.example>\n"
        "Date: Fri, Mar 8, 2024 at 7:00 AM\nSubject: Payment failed for your subscription\n"
        "To: <jane.doe@gmail.com>\n\nHello Jane,\n\nWe could not charge your card ending in"
        " 4242 for your monthly subscription.\nPlease update your payment details:"
        " https://shop.example/billing\n\nThe Shop team",
        "jane.doe@gmail.com",
        "Jane Doe",
        "Fwd: Payment failed for your subscription",
    ),
    Stored(
        "multipart_alternative.eml",
        "Hello,\n\nI bought the KX-200 kettle in January and the lid no longer closes properly."
        " Is this covered by the two-year warranty, and do I need the original receipt?\n\n"
        "Best wishes,\nPriya",
        "priya@posteo.example",
        "Priya Raman",
        "Question about the warranty",
    ),
    Stored(
        "iso_8859_1.eml",
        "Bonjour,\n\nMa commande n\u00b01187 n'est toujours pas arriv\u00e9e \u00e0 Besan\u00e7on."
        " Le colis est indiqu\u00e9 \u00ab en cours d'acheminement \u00bb depuis mardi.\n\n"
        "Cordialement,\nFran\u00e7ois Ch\u00e2telet",
        "francois.chatelet@orange.example",
        "Fran\u00e7ois Ch\u00e2telet",
        "Probl\u00e8me de livraison \u00e0 Besan\u00e7on",
    ),
    Stored(
        "windows_1252_8bit.eml",
        "Hallo,\n\ndie R\u00fcckerstattung von 49,90 \u20ac ist noch nicht auf meinem Konto."
        " K\u00f6nnen Sie \u201enachsehen\u201c?\n\nViele Gr\u00fc\u00dfe\nJ\u00fcrgen Wei\u00df",
        "juergen.weiss@web.example",
        "J\u00fcrgen Wei\u00df",
        "AW: R\u00fcckerstattung f\u00fcr Bestellung 1201",
        refs=("msg_06jz7c4d5e6f7g8h9j0k1m2n3p@shop.example",),
    ),
    Stored(
        "pdf_attachment.eml",
        "Hello,\n\nPlease find the invoice attached \u2013 the amount is wrong, it should be"
        " 39,90 EUR.\n\nRegards,\nMaria",
        "maria.rossi@gmail.com",
        "Maria Rossi",
        "Invoice 2024-0312 is wrong",
        attachments=(("Rechnung M\u00e4rz 2024.pdf", "application/pdf", 407, ATTACHMENT, None),),
    ),
    Stored(
        "inline_image.eml",
        "The table arrived with a deep scratch on the top, see the photo:\n\n"
        "[image: scratch.png]\n\nCan you send a replacement?\n\nRegards,\nLiam",
        "liam.obrien@gmail.com",
        "Liam O'Brien",
        "Damaged table, order #1311",
        attachments=(("scratch.png", "image/png", 73, INLINE, "ii_ltq3m1xq0"),),
    ),
    Stored(
        "calendar_invite.eml",
        "Jane Doe has invited you to an event\nKitchen measurement visit\nTuesday 19 March"
        " 2024 \u22c5 10am \u2013 11am\nCentral European Time - Paris\n\nLocation\n12 Rue des"
        " Lilas, 75011 Paris\nhttps://www.google.com/maps/search/12+Rue+des+Lilas,+75011+Paris"
        "?hl=en\n\nMeasuring the kitchen for the new worktop.\n\nOrganiser\nJane Doe\n"
        "jane.doe@gmail.com\n\nGuests\nJane Doe - organiser\nsupport@shop.example\n\n"
        "Invitation from Google Calendar: https://calendar.google.com/calendar/\n\n"
        "You are receiving this email because you are an attendee on the event.",
        "jane.doe@gmail.com",
        "Jane Doe",
        "Invitation: Kitchen measurement visit @ Tue 19 Mar 2024 10am - 11am (CET)"
        " (support@shop.example)",
        attachments=(("invite.ics", "text/calendar", 845, ATTACHMENT, None),),
    ),
    Stored(
        "auto_reply.eml",
        "I\u2019m out of the office until 18 March with no access to email. For urgent orders"
        " please contact purchasing@contoso.example.\n\nTom Becker",
        "tom.becker@contoso.example",
        "Tom Becker",
        "Automatic reply: Your order #1107 is ready for pickup",
        refs=("msg_06jz4a1b2c3d4e5f6g7h8j9k0m@shop.example",),
        automated=True,
    ),
    Stored(
        "html_only_script.eml",
        "Refund request\n\nHello,\nI would like a refund for order #1402.\n\nDetails are on my"
        " order page (https://shop.example/orders/1402) and here.\n\nItem Price\nDesk lamp"
        " \u20ac 29.00\n\nI typed <b>this</b> in the form & it showed up literally.\n\n"
        "- First reason\n- Second reason\n\nThanks!",
        "no-reply@forms.example",
        "Website contact form",
        "Refund request",
        participants=("olga.ivanova@yandex.example",),
        automated=True,  # a no-reply sender: a web form, answered through its Reply-To
        reply_to="olga.ivanova@yandex.example",
        html=True,
    ),
    Stored(
        "google_groups.eml",
        "Hello,\n\nCan I change the delivery address of order #1420 to my office?\n\nMarta",
        "marta.silva@outlook.example",
        "Marta Silva",
        "Change of delivery address",
    ),
    Stored(
        "bounce_not_ours.eml",
        "This is the mail system at host mx.shop.example.\n\nI'm sorry to have to inform you"
        " that your message could not\nbe delivered to one or more recipients. It's attached"
        " below.\n\n                   The mail system\n\n<old.address@customer.example>: host"
        " mx.customer.example[203.0.113.25] said:\n    550 5.1.1 User unknown (in reply to"
        " RCPT TO command)",
        "mailer-daemon@mx.shop.example",
        None,
        "Undelivered Mail Returned to Sender",
        attachments=(
            ("delivery-status.txt", "message/delivery-status", 219, ATTACHMENT, None),
            ("headers.txt", "text/rfc822-headers", 219, ATTACHMENT, None),
        ),
        automated=True,
    ),
]


@pytest.mark.parametrize("expected", MESSAGES, ids=lambda stored: stored.file)
def test_corpus_mail_is_stored_as_its_client_wrote_it(expected: Stored) -> None:
    """Text (new words only, decoded), sender, thread, attachments (names, types, sizes,
    roles), flag and subject, exactly; the original source always kept as ``ORIGINAL``."""
    raw = corpus(expected.file)
    message = only_message(raw)
    assert message.text == expected.text
    assert message.sender == expected.sender
    assert message.sender_name == expected.sender_name
    assert message.thread is not None
    assert message.thread.refs == expected.refs
    assert message.thread.participants == expected.participants
    assert message.automated is expected.automated
    assert message.reply_to == expected.reply_to
    *attachments, original = message.media
    assert all(isinstance(item, Attachment) for item in message.media)
    assert [
        (item.filename, item.content_type, len(item.content), item.role, item.content_id)
        for item in attachments
        if isinstance(item, Attachment)
    ] == list(expected.attachments)
    assert original == Attachment(raw, "message/rfc822", "original.eml", MediaRole.ORIGINAL)
    email = message.metadata["email"]
    assert email["subject"] == expected.subject
    assert email["html"] is expected.html
    assert message.provider_message_id == email["message_id"]


@pytest.mark.parametrize(
    ("file", "status", "message_id", "error_code"),
    [
        ("postfix_bounce.eml", DeliveryStatus.FAILED, "msg_06jz8d5e6f7g8h9j0k1m2n3p4q", "5.1.1"),
        ("read_receipt.eml", DeliveryStatus.READ, "msg_06jz7c4d5e6f7g8h9j0k1m2n3p", None),
    ],
)
def test_corpus_reports_on_our_mail_become_its_status_only(
    file: str, status: DeliveryStatus, message_id: str, error_code: str | None
) -> None:
    """A bounce or read receipt of one of our mails is a status of that message, naming it
    by our Message-ID, and not a customer message."""
    result = mail_result(corpus(file), SETTINGS)
    assert result.messages == ()
    (update,) = result.statuses
    assert update.status is status
    assert update.message_id == message_id
    assert update.provider_message_id == f"{message_id}@shop.example"
    assert update.error_code == error_code


def test_corpus_delay_warning_changes_nothing() -> None:
    """Postfix's "still being retried" warning neither fails the message nor is stored."""
    assert mail_result(corpus("postfix_delayed.eml"), SETTINGS) == WebhookResult()


def outcome(result: WebhookResult) -> list[object]:
    found: list[object] = [(s.status, s.message_id, s.error_code) for s in result.statuses]
    for message in result.messages:
        found.append((message.text, message.sender, message.thread, message.automated))
        found.extend(
            (item.filename, item.content_type, item.role)
            for item in message.media
            if isinstance(item, Attachment)
        )
    return found


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.eml")), ids=lambda path: path.name)
def test_corpus_reads_the_same_with_crlf_line_ends(path: Path) -> None:
    """Mail on the wire has CRLF line ends, mail in files often LF: same result."""
    lf = path.read_bytes()
    crlf = lf.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    assert outcome(mail_result(crlf, SETTINGS)) == outcome(mail_result(lf, SETTINGS))


def test_corpus_index_names_every_file() -> None:
    """corpus/README.md describes each .eml, and names no file that is not there."""
    index = (CORPUS / "README.md").read_text()
    named = {word.strip("`") for word in index.split() if word.strip("`").endswith(".eml")}
    assert named == {path.name for path in CORPUS.glob("*.eml")}


# the source -----------------------------------------------------------------------------


def test_mail_over_the_size_limit_is_refused() -> None:
    """Larger than EMAIL_MAX_MESSAGE_BYTES: InvalidInput naming the limit (bytes or file)."""
    limited = settings(EMAIL_MAX_MESSAGE_BYTES="2048")
    big = mail("", "x" * 4096)
    with pytest.raises(InvalidInput, match="2048"):
        mail_result(big, limited)
    with tempfile.SpooledTemporaryFile() as spooled:
        spooled.write(big)
        spooled.seek(0)
        with pytest.raises(InvalidInput, match="EMAIL_MAX_MESSAGE_BYTES"):
            mail_result(cast(BinaryIO, spooled), limited)


def test_a_file_source_is_read_like_bytes() -> None:
    """The webhook's spooled body file gives the same message as the bytes."""
    raw = corpus("pdf_attachment.eml")
    with tempfile.SpooledTemporaryFile(max_size=1024) as spooled:
        spooled.write(raw)
        spooled.seek(0)
        assert mail_result(cast(BinaryIO, spooled), SETTINGS) == mail_result(raw, SETTINGS)


@pytest.mark.parametrize("raw", [b"", b"\r\n\r\n  ", b"not a mail at all", b"From: nobody\n\nhi"])
def test_empty_or_senderless_mail_is_invalid_input(raw: bytes) -> None:
    """Nothing, or no address to file it under: a 400, never a crash."""
    with pytest.raises(InvalidInput):
        mail_result(raw, SETTINGS)


def test_sender_falls_back_to_sender_and_reply_to_headers() -> None:
    """No usable From: the Sender header, then Reply-To."""
    message = only_message(mail("From: undisclosed\nSender: Desk <desk@customer.example>"))
    assert message.sender == "desk@customer.example"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("victim@customer.example <attacker@evil.example>", "attacker@evil.example"),
        ('"victim@customer.example" <attacker@evil.example>', "attacker@evil.example"),
        ("<attacker@evil.example>victim@customer.example", "attacker@evil.example"),
        ("Doe, Jane <jane@customer.example>", "jane@customer.example"),
        # brackets inside a comment or a quoted string are not the mailbox's
        ("attacker@evil.example (<victim@customer.example>) junk", "attacker@evil.example"),
        ("attacker@evil.example (Foo <victim@customer.example>", "attacker@evil.example"),
        ('"Jo <jo@old.example>" <jo@new.example> x', "jo@new.example"),
    ],
)
def test_the_sender_is_the_address_in_angle_brackets(header: str, expected: str) -> None:
    """An address written as a display name, or beside the mailbox outside its brackets, is
    not the sender: the address in angle brackets is (the one mail clients show and DMARC
    checks), so nobody passes for a customer by writing their address as a name; and
    brackets inside a comment or a quoted name are not a mailbox either."""
    assert only_message(mail(f"From: {header}")).sender == expected


def test_brackets_in_a_quoted_string_are_not_the_sender() -> None:
    """``"<victim@...>" attacker@evil``: the quoted text is part of the attacker's address
    as the parser reads it, never the victim's address."""
    sender = only_message(mail('From: "<victim@customer.example>" attacker@evil.example')).sender
    assert sender.endswith("@evil.example") and not sender.startswith("victim@")


def test_a_bracketed_sender_keeps_the_name_written_before_it() -> None:
    """A header the parser reads with a defect still gives the sender's name."""
    message = only_message(mail("From: Jane Doe [Sales] <jane@customer.example>"))
    assert (message.sender, message.sender_name) == ("jane@customer.example", "Jane Doe [Sales]")


def test_a_from_of_several_mailboxes_needs_a_sender() -> None:
    """Several authors in From: the Sender header says who sent it; without one the mail is
    refused (400), never filed under one of them at a guess."""
    several = "From: victim@customer.example, attacker@evil.example"
    with pytest.raises(InvalidInput, match="several mailboxes"):
        mail_result(mail(several), SETTINGS)
    signed = only_message(mail(f"{several}\nSender: Desk <desk@customer.example>"))
    assert signed.sender == "desk@customer.example"


# ids, thread, dates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("<CAJ7w3mQ=g+X@Mail.Gmail.COM>", "CAJ7w3mQ=g+X@Mail.Gmail.COM"),  # case kept
        ("  <abc@x.example> (comment)", "abc@x.example"),
        ("bare-id@x.example", "bare-id@x.example"),
        ("<folded\n id@x.example>", "foldedid@x.example"),
        ("<café-1@example.org>", "café-1@example.org"),  # RFC 6532: the customer cites it so
    ],
)
def test_provider_message_id_is_the_message_id_as_written(header: str, expected: str) -> None:
    """Brackets stripped, case and characters (UTF-8 too) kept, a folding space inside
    removed."""
    raw = mail(f"Message-ID: {header}")
    assert provider_message_id(parse_mail(raw), raw) == expected


@pytest.mark.parametrize(
    "header",
    ["-", "<>", "no id here", f"<{'x' * 600}@x.example>", "<a\x01b@x.example>", "a\x7fb@x.example"],
)
def test_mail_without_a_usable_message_id_is_known_by_its_hash(header: str) -> None:
    """No Message-ID (or an empty, unusable, overlong one, or one with a control
    character): ``sha256:`` of the bytes, so the same mail fetched twice is still stored
    once."""
    raw = mail(f"Message-ID: {header}")
    message = only_message(raw)
    assert message.provider_message_id == "sha256:" + hashlib.sha256(raw).hexdigest()


def test_thread_refs_are_in_reply_to_then_references_from_the_last() -> None:
    """Nearest first, brackets stripped, deduped, the mail's own id and ids with a control
    or format character left out."""
    raw = mail(
        "Message-ID: <self@x.example>\nIn-Reply-To: <c@x.example> (Support's message)\n"
        "References: <a@x.example> <b@x.example>\n <c@x.example> <self@x.example>"
    )
    assert thread_refs(parse_mail(raw)) == ("c@x.example", "b@x.example", "a@x.example")
    hostile = mail("References: <a@x.example> <b\x00@x.example> <c\u200b@x.example>")
    assert thread_refs(parse_mail(hostile)) == ("a@x.example",)
    email = only_message(raw).metadata["email"]
    assert email["references"] == ["a@x.example", "b@x.example", "c@x.example", "self@x.example"]
    assert email["in_reply_to"] == "c@x.example"


def test_participants_are_to_cc_and_reply_to_less_ours_and_the_sender() -> None:
    """Lower-cased, deduped, in order; the business's and the sender's own left out."""
    message = only_message(
        mail(
            "From: Jane <JANE@Customer.example>\nTo: Support <SUPPORT@shop.example>,"
            ' Bob <Bob@Customer.example>\nCc: jane@customer.example, "Ann, B" <ann@b.example>,'
            " bob@customer.example"
        )
    )
    assert message.sender == "jane@customer.example"
    assert message.thread is not None
    assert message.thread.participants == ("bob@customer.example", "ann@b.example")
    assert message.metadata["email"]["cc"] == [
        "jane@customer.example",
        '"Ann, B" <ann@b.example>',
        "bob@customer.example",
    ]


def test_reply_to_another_address_is_where_answers_go() -> None:
    """A Reply-To other than the sender (a web form's) is ``reply_to`` and a participant;
    one that is the sender's own is not."""
    message = only_message(mail("Reply-To: Real Person <real@customer.example>"))
    assert message.reply_to == "real@customer.example"
    assert only_message(mail("Reply-To: JANE@customer.example")).reply_to is None


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 5 Mar 2024 10:00:00 +0100", datetime(2024, 3, 5, 9, 0, tzinfo=UTC)),
        ("Tue, 5 Mar 2024 10:00:00 -0000", datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
        ("Tue, 5 Mar 2024 10:00:00 GMT", datetime(2024, 3, 5, 10, 0, tzinfo=UTC)),
        ("yesterday-ish", None),
        ("Tue, 5 Mar 2024 25:99:00 +0100", None),
        ("-", None),
    ],
)
def test_sent_at_is_the_date_header_when_it_parses(header: str, expected: datetime | None) -> None:
    """An aware datetime (``-0000`` read as UTC); an unparsable or missing Date is None."""
    sent_at = only_message(mail(f"Date: {header}")).sent_at
    assert sent_at == expected
    assert sent_at is None or sent_at.tzinfo is not None


def test_a_corpus_date_keeps_its_offset() -> None:
    """The sender's own offset is kept (the store converts)."""
    sent_at = only_message(corpus("iphone_reply.eml")).sent_at
    assert sent_at == datetime(2024, 3, 8, 9, 41, 37, tzinfo=timezone(timedelta(hours=-5)))


def test_our_own_mail_coming_back_is_dropped() -> None:
    """From our address with one of our Message-IDs (a copy the mailbox got): nothing."""
    raw = mail(
        f"From: Shop <{OWN_ADDRESS}>\nMessage-ID: <msg_06jz3k9v7q2m4t8w1b5c0d6e9f@shop.example>"
    )
    assert mail_result(raw, SETTINGS) == WebhookResult()


def test_a_list_rewritten_from_is_read_from_x_original_from() -> None:
    """Google Groups' "'Jane' via Support" From: the sender is X-Original-From."""
    message = only_message(corpus("google_groups.eml"))
    assert message.sender == "marta.silva@outlook.example"
    assert message.metadata["email"]["from"] == "Marta Silva <marta.silva@outlook.example>"


def test_x_original_from_is_trusted_only_when_from_is_our_own_address() -> None:
    """Anyone can write List-Id and X-Original-From: a stranger's mail claiming to be from
    a customer is stored under the stranger's own address, list header or not. Only when
    From is the business's own address (the support address is a Google Group, which
    rewrites From to itself) is X-Original-From who wrote (its case aside)."""
    attack = mail(
        "From: Mallory <attacker@evil.org>\nList-Id: <x.evil.org>\n"
        "X-Original-From: Victim <victim@example.org>"
    )
    message = only_message(attack)
    assert message.sender == "attacker@evil.org"
    assert message.sender_name == "Mallory"
    assert message.metadata["email"]["from"] == "Mallory <attacker@evil.org>"
    no_list = only_message(mail("From: attacker@evil.org\nX-Original-From: victim@example.org"))
    assert no_list.sender == "attacker@evil.org"
    group = mail(
        "From: \"'Victim' via Support\" <Support@Shop.Example>\n"
        "X-Original-From: Victim <Victim@Example.org>"
    )
    assert only_message(group).sender == "victim@example.org"
    unconfigured = settings(EMAIL_FROM_ADDRESS="")  # receiving only: no own address to match
    assert only_message(group, unconfigured).sender == OWN_ADDRESS


# attachments ----------------------------------------------------------------------------


def multipart(*parts: str, kind: str = "mixed") -> bytes:
    body = "".join(f"--b\n{part}\n" for part in parts) + "--b--\n"
    return mail(f'Content-Type: multipart/{kind}; boundary="b"\nMIME-Version: 1.0', body)


def attachments(raw: bytes) -> list[Attachment]:
    media = only_message(raw).media
    return [item for item in media if isinstance(item, Attachment) and item.role != "original"]


def test_file_names_are_decoded_and_made_safe() -> None:
    """RFC 2231 and encoded-word names decode; folders and control characters go."""
    found = attachments(
        multipart(
            "Content-Type: text/plain\n\nSee files",
            "Content-Type: application/octet-stream\nContent-Disposition: attachment;"
            " filename*=UTF-8''%C3%A9t%C3%A9%20report.bin\n\nAAA",
            'Content-Type: application/octet-stream; name="..\\\\..\\\\evil.exe"\n\nBBB',
            "Content-Type: application/octet-stream\nContent-Disposition: attachment;"
            ' filename="../../etc/pass\x07wd"\n\nCCC',
            "Content-Type: text/plain\nContent-Disposition: attachment;"
            ' filename="=?utf-8?q?notes_=C3=A0_lire.txt?="\n\nDDD',
        )
    )
    assert [item.filename for item in found] == [
        "\u00e9t\u00e9 report.bin",
        "evil.exe",
        "passwd",
        "notes \u00e0 lire.txt",
    ]


def test_empty_parts_and_signatures_are_not_attachments() -> None:
    """An empty part and an S/MIME or PGP signature are not kept as files."""
    found = attachments(
        multipart(
            "Content-Type: text/plain\n\nSigned",
            "Content-Type: application/pdf\nContent-Disposition: attachment; filename=a.pdf\n\n",
            "Content-Type: application/pkcs7-signature; name=smime.p7s\n\nMIAGCSqGSIb3",
            "Content-Type: application/pgp-signature\n\n-----BEGIN PGP SIGNATURE-----",
            kind="signed",
        )
    )
    assert found == []


def test_an_attached_mail_is_kept_whole() -> None:
    """Outlook's "forward as attachment": the enclosed mail is an attachment, its text
    not mixed into the message's."""
    raw = multipart(
        "Content-Type: text/plain\n\nSee the attached mail.",
        'Content-Type: message/rfc822\nContent-Disposition: attachment; filename="Fwd.eml"\n\n'
        "From: a@b.example\nSubject: Inner\n\nInner body",
    )
    message = only_message(raw)
    assert message.text == "See the attached mail."
    (enclosed,) = attachments(raw)
    assert (enclosed.filename, enclosed.content_type) == ("Fwd.eml", "message/rfc822")
    assert b"Subject: Inner" in enclosed.content
    assert b"Inner body" in enclosed.content


def test_an_image_with_a_content_id_is_inline_unless_attached() -> None:
    """A Content-ID image in the body is INLINE (with its id); one marked attachment (Gmail
    gives every attachment a Content-ID) is a plain ATTACHMENT."""
    found = attachments(
        multipart(
            'Content-Type: text/html\n\n<img src="cid:logo">',
            "Content-Type: image/png\nContent-ID: <logo>\nContent-Transfer-Encoding: base64\n\n"
            "iVBORw0KGgo=",
            "Content-Type: image/jpeg; name=photo.jpg\nContent-Disposition: attachment;"
            " filename=photo.jpg\nContent-ID: <f_123>\n\n/9j/",
        )
    )
    assert [(item.filename, item.role, item.content_id) for item in found] == [
        ("inline-image.png", INLINE, "logo"),
        ("photo.jpg", ATTACHMENT, None),
    ]


def test_an_ics_file_is_kept_as_a_calendar() -> None:
    """``application/ics`` (a synonym some senders use) is kept as ``text/calendar``."""
    (invite,) = attachments(
        multipart(
            "Content-Type: text/plain\n\nInvite attached",
            "Content-Type: application/ics; name=invite.ics\n\nBEGIN:VCALENDAR\nEND:VCALENDAR",
        )
    )
    assert (invite.filename, invite.content_type) == ("invite.ics", "text/calendar")


def test_the_number_of_attachments_is_capped() -> None:
    """A mail of thousands of parts keeps MAX_ATTACHMENTS files and says how many it left
    out (all of them stay in the original)."""
    parts = [
        f"Content-Type: application/octet-stream; name=f{i}.bin\n\npart {i}" for i in range(150)
    ]
    raw = multipart("Content-Type: text/plain\n\nMany", *parts)
    assert len(attachments(raw)) == MAX_ATTACHMENTS
    assert only_message(raw).metadata["email"]["parts_left_out"] == 150 - MAX_ATTACHMENTS


def test_deeply_nested_mime_is_bounded() -> None:
    """Parts nested deeper than the parser follows are left out, without a crash."""
    depth = 60
    body = "--b0\n" + "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\n\n--b{i}\n' for i in range(1, depth)
    )
    body += "Content-Type: text/plain\n\ndeep text\n"
    body += "".join(f"--b{i}--\n" for i in reversed(range(depth)))
    message = only_message(
        mail('MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b0"', body)
    )
    assert message.text is None
    assert message.metadata["email"]["parts_left_out"] == 1


def test_a_mail_of_too_many_parts_is_kept_unread() -> None:
    """More MIME parts than MAX_PARTS: stored from its headers (sender, subject, thread),
    no text, its source as the original, the parts counted as left out."""
    raw = multipart(*["Content-Type: text/plain\n\nx"] * (MAX_PARTS + 1))
    message = only_message(raw)
    assert message.text is None
    assert message.sender == "jane@customer.example"
    assert [item.role for item in message.media] == [MediaRole.ORIGINAL]
    assert message.metadata["email"]["parts_left_out"] == MAX_PARTS + 2


def test_delimiters_after_a_lone_cr_count_as_parts_too() -> None:
    """The parser ends a line at a lone CR as at LF: a mail of 20,000 parts written with CR
    line ends (4.6 s of the parser's alone) is kept unread like any of too many parts."""
    raw = multipart(*["Content-Type: text/plain\n\nx"] * 20_000).replace(b"\n", b"\r")
    started = time.monotonic()
    message = only_message(raw)
    assert time.monotonic() - started < 10
    assert message.text is None
    assert message.sender == "jane@customer.example"
    assert message.metadata["email"]["parts_left_out"] == 20_001


def test_a_multipart_without_its_boundary_still_has_its_text() -> None:
    """A multipart whose boundary is missing: its content read as the text."""
    message = only_message(mail("Content-Type: multipart/mixed\nMIME-Version: 1.0", "Just text"))
    assert message.text == "Just text"


# automated mail -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ("Auto-Submitted: auto-replied", True),
        ("Auto-Submitted: auto-generated; owner-email=x@y.example", True),
        ("Auto-Submitted: no", False),
        ("Precedence: bulk", True),
        ("Precedence: auto_reply", True),
        ("Precedence: list", True),
        ("Precedence: junk", True),
        ("Precedence: first-class", False),
        ("X-Autoreply: yes", True),
        ("X-Autorespond: Out of office", True),
        ("X-Autogenerated: Reply", True),
        ("List-Id: <news.shop-partner.example>", True),
        ("List-Unsubscribe: <mailto:unsubscribe@news.example>", True),
        ("X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent", True),
        ("X-MS-Exchange-Inbox-Rules-Loop: jane@customer.example", True),
        ("Return-Path: <>", True),
        ("Return-Path: <jane@customer.example>", False),
        # Exchange Online stamps this on mail people write: no sign of a robot by itself
        ("X-Auto-Response-Suppress: DR, RN, NRN, OOF, AutoReply", False),
        # the support address is itself a list (a Google Group): its markers are not
        (f"Precedence: list\nList-Id: <support.shop.example>\nList-Post: <mailto:{OWN_ADDRESS}>",
         False),
        ("", False),
    ],
)  # fmt: skip
def test_automated_mail_is_flagged_by_its_headers(headers: str, expected: bool) -> None:
    """RFC 3834's and the big senders' markers flag a mail as automated; the ones people's
    own mail carries do not."""
    message = parse_mail(mail(headers))
    sender = Mailbox("Jane", "jane@customer.example")
    assert is_automated(message, sender, OWN_ADDRESS) is expected


@pytest.mark.parametrize(
    "address",
    ["MAILER-DAEMON@mx.example", "postmaster@x.example", "noreply@x.example",
     "no-reply+tag@x.example", "do_not_reply@x.example", "donotreply@x.example"],
)  # fmt: skip
def test_machine_senders_are_flagged(address: str) -> None:
    """Mail from a mailer-daemon, postmaster or no-reply address is automated."""
    assert only_message(mail(f"From: {address}")).automated


# hostile input --------------------------------------------------------------------------


HOSTILE_HEADERS = [
    f"From: {'A' * 200_000} <jane@customer.example>",  # a quadratic regex took 6 minutes
    "To: " + ", ".join(f"User {i} <user{i}@x.example>" for i in range(20_000)),
    "References: " + " ".join(f"<id{i}@x.example>" for i in range(100_000)),
    "Subject: " + "=?utf-8?q?a?= " * 50_000,
]


@pytest.mark.parametrize("header", HOSTILE_HEADERS, ids=["name", "to", "references", "subject"])
def test_hostile_headers_are_read_in_bounded_time(header: str) -> None:
    """Headers of hundreds of kilobytes are read in well under the ten seconds allowed
    here (the parsers see a bounded slice; what is kept is capped)."""
    head, _, body = mail(f"{header.partition(':')[0]}: -").partition(b"\n\n")
    raw = head + b"\n" + header.encode() + b"\n\n" + body
    started = time.monotonic()
    message = only_message(raw)
    assert time.monotonic() - started < 10
    assert message.thread is not None
    assert len(message.thread.refs) <= 100
    assert len(message.thread.participants) <= 100
    assert message.sender_name is None or len(message.sender_name) <= 256


FLOOD_BYTES = 16 * 1024 * 1024
"""Sixteen megabytes of tiny header lines: 10 to 20 s of CPU before the header block was
bounded (25 MB: up to 80 s), from any sender on the internet."""


def flooded(shape: str) -> bytes:
    """A mail of :data:`FLOOD_BYTES` of tiny header lines in ``shape``; ``-900k``: of
    900,000 lines only (fewer than MAX_LINES: the parts' header lines are what bounds it)."""
    flood = "X: y\n" * (900_000 if shape.endswith("-900k") else FLOOD_BYTES // 5)
    if shape == "top":  # the mail's own header block, the headers read after it
        return flood.encode() + mail("Auto-Submitted: auto-replied\nList-Id: <x.evil.org>")
    if shape == "top-cr":  # lone CR line ends, which the parser splits lines on too
        cr = flood.replace("\n", "\r").encode()
        return mail("", "Hi").replace(b"\n", b"\r", 3).replace(b"\r", b"\r" + cr, 1)
    if shape == "folded":  # one header the channel reads, folded over millions of lines
        folded = b"\nTo: a@b.example\n" + b" y\n" * (FLOOD_BYTES // 3) + b"To:"
        return mail("", "Hi").replace(b"\nTo:", folded, 1)
    if shape in ("part", "part-900k"):  # a part's header block
        return multipart(f"Content-Type: text/plain\n{flood}\nHello")
    if shape == "message":  # the mail's body is a mail: its header block, after a blank line
        return mail("Content-Type: message/rfc822", flood)
    if shape in ("attached", "attached-900k"):  # an attached mail's (read: 9 s at 900k)
        attached = f"Content-Type: message/rfc822\n\n{flood}"
        return multipart("Content-Type: text/plain\n\nHi", attached)
    raise AssertionError(shape)


@pytest.mark.parametrize(
    "shape",
    ["top", "top-cr", "folded", "part", "message", "attached", "part-900k", "attached-900k"],
)
def test_a_mail_of_millions_of_header_lines_is_read_in_bounded_time(shape: str) -> None:
    """A header block (the mail's, a part's or an attached mail's) of more than
    MAX_HEADER_LINES lines is not handed to the stdlib's parser: the mail is stored from
    the headers the channel reads (however far down they are), with no text and its
    source as the original, in a fraction of the ten seconds allowed here."""
    raw = flooded(shape)
    started = time.monotonic()
    message = only_message(raw, settings(EMAIL_MAX_MESSAGE_BYTES=str(32 * 1024 * 1024)))
    assert time.monotonic() - started < 10
    assert message.sender == "jane@customer.example"
    assert message.metadata["email"]["subject"] == "Question"
    assert message.provider_message_id == "q1@customer.example"
    assert message.text is None
    assert [item.role for item in message.media] == [MediaRole.ORIGINAL]
    assert message.metadata["email"]["parts_left_out"] >= 1
    if shape == "top":
        assert message.automated
        assert message.metadata["email"]["headers_left_out"] == FLOOD_BYTES // 5


@pytest.mark.parametrize("line", [b"\n", b"\r\n", b"\r", b"a\n", b"> a\n"])
def test_a_mail_of_millions_of_short_lines_is_kept_unread_in_bounded_time(line: bytes) -> None:
    """A body of more than MAX_LINES tiny lines (the parser takes a fifth of a microsecond a
    line: 25 MB of empty lines took seven seconds) is kept unread, in a fraction of the ten
    seconds allowed here."""
    raw = mail("", "") + line * (FLOOD_BYTES // len(line))
    started = time.monotonic()
    message = only_message(raw, settings(EMAIL_MAX_MESSAGE_BYTES=str(32 * 1024 * 1024)))
    assert time.monotonic() - started < 10
    assert message.sender == "jane@customer.example"
    assert message.text is None
    assert message.metadata["email"]["parts_left_out"] == 1


def test_a_large_attachment_of_many_lines_is_read() -> None:
    """Base64 lines are long: a mail of 20 MB of attachment (270,000 lines) is read."""
    data = (b"QUJD" * 19 + b"\n") * (20 * 1024 * 1024 // 77)
    pdf = b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\n" + data
    raw = multipart("Content-Type: text/plain\n\nSee attached", "PDF").replace(b"PDF", pdf)
    message = only_message(raw, settings(EMAIL_MAX_MESSAGE_BYTES=str(32 * 1024 * 1024)))
    assert message.text == "See attached"
    [attachment, _] = message.media
    assert isinstance(attachment, Attachment) and attachment.content_type == "application/pdf"


def test_a_header_block_under_the_limits_is_read_whole() -> None:
    """A few thousand header lines (a long Received trail, a mail loop) are still read as
    any mail: text, headers and all."""
    trail = "".join(f"Received: from hop{n}.example by mx.example\n" for n in range(4000))
    message = only_message(trail.encode() + mail("", "Hello there"))
    assert message.text == "Hello there"
    assert "headers_left_out" not in message.metadata["email"]


def test_mangled_mail_never_crashes() -> None:
    """Corpus mails with bytes flipped, cut short or spliced together: a result or
    InvalidInput, never another exception (200 rounds, fixed seed)."""
    generator = random.Random(14)
    sources = [path.read_bytes() for path in sorted(CORPUS.glob("*.eml"))]
    noise = [b"\x00", b"\xff", b"=", b"=?", b"?=", b"<", b">", b"\n", b"\r\n", b"--", b";", b'"']
    for _ in range(200):
        data = bytearray(generator.choice(sources))
        for _ in range(generator.randint(1, 12)):
            action = generator.randrange(3)
            at = generator.randrange(len(data))
            if action == 0:
                data[at : at + generator.randint(1, 40)] = generator.choice(noise)
            elif action == 1:
                del data[at:]
                data += generator.choice(sources)[generator.randrange(400) :]
            else:
                data.insert(at, generator.randrange(256))
        try:
            result = mail_result(bytes(data), SETTINGS)
        except InvalidInput:
            continue
        assert isinstance(result, WebhookResult)
