"""Answers by email through the real server to a real SMTP server (aiosmtpd, STARTTLS and AUTH
required): what the server receives, the threading headers, and what the outbox does with
the SMTP server's answers (4xx retried, 5xx failed with its code and text, a connection lost
after the body left in doubt, never sent twice)."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from concurrent.futures import ThreadPoolExecutor
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.utils import parsedate_to_datetime
from types import SimpleNamespace

import httpx
import pytest
from omnichannel_email.compose import Envelope, build_mail, recipient_of
from omnichannel_email.templates import Bodies
from omnichannel_email.thread_headers import (
    MAX_THREAD_MESSAGES,
    REFERENCES_KEPT_AT_END,
    THREAD_PAGE,
    earlier_messages,
    subject_of,
    thread_ids,
)
from smtp_server import (
    FROM_ADDRESS,
    FROM_NAME,
    INBOUND_SECRET,
    MESSAGE_ID_DOMAIN,
    USERNAME,
    Answer,
    Received,
    SmtpServer,
    email_env,
    serving,
)

from omnichannel_core.channel import Message, OutboundMessage, SendFailed
from omnichannel_core.testing.inbox_reader import InboxReader
from omnichannel_core.testing.server import ServerProcess

SEND = "/api/channels/email/messages"
WAIT = {"Prefer": "wait=10"}
_numbers = itertools.count(1)


def unique_address() -> str:
    """A customer address no other test mails (the SMTP server is shared by the run)."""
    return f"customer{next(_numbers)}.{time.monotonic_ns()}@example.org"


def message_when(client: httpx.Client, message_id: str, done, seconds: float = 10.0) -> dict:
    """``GET /api/messages/{id}`` until ``done`` says yes of it."""
    deadline = time.monotonic() + seconds
    while True:
        message = client.get(f"/api/messages/{message_id}").json()
        if done(message):
            return message
        assert time.monotonic() < deadline, f"after {seconds}s the message is {message}"
        time.sleep(0.05)


def accepted(smtp: SmtpServer, to: str, count: int = 1) -> list[Received]:
    """The mails to ``to`` the SMTP server took (answered 250), once there are ``count``."""
    deadline = time.monotonic() + 10
    while True:
        mails = [mail for mail in smtp.mails_to(to) if mail.answered.startswith("250")]
        if len(mails) >= count:
            return mails
        assert time.monotonic() < deadline, f"{len(mails)} mails taken for {to}"
        time.sleep(0.05)


def send(client: httpx.Client, to: str, text: str, **metadata) -> dict:
    """Start a conversation with ``to`` (an agent-started mail), once the server took it."""
    body = {"to": to, "text": text, "metadata": {"email": metadata} if metadata else {}}
    response = client.post(SEND, json=body, headers=WAIT)
    assert response.status_code == 201, response.text
    return response.json()


def reply(client: httpx.Client, conversation_id: str, text: str, **body) -> httpx.Response:
    return client.post(
        f"/api/conversations/{conversation_id}/messages",
        json={"text": text, **body},
        headers=WAIT,
    )


@pytest.fixture
def client(email_server: ServerProcess):
    with email_server.client() as client:
        yield client


def test_answer_goes_over_starttls_with_login_and_our_headers(client, smtp: SmtpServer):
    """A send is submitted once, over STARTTLS after AUTH with the configured login, from
    EMAIL_FROM_ADDRESS to the customer, with From (name and address), To, the given Subject,
    a Date, and the Message-ID <message id@domain> that is also the message's provider id;
    no In-Reply-To or References on a first mail, no Auto-Submitted on an agent's."""
    to = unique_address()
    message = send(client, to, "Your order shipped.", subject="Order 1042")
    assert message["provider_message_id"] == f"{message['id']}@{MESSAGE_ID_DOMAIN}"
    assert (message["status"], message["attempts"]) == ("sent", 1)

    [mail] = accepted(smtp, to)
    assert (mail.tls, mail.login, mail.mail_from) == (True, USERNAME, FROM_ADDRESS)
    headers = mail.message
    assert headers["From"] == f"{FROM_NAME} <{FROM_ADDRESS}>"
    assert headers["To"] == to
    assert headers["Subject"] == "Order 1042"
    assert headers["Message-ID"] == f"<{message['id']}@{MESSAGE_ID_DOMAIN}>"
    assert parsedate_to_datetime(headers["Date"]).tzinfo is not None
    for absent in ("In-Reply-To", "References", "Auto-Submitted"):
        assert headers[absent] is None, absent


