"""Who an agent's mail goes to, and how the customer's answer finds its thread: addresses
are kept in one form (lower case, as mail that comes in is), an address that is no address
is refused before anything is stored, and an answer whose SMTP reply was lost is still the
thread a customer's reply names."""

from __future__ import annotations

import time

import httpx
import pytest
from smtp_server import Answer, SmtpServer
from test_email_outbound import (
    SEND,
    conversation_of,
    customer_mail,
    message_when,
    post_mail,
    send,
    unique_address,
)

from omnichannel_core.testing.server import ServerProcess


@pytest.fixture
def client(email_server: ServerProcess):
    with email_server.client() as client:
        yield client


def test_an_answer_to_a_mail_sent_to_a_capitalised_address_joins_its_thread(client, smtp):
    """An agent writes to ``Ana.Lima@Example.ORG``; the customer answers from
    ``ana.lima@example.org`` (as every mail client writes it): one contact, one thread
    (chatwoot#10791, whatever the case the agent typed)."""
    sender = unique_address()
    typed = sender.replace("customer", "Customer").replace("example.org", "Example.ORG")
    first = send(client, typed, "Your invoice is ready.", subject="Invoice 78")
    conversation = client.get(f"/api/conversations/{first['conversation_id']}").json()
    assert conversation["address"] == sender
    theirs = f"a.{time.monotonic_ns()}@mail.test"
    post_mail(
        client,
        customer_mail(
            sender,
            theirs,
            "Re: Invoice 78",
            "Thanks!",
            In_Reply_To=f"<{first['provider_message_id']}>",
        ),
    )
    assert conversation_of(client, theirs) == first["conversation_id"]


@pytest.mark.parametrize(
    "to",
    [
        "not-an-address",
        "Ana <ana@example.org>",
        "ana@example.org, bob@example.org",
        "ana@localhost",
    ],
)
def test_a_send_to_what_is_no_address_is_refused_and_stores_nothing(client, to: str):
    """A display name, two addresses or no address at all: 400 naming ``to``, and no
    contact is made for it."""
    before = client.get("/api/contacts", params={"limit": 200}).json()["items"]
    response = client.post(SEND, json={"to": to, "text": "hello"})
    assert response.status_code == 400, response.text
    assert "to" in response.text
    after = client.get("/api/contacts", params={"limit": 200}).json()["items"]
    assert len(after) == len(before)


def test_a_reply_to_an_answer_whose_smtp_reply_was_lost_joins_its_thread(
    client: httpx.Client, smtp: SmtpServer
):
    """The server dropped the connection after taking our answer's body: the answer is in
    doubt, its provider id unrecorded. The customer received it and replies, citing its
    Message-ID: the reply still joins the thread, found by the message id the Message-ID
    carries."""
    sender = unique_address()
    started = send(client, sender, "First mail.", subject="Order 9")
    smtp.script(sender, Answer.dropped())
    lost = client.post(
        f"/api/conversations/{started['conversation_id']}/messages", json={"text": "Shipped."}
    )
    assert lost.status_code == 202, lost.text
    message = message_when(client, lost.json()["id"], lambda m: m["in_doubt"])
    assert message["provider_message_id"] is None
    [mail] = [m for m in smtp.mails_to(sender) if "Shipped." in m.message.as_string()]
    ours = mail.message["Message-ID"].strip("<>")
    theirs = f"r.{time.monotonic_ns()}@mail.test"
    post_mail(
        client,
        customer_mail(sender, theirs, "Re: Order 9", "Got it, thanks.", In_Reply_To=f"<{ours}>"),
    )
    assert conversation_of(client, theirs) == started["conversation_id"]