def test_answer_is_plain_text_and_html(client, smtp: SmtpServer):
    """The mail is multipart/alternative: the text as typed (then the signature: "-- " and
    EMAIL_FROM_NAME), and HTML with the text escaped, a paragraph per blank line and a <br>
    per newline."""
    to = unique_address()
    send(client, to, "Hello Ana,\nyour order <1042> shipped.\n\nBest & thanks")
    [mail] = accepted(smtp, to)
    assert mail.message.get_content_type() == "multipart/alternative"
    text, html = mail.body("plain"), mail.body("html")
    assert "Hello Ana,\nyour order <1042> shipped.\n\nBest & thanks" in text
    assert text.rstrip().endswith(f"-- \n{FROM_NAME}")
    assert "<p>Hello Ana,<br>\nyour order &lt;1042&gt; shipped.</p>" in html
    assert "<p>Best &amp; thanks</p>" in html


def test_first_mail_without_subject_has_the_default_subject(client, smtp: SmtpServer):
    """A mail that starts a thread without metadata.email.subject is sent with
    EMAIL_DEFAULT_SUBJECT ("Your message")."""
    to = unique_address()
    send(client, to, "Hello")
    [mail] = accepted(smtp, to)
    assert mail.message["Subject"] == "Your message"


def test_replies_thread_on_the_earlier_mails(client, smtp: SmtpServer):
    """Each answer in a conversation replies to the latest earlier mail (In-Reply-To) and
    cites every earlier one in order (References), with "Re: " and the thread's subject,
    never "Re: Re: "."""
    to = unique_address()
    first = send(client, to, "Your order shipped.", subject="Order 1042")
    conversation = first["conversation_id"]
    second = reply(client, conversation, "Tracking: 1Z999")
    assert second.status_code == 201, second.text
    third = reply(client, conversation, "Delivered today")
    assert third.status_code == 201, third.text

    ids = [f"<{m['id']}@{MESSAGE_ID_DOMAIN}>" for m in (first, second.json(), third.json())]
    mails = {mail.message["Message-ID"]: mail.message for mail in accepted(smtp, to, 3)}
    assert mails[ids[1]]["In-Reply-To"] == ids[0]
    assert mails[ids[1]]["References"] == ids[0]
    assert mails[ids[1]]["Subject"] == "Re: Order 1042"
    assert mails[ids[2]]["In-Reply-To"] == ids[1]
    assert mails[ids[2]]["References"].split() == ids[:2]
    assert mails[ids[2]]["Subject"] == "Re: Order 1042"


def test_a_subject_of_its_own_is_kept_and_then_answered(client, smtp: SmtpServer):
    """An answer with its own subject keeps it as is ("Re: ..." included, never doubled);
    the next answer without one answers that subject."""
    to = unique_address()
    first = send(client, to, "Hello", subject="Re: Your question")
    second = reply(client, first["conversation_id"], "More", metadata={"email": {}})
    assert second.status_code == 201, second.text
    subjects = {mail.message["Subject"] for mail in accepted(smtp, to, 2)}
    assert subjects == {"Re: Your question"}


def test_automated_answer_says_so(client, smtp: SmtpServer):
    """A message flagged metadata.automated is sent with Auto-Submitted: auto-generated
    (RFC 3834), so the customer's auto-responder does not answer it."""
    to = unique_address()
    response = client.post(
        SEND, json={"to": to, "text": "We got your mail", "metadata": {"automated": True}}
    )
    assert response.status_code == 202, response.text
    [mail] = accepted(smtp, to)
    assert mail.message["Auto-Submitted"] == "auto-generated"


def test_temporary_refusals_are_retried_until_the_server_takes_it(client, smtp: SmtpServer):
    """A 451 to RCPT, then a 452 to the body: the outbox tries again (with backoff) and the
    third attempt is taken; the message ends sent, with one mail taken by the server."""
    to = unique_address()
    smtp.script(
        to,
        Answer.at_rcpt("451 4.3.0 Mailbox busy, try later"),
        Answer.at_data("452 4.3.1 Insufficient system storage"),
    )
    response = client.post(SEND, json={"to": to, "text": "Eventually"})
    assert response.status_code == 202, response.text
    message = message_when(client, response.json()["id"], lambda m: m["status"] == "sent")
    assert message["attempts"] == 3
    assert message["provider_message_id"] == f"{message['id']}@{MESSAGE_ID_DOMAIN}"
    assert len(accepted(smtp, to)) == 1


def test_permanent_refusal_fails_with_the_servers_code_and_text(client, smtp: SmtpServer):
    """A 550 5.1.1 to RCPT: 422 at once (with Prefer: wait), the message failed after one
    attempt with error_code "5.1.1" (the enhanced status, as a bounce gives it) and the
    server's text; nothing is sent."""
    to = unique_address()
    smtp.script(to, Answer.at_rcpt("550 5.1.1 <nobody@example.org>: Recipient address rejected"))
    response = client.post(SEND, json={"to": to, "text": "Hello?"}, headers=WAIT)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["code"] == "5.1.1"
    stored = body["stored_message"]
    assert (stored["status"], stored["attempts"], stored["error_code"]) == ("failed", 1, "5.1.1")
    assert "550 5.1.1 <nobody@example.org>: Recipient address rejected" in stored["error_message"]
    assert stored["error_details"]["smtp_code"] == 550
    assert accepted_count(smtp, to) == 0


def test_refusal_of_the_body_fails_without_enhanced_code(client, smtp: SmtpServer):
    """A 554 without an enhanced status to the mail's body: failed with error_code
    "smtp_554" and the server's text."""
    to = unique_address()
    smtp.script(to, Answer.at_data("554 Message rejected as spam"))
    response = client.post(SEND, json={"to": to, "text": "Buy now"}, headers=WAIT)
    assert response.status_code == 422, response.text
    stored = response.json()["stored_message"]
    assert stored["error_code"] == "smtp_554"
    assert "554 Message rejected as spam" in stored["error_message"]


def accepted_count(smtp: SmtpServer, to: str) -> int:
    return sum(mail.answered.startswith("250") for mail in smtp.mails_to(to))


def test_connection_lost_after_the_body_leaves_the_message_in_doubt(client, smtp: SmtpServer):
    """The server closes the connection once the body is in, without answering: the mail
    may have been taken, so the message stays "sending" and in doubt, and is never submitted
    again (SMTP does not dedupe: a second submission is a second mail)."""
    to = unique_address()
    smtp.script(to, Answer.dropped())
    response = client.post(SEND, json={"to": to, "text": "Did it arrive?"})
    assert response.status_code == 202, response.text
    message = message_when(client, response.json()["id"], lambda m: m["in_doubt"])
    assert (message["status"], message["attempts"]) == ("sending", 1)
    time.sleep(1.0)  # the backoff of a retry, several times over
    assert len(smtp.mails_to(to)) == 1
    assert client.get(f"/api/messages/{message['id']}").json()["attempts"] == 1


def test_non_ascii_domain_is_sent_in_idna(client, smtp: SmtpServer):
    """A recipient domain that is not ASCII is mailed as its IDNA form (xn--...), which
    every server takes, in the envelope and in To."""
    local = f"ana.{time.monotonic_ns()}"
    send(client, f"{local}@exämple.org", "Olá")
    [mail] = accepted(smtp, f"{local}@xn--exmple-cua.org")
    assert mail.message["To"] == f"{local}@xn--exmple-cua.org"


def test_agent_text_is_never_read_as_a_template(client, smtp: SmtpServer):
    """Template syntax in an agent's text reaches the customer as typed, in both bodies,
    escaped in the HTML: no template injection."""
    to = unique_address()
    send(client, to, "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %} <script>alert(1)</script>")
    [mail] = accepted(smtp, to)
    text = mail.body("plain")
    html = mail.body("html")
    assert "{{ 7 * 7 }} {% for x in range(3) %}x{% endfor %}" in text
    assert "49" not in text and "xxx" not in text
    assert "{{ 7 * 7 }}" in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>" not in html


def post_mail(client: httpx.Client, mail: bytes) -> None:
    """A customer's mail, posted to the raw MIME webhook as a mail provider would."""
    response = client.post(
        "/api/channels/email/webhook",
        content=mail,
        headers={
            "Content-Type": "message/rfc822",
            "Authorization": f"Bearer {INBOUND_SECRET}",
        },
    )
    assert response.status_code == 200, response.text


def customer_mail(sender: str, message_id: str, subject: str, text: str, **headers: str) -> bytes:
    lines = [
        f"From: Ana Lima <{sender}>",
        f"To: {FROM_NAME} <{FROM_ADDRESS}>",
        f"Subject: {subject}",
        "Date: Mon, 07 Dec 2026 09:00:00 +0100",
        f"Message-ID: <{message_id}>",
        *(f"{name.replace('_', '-')}: {value}" for name, value in headers.items()),
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
        "",
        text,
        "",
    ]
    return "\r\n".join(lines).encode()


def conversation_of(client: httpx.Client, provider_message_id: str) -> str:
    """The conversation holding the stored mail ``provider_message_id``."""
    [message] = InboxReader(client).messages_with_provider_id("email", provider_message_id)
    return message["conversation_id"]


def test_customer_mail_then_answer_threads_under_it(client, smtp: SmtpServer):
    """A customer's mail (itself an answer in a thread of their own) comes in by the webhook;
    the agent's answer replies to it (In-Reply-To), cites the customer's own References
    then their mail (References), and answers its subject."""
    sender = unique_address()
    root, theirs = f"root.{time.monotonic_ns()}@mail.test", f"q.{time.monotonic_ns()}@mail.test"
    post_mail(
        client,
        customer_mail(
            sender, theirs, "Where is my order?", "Hello, where is it?", References=f"<{root}>"
        ),
    )
    answer = reply(client, conversation_of(client, theirs), "On its way.")
    assert answer.status_code == 201, answer.text
    [mail] = accepted(smtp, sender)
    assert mail.message["In-Reply-To"] == f"<{theirs}>"
    assert mail.message["References"].split() == [f"<{root}>", f"<{theirs}>"]
    assert mail.message["Subject"] == "Re: Where is my order?"
    assert mail.message["To"] == sender


def test_customer_answer_to_an_agent_started_mail_continues_the_thread(client, smtp):
    """An agent starts a thread; the customer answers it (In-Reply-To our Message-ID): the
    answer joins that conversation, and the agent's next mail replies to it, citing both."""
    sender = unique_address()
    first = send(client, sender, "Your invoice is ready.", subject="Invoice 77")
    ours = first["provider_message_id"]
    theirs = f"a.{time.monotonic_ns()}@mail.test"
    post_mail(
        client,
        customer_mail(
            sender,
            theirs,
            "Re: Invoice 77",
            "Thanks, one question.",
            In_Reply_To=f"<{ours}>",
            References=f"<{ours}>",
        ),
    )
    assert conversation_of(client, theirs) == first["conversation_id"]
    answer = reply(client, first["conversation_id"], "Sure, ask away.")
    assert answer.status_code == 201, answer.text
    mails = {mail.message["Message-ID"]: mail.message for mail in accepted(smtp, sender, 2)}
    latest = mails[f"<{answer.json()['provider_message_id']}>"]
    assert latest["In-Reply-To"] == f"<{theirs}>"
    assert latest["References"].split() == [f"<{ours}>", f"<{theirs}>"]
    assert latest["Subject"] == "Re: Invoice 77"


def test_ids_that_are_not_printable_ascii_are_left_out_of_the_thread(client, smtp):
    """A customer whose mail client writes a Message-ID with an accent (and References
    with one, and a control character) is still answered: the reply goes out, threaded
    on the ids a header can carry, instead of failing on every answer in that thread."""
    sender, now = unique_address(), time.monotonic_ns()
    root, theirs = f"root.{now}@mail.test", f"q.{now}@mail.test"
    accented = f"café-1.{now}@example.org"
    post_mail(
        client,
        customer_mail(
            sender,
            theirs,
            "Order",
            "Where is it?",
            References=f"<rööt.{now}@example.org> <ctl\x01.{now}@mail.test> <{root}>",
        ),
    )
    post_mail(
        client,
        customer_mail(sender, accented, "Re: Order", "Any news?", In_Reply_To=f"<{theirs}>"),
    )
    conversation = conversation_of(client, theirs)
    assert conversation_of(client, accented) == conversation
    answer = reply(client, conversation, "It left today.")
    assert answer.status_code == 201, answer.text
    assert answer.json()["status"] == "sent", answer.json()
    [mail] = accepted(smtp, sender)
    assert mail.message["In-Reply-To"] == f"<{theirs}>"
    assert mail.message["References"].split() == [f"<{root}>", f"<{theirs}>"]


LONG_THREAD = 520
"""More customer mails than a page of the inbox many times over, and than the 500 messages
the thread was once read to (from the oldest)."""


def test_an_answer_in_a_long_conversation_replies_to_the_latest_mail(client, smtp):
    """In a conversation of more than LONG_THREAD mails, the answer replies to the latest
    (In-Reply-To) and cites the first and the last REFERENCES_KEPT_AT_END (References), as
    the inbox lists them: the whole conversation is read, not its oldest messages."""
    sender, now = unique_address(), time.monotonic_ns()
    first = f"first.{now}@mail.test"
    post_mail(client, customer_mail(sender, first, "Order", "Where is it?"))
    conversation = conversation_of(client, first)

    def follow_up(number: int) -> None:
        mail = customer_mail(
            sender, f"f{number}.{now}@mail.test", "Re: Order", "Any news?", In_Reply_To=f"<{first}>"
        )
        post_mail(client, mail)

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(follow_up, range(LONG_THREAD)))
    latest = f"latest.{now}@mail.test"
    post_mail(
        client, customer_mail(sender, latest, "Re: Order", "Hello?", In_Reply_To=f"<{first}>")
    )
    assert conversation_of(client, latest) == conversation

    answer = reply(client, conversation, "It left today.")
    assert answer.status_code == 201, answer.text
    listed = [m["provider_message_id"] for m in InboxReader(client).messages(conversation)]
    assert len(listed) == LONG_THREAD + 3 and listed[0] == first and listed[-2] == latest
    [mail] = accepted(smtp, sender)
    assert mail.message["In-Reply-To"] == f"<{latest}>"
    cited = [first, *listed[-1 - REFERENCES_KEPT_AT_END : -1]]
    assert mail.message["References"].split() == [f"<{ref}>" for ref in cited]


def test_an_answer_in_doubt_is_cited_by_the_next(client, smtp: SmtpServer):
    """An answer whose SMTP answer was lost (in doubt: the customer may have it) is cited by
    the next answer under the Message-ID it was sent with, though no provider id was
    recorded: In-Reply-To names it, References cites the thread then it."""
    sender, theirs = unique_address(), f"q.{time.monotonic_ns()}@mail.test"
    post_mail(client, customer_mail(sender, theirs, "Order", "Where is it?"))
    conversation = conversation_of(client, theirs)
    smtp.script(sender, Answer.dropped())
    doubtful = client.post(
        f"/api/conversations/{conversation}/messages", json={"text": "Checking."}
    )
    assert doubtful.status_code == 202, doubtful.text
    lost = message_when(client, doubtful.json()["id"], lambda m: m["in_doubt"])
    assert lost["provider_message_id"] is None
    ours = f"{lost['id']}@{MESSAGE_ID_DOMAIN}"

    answer = reply(client, conversation, "It left today.")
    assert answer.status_code == 201, answer.text
    mails = {mail.message["Message-ID"]: mail.message for mail in smtp.wait_for(sender, 2)}
    assert f"<{ours}>" in mails  # the server had it, though its answer was lost
    latest = mails[f"<{answer.json()['provider_message_id']}>"]
    assert latest["In-Reply-To"] == f"<{ours}>"
    assert latest["References"].split() == [f"<{theirs}>", f"<{ours}>"]


def upload(client: httpx.Client, content: bytes, content_type: str, filename: str) -> str:
    response = client.post(
        "/api/media",
        params={"filename": filename},
        content=content,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def test_attachments_come_from_the_media_store(client, smtp: SmtpServer):
    """Media the server keeps (uploaded, named by media_id) are attached with their name,
    type and exact bytes; a URL it does not keep goes in both bodies as a link."""
    to = unique_address()
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    media_id = upload(client, pdf, "application/pdf", "invoice 1042 é.pdf")
    link = "https://cdn.example.test/terms.pdf"
    response = client.post(
        SEND,
        json={"to": to, "text": "Attached.", "media": [{"media_id": media_id}, link]},
        headers=WAIT,
    )
    assert response.status_code == 201, response.text
    [mail] = accepted(smtp, to)
    message = mail.message
    assert message.get_content_type() == "multipart/mixed"
    [attachment] = list(message.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == "invoice 1042 é.pdf"
    assert attachment.get_content() == pdf
    assert f"terms.pdf: {link}" in mail.body("plain")
    assert f'<a href="{link}">terms.pdf</a>' in mail.body("html")


@pytest.fixture(scope="module")
def plain_smtp(tls_certificates):
    """An SMTP server that offers no STARTTLS (and no AUTH)."""
    with SmtpServer(tls_certificates, security="none", auth=False) as server:
        yield server


@pytest.fixture(scope="module")
def downgraded_server(tmp_path_factory, plain_smtp: SmtpServer):
    """Configured for STARTTLS (the default) against the server that does not offer it."""
    env = email_env(plain_smtp, EMAIL_SMTP_SECURITY="starttls")
    with serving(tmp_path_factory.mktemp("downgraded"), env) as server:
        yield server


def test_starttls_is_required(downgraded_server: ServerProcess, plain_smtp: SmtpServer):
    """With EMAIL_SMTP_SECURITY=starttls, a server that does not offer STARTTLS gets neither
    the login nor the mail: the message fails at once (not retried: it would never work)
    with smtp_starttls_unavailable, naming the setting."""
    to = unique_address()
    with downgraded_server.client() as client:
        response = client.post(SEND, json={"to": to, "text": "secret"}, headers=WAIT)
    assert response.status_code == 422, response.text
    stored = response.json()["stored_message"]
    assert (stored["error_code"], stored["attempts"]) == ("smtp_starttls_unavailable", 1)
    assert "EMAIL_SMTP_SECURITY" in stored["error_message"]
    assert plain_smtp.mails_to(to) == []
    assert plain_smtp.logins() == []


@pytest.fixture(scope="module")
def untrusting_server(tmp_path_factory, smtp: SmtpServer):
    """Configured without EMAIL_TLS_CA_FILE: the test server's certificate is not trusted."""
    env = email_env(smtp, EMAIL_TLS_CA_FILE=None)
    with serving(tmp_path_factory.mktemp("untrusting"), env) as server:
        yield server


def test_certificate_is_verified(untrusting_server: ServerProcess, smtp: SmtpServer):
    """A certificate the server does not trust (no EMAIL_TLS_CA_FILE for a private CA): no
    login and no mail, the message failed with smtp_tls_failed naming EMAIL_TLS_CA_FILE."""
    to = unique_address()
    logins = len(smtp.logins())
    with untrusting_server.client() as client:
        response = client.post(SEND, json={"to": to, "text": "secret"}, headers=WAIT)
    assert response.status_code == 422, response.text
    stored = response.json()["stored_message"]
    assert stored["error_code"] == "smtp_tls_failed"
    assert "EMAIL_TLS_CA_FILE" in stored["error_message"]
    assert smtp.mails_to(to) == []
    assert len(smtp.logins()) == logins


def test_unreachable_server_is_retried_then_failed(tmp_path_factory, tls_certificates):
    """Nobody listening at EMAIL_SMTP_PORT: retried until the retry deadline (1 s here), then
    failed with smtp_unreachable; a caller who waited is answered 502."""
    smtp = SmtpServer(tls_certificates)  # never started: its port is free
    env = email_env(smtp, OMNICHANNEL_SEND_RETRY_SECONDS="email=1")
    with (
        serving(tmp_path_factory.mktemp("unreachable"), env) as server,
        server.client() as client,
    ):
        response = client.post(SEND, json={"to": unique_address(), "text": "x"}, headers=WAIT)
    assert response.status_code == 502, response.text
    stored = response.json()["stored_message"]
    assert (stored["status"], stored["error_code"]) == ("failed", "smtp_unreachable")
    assert stored["attempts"] > 1


# threading and MIME, as composed ----------------------------------------------------------


OUR_DOMAIN = "example.test"


def stored(
    number: int,
    direction: str,
    provider_id: str | None,
    subject: str | None = None,
    *,
    status: str | None = None,
    in_doubt: bool = False,
    error_code: str | None = None,
    **metadata,
) -> Message:
    """A stored message of a conversation, as the inbox lists it."""
    email = {"subject": subject} if subject is not None else {}
    if "references" in metadata:
        email["references"] = metadata.pop("references")
    return Message(
        id=f"msg_{number}",
        conversation_id="cv_1",
        contact_id="ct_1",
        channel="email",
        direction=direction,
        status=status or ("received" if direction == "inbound" else "sent"),
        provider_message_id=provider_id,
        metadata={"email": email, **metadata},
        in_doubt=in_doubt,
        error_code=error_code,
    )


def test_thread_starts_with_the_customers_own_references():
    """References: the first customer mail's own References (the thread before it reached
    us), then every mail of the conversation in order; In-Reply-To: the latest. Mail
    without a real Message-ID (sha256:...), an auto-reply, and a message never sent are
    left out."""
    earlier = [
        stored(1, "inbound", "a@mail.test", "Help", references=["root@x.test", "mid@x.test"]),
        stored(2, "outbound", "msg_2@example.test"),
        stored(3, "outbound", None, status="failed", error_code="smtp_554"),  # never sent
        stored(4, "inbound", "sha256:" + "0" * 64),
        stored(5, "inbound", "ooo@mail.test", "Out of office", automated=True),
        stored(6, "inbound", "c@mail.test", "Re: Help"),
    ]
    in_reply_to, references = thread_ids(earlier, OUR_DOMAIN)
    assert in_reply_to == "c@mail.test"
    assert references == (
        "root@x.test",
        "mid@x.test",
        "a@mail.test",
        "msg_2@example.test",
        "c@mail.test",
    )
    assert thread_ids([], OUR_DOMAIN) == (None, ())


def test_answers_of_ours_in_doubt_are_cited_by_the_id_they_were_sent_with():
    """An answer of ours in doubt (sending, its SMTP answer lost), or failed once its doubt
    lapsed (not_confirmed), may be in the customer's mailbox: it is cited as
    <message id@EMAIL_MESSAGE_ID_DOMAIN>, the Message-ID it was sent with. One that failed
    for an answer of the server's, or is still queued, never left and is not."""
    earlier = [
        stored(1, "inbound", "a@mail.test", "Help"),
        stored(2, "outbound", None, status="sending", in_doubt=True),
        stored(3, "outbound", None, status="failed", error_code="5.1.1"),
        stored(4, "outbound", None, status="failed", error_code="not_confirmed"),
        stored(5, "outbound", None, status="queued"),
    ]
    in_reply_to, references = thread_ids(earlier, OUR_DOMAIN)
    assert in_reply_to == "msg_4@example.test"
    assert references == ("a@mail.test", "msg_2@example.test", "msg_4@example.test")
    assert thread_ids(earlier, None) == ("a@mail.test", ("a@mail.test",))


def test_long_thread_keeps_its_first_and_last_references():
    """A thread of 30 mails cites the first and the last ten: the root keeps the thread
    whole in every client, the latest keep it precise."""
    earlier = [stored(n, "inbound", f"m{n}@mail.test") for n in range(30)]
    _, references = thread_ids(earlier, OUR_DOMAIN)
    assert references == ("m0@mail.test", *(f"m{n}@mail.test" for n in range(20, 30)))


@pytest.mark.parametrize(
    ("subjects", "own", "expected"),
    [
        (["Order 1042"], None, "Re: Order 1042"),
        (["Order 1042", "RE: Order 1042"], None, "RE: Order 1042"),
        (["AW: Bestellung"], None, "AW: Bestellung"),
        (["Order 1042"], "New topic", "New topic"),
        ([], None, "Your message"),
        (["  "], None, "Your message"),
        (["Multi\r\n line"], None, "Re: Multi line"),
    ],
)
def test_subject(subjects, own, expected):
    """Its own subject when given, else "Re: " and the latest subject (never "Re: Re:",
    nor "Re: AW:"), else the default; a subject is one line."""
    earlier = [stored(n, "inbound", f"m{n}@x.test", subject) for n, subject in enumerate(subjects)]
    metadata = {"email": {"subject": own}} if own else {}
    message = OutboundMessage(id="msg_9", conversation_id="cv_1", to="a@x.test", metadata=metadata)
    assert subject_of(message, earlier, "Your message") == expected


def test_auto_reply_subject_is_not_answered():
    """The subject answered is the person's, not their auto-reply's."""
    earlier = [
        stored(1, "inbound", "a@x.test", "Order 1042"),
        stored(2, "inbound", "b@x.test", "Automatic reply: Order 1042", automated=True),
    ]
    message = OutboundMessage(id="msg_9", conversation_id="cv_1", to="a@x.test")
    assert subject_of(message, earlier, "Your message") == "Re: Order 1042"


def test_long_message_ids_are_folded_never_encoded():
    """In-Reply-To and References with Message-IDs longer than a line (Gmail's are) are
    folded between ids, never turned into encoded words, which would lose the thread."""
    long_id = "CAH" + "x" * 90 + "@mail.gmail.com"
    envelope = Envelope(
        sender=Address(display_name="Acmé", addr_spec=FROM_ADDRESS),
        recipient="ana@example.org",
        subject="Re: Bestellung über 10 €",
        message_id="msg_9@example.test",
        in_reply_to=long_id,
        references=("root@x.test", long_id, "short@x.test"),
        automated=False,
    )
    raw = build_mail(envelope, Bodies("text", "<p>html</p>"), []).as_bytes()
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    assert f"In-Reply-To: <{long_id}>\r\n" in head
    assert f"References: <root@x.test>\r\n <{long_id}>\r\n <short@x.test>\r\n" in head
    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed["Subject"] == "Re: Bestellung über 10 €"
    assert parsed["References"].split() == ["<root@x.test>", f"<{long_id}>", "<short@x.test>"]


def test_recipient_must_be_an_address():
    """A conversation address that is not an email address fails the message at once."""
    for to in ("not an address", "ana@", "@example.org", "ana@localhost", "josé@example.org"):
        with pytest.raises(SendFailed) as raised:
            recipient_of(to)
        assert raised.value.code == "invalid_recipient"


@pytest.fixture(scope="module")
def tls_smtp(tls_certificates):
    """An SMTP server speaking TLS from the start (port 465 style), AUTH required."""
    with SmtpServer(tls_certificates, security="ssl") as server:
        yield server


def test_tls_from_the_start(tmp_path_factory, tls_smtp: SmtpServer):
    """EMAIL_SMTP_SECURITY=ssl: the session is TLS from the first byte, then AUTH, then the
    mail."""
    to = unique_address()
    env = email_env(tls_smtp)
    with (
        serving(tmp_path_factory.mktemp("ssl"), env) as server,
        server.client() as client,
    ):
        send(client, to, "Over TLS")
    [mail] = accepted(tls_smtp, to)
    assert mail.login == USERNAME


class PagedConversation:
    """A conversation of ``messages`` listed oldest first, a page at a time, counting the
    pages read (the read side of the channel's inbox, nothing more)."""

    def __init__(self, messages: list[Message]) -> None:
        self.messages = messages
        self.pages = 0

    @classmethod
    def of_mails(cls, size: int, ours: int) -> PagedConversation:
        """``size`` customer mails, with ours (being sent) at ``ours``."""
        messages = [stored(n, "inbound", f"m{n}@mail.test") for n in range(size)]
        messages[ours] = stored(ours, "outbound", None, status="sending")
        return cls(messages)

    async def list_messages(self, conversation_id: str, cursor: str | None, limit: int):
        self.pages += 1
        start = int(cursor or 0)
        end = start + limit
        more = str(end) if end < len(self.messages) else None
        return SimpleNamespace(items=self.messages[start:end], next_cursor=more)


def read_thread(conversation: PagedConversation, ours: int) -> list[Message]:
    message = OutboundMessage(id=f"msg_{ours}", conversation_id="cv_1", to="a@x.test")
    return asyncio.run(earlier_messages(conversation, message, OUR_DOMAIN))


def test_thread_reads_stop_at_the_message_sent():
    """The earlier messages are read up to the one being sent, not after it: what is kept
    ends with the last mail before it."""
    conversation = PagedConversation.of_mails(size=3 * THREAD_PAGE, ours=THREAD_PAGE + 20)
    earlier = read_thread(conversation, THREAD_PAGE + 20)
    assert earlier[-1].id == f"msg_{THREAD_PAGE + 19}"
    assert conversation.pages == 2


def test_thread_reads_reach_the_latest_messages():
    """A conversation many pages long is read to the end: the answer replies to the latest
    mail and cites the first and the last ones, whatever the length."""
    size = 12 * THREAD_PAGE + 7
    conversation = PagedConversation.of_mails(size=size, ours=size - 1)
    earlier = read_thread(conversation, size - 1)
    in_reply_to, references = thread_ids(earlier, OUR_DOMAIN)
    assert in_reply_to == f"m{size - 2}@mail.test"
    last = range(size - 1 - REFERENCES_KEPT_AT_END, size - 1)
    assert references == ("m0@mail.test", *(f"m{n}@mail.test" for n in last))
    assert len(earlier) == REFERENCES_KEPT_AT_END + 1  # kept: what the headers need


def random_conversation(chance: random.Random, size: int) -> list[Message]:
    """Customer mails (some with References, some auto-replies, some without a real
    Message-ID) and answers of ours (sent, in doubt, failed, with and without a subject)."""
    messages = []
    for n in range(size):
        kind = chance.choice(["mail", "mail", "auto", "hashed", "sent", "doubt", "failed"])
        subject = chance.choice([None, None, f"Subject {n}"])
        if kind == "mail":
            refs = [f"r{n}.{i}@x.test" for i in range(chance.randrange(3))]
            messages.append(stored(n, "inbound", f"m{n}@mail.test", subject, references=refs))
        elif kind == "auto":
            messages.append(stored(n, "inbound", f"m{n}@mail.test", subject, automated=True))
        elif kind == "hashed":
            messages.append(stored(n, "inbound", f"sha256:{n:064d}", subject))
        elif kind == "sent":
            messages.append(stored(n, "outbound", f"msg_{n}@{OUR_DOMAIN}", subject))
        elif kind == "doubt":
            messages.append(stored(n, "outbound", None, subject, status="sending", in_doubt=True))
        else:
            messages.append(stored(n, "outbound", None, subject, status="failed", error_code="x"))
    return messages


@pytest.mark.parametrize("seed", range(40))
def test_what_the_thread_keeps_threads_as_the_whole_conversation(seed):
    """The few messages kept while reading (the first mail, the first customer mail, the
    latest subject, the last mails) give the same In-Reply-To, References and Subject as
    every message of the conversation would."""
    chance = random.Random(seed)
    size = chance.choice([0, 1, 5, 30, 3 * THREAD_PAGE + 11])
    messages = random_conversation(chance, size)
    everything = list(messages)
    messages.append(stored(size, "outbound", None, status="sending"))
    earlier = read_thread(PagedConversation(messages), size)
    assert thread_ids(earlier, OUR_DOMAIN) == thread_ids(everything, OUR_DOMAIN)
    message = OutboundMessage(id=f"msg_{size}", conversation_id="cv_1", to="a@x.test")
    default = "Your message"
    assert subject_of(message, earlier, default) == subject_of(message, everything, default)


def test_thread_reads_are_bounded():
    """A conversation longer than MAX_THREAD_MESSAGES is read no further than that: an
    answer in a huge thread threads on the messages read, at a bounded cost."""
    last = MAX_THREAD_MESSAGES + THREAD_PAGE * 2
    conversation = PagedConversation.of_mails(size=last + 1, ours=last)
    earlier = read_thread(conversation, last)
    assert conversation.pages == MAX_THREAD_MESSAGES // THREAD_PAGE
    assert earlier[-1].id == f"msg_{MAX_THREAD_MESSAGES - 1}"


def test_a_campaign_mails_each_recipient_their_subject_and_body(client, smtp: SmtpServer):
    """A campaign on the email channel (its sender ``email``): each contact gets one mail,
    its subject and body filled from their profile; one without an email identity is
    skipped as no_address."""
    first, second = unique_address(), unique_address()
    people = []
    for name, address in (("Ana Gil", first), ("Bo", second)):
        made = client.post(
            "/api/contacts",
            json={"display_name": name, "identities": [{"channel": "email", "address": address}]},
        )
        assert made.status_code == 201, made.text
        people.append(made.json()["id"])
    nowhere = client.post("/api/contacts", json={"display_name": "Cy"}).json()["id"]
    campaign = client.post(
        "/api/campaigns",
        json={
            "name": "Newsletter",
            "channel": "email",
            "audience": {"kind": "contacts", "contact_ids": [*people, nowhere]},
            "message": {
                "subject": "Spring news for {{first_name}}",
                "text": "Hello {{first_name}},\n\nour spring collection is out.",
            },
        },
    )
    assert campaign.status_code == 201, campaign.text
    assert campaign.json()["sender"] == "email"
    campaign_id = campaign.json()["id"]
    assert client.post(f"/api/campaigns/{campaign_id}/launch").status_code == 200
    [to_first] = accepted(smtp, first)
    [to_second] = accepted(smtp, second)
    assert to_first.message["Subject"] == "Spring news for Ana"
    assert "Hello Ana," in to_first.message.get_body(("plain",)).get_content()
    assert to_second.message["Subject"] == "Spring news for Bo"
    deadline = time.monotonic() + 10
    while (report := client.get(f"/api/campaigns/{campaign_id}/report").json())["counts"][
        "sent"
    ] < 2:
        assert time.monotonic() < deadline, report
        time.sleep(0.1)
    assert report["counts"]["skipped"] == {"no_address": 1}
