"""Delivery reports about our mail (``omnichannel_email.bounces``): a bounce (DSN) fails
the message it returns with the server's code and reason, a delay changes nothing, a read
receipt (MDN) marks it read; a report we cannot trace to one of our Message-IDs is left to
be stored as an automated message. The corpus's Postfix reports are in test_email_parse.py;
here, the variants other servers write."""

from __future__ import annotations

import pytest
from omnichannel_email.bounces import MAX_ERROR_MESSAGE, report_result
from omnichannel_email.parse import mail_result, parse_mail
from omnichannel_email.settings import EmailSettings, parse_settings

from omnichannel_core.channel import Config, DeliveryStatus, StatusUpdate, WebhookResult

OURS = "msg_06jz8d5e6f7g8h9j0k1m2n3p4q"
OUR_ID = f"{OURS}@shop.example"


def settings(**environ: str) -> EmailSettings:
    base = {"EMAIL_FROM_ADDRESS": "support@shop.example", "EMAIL_SMTP_HOST": "smtp.example"}
    return parse_settings(Config.from_environ({**base, **environ}, dotenv=None))


SETTINGS = settings()

FAILED = """Final-Recipient: rfc822; nobody@customer.example
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 <nobody@customer.example>: Recipient address
    rejected: User unknown"""


def report(
    *recipients: str,
    returned: str | None = "message",
    original_id: str = OUR_ID,
    subject: str = "Undelivered Mail Returned to Sender",
    headers: str = "",
    kind: str = "delivery-status",
    fields_type: str = "message/delivery-status",
) -> bytes:
    """A DSN (or MDN, by ``kind``): notification text, the fields (per message, then each
    of ``recipients``), and the returned mail (``message``), its headers (``headers``) or
    nothing."""
    parts = [
        "Content-Type: text/plain; charset=us-ascii\n\nThis is the mail system at host mx.example.",
        f"Content-Type: {fields_type}\n\nReporting-MTA: dns; mx.example\n\n"
        + "\n\n".join(recipients),
    ]
    original = f"From: support@shop.example\nSubject: Hi\nMessage-ID: <{original_id}>\n"
    if returned == "message":
        parts.append(f"Content-Type: message/rfc822\n\n{original}\nHello")
    elif returned == "headers":
        parts.append(f"Content-Type: text/rfc822-headers\n\n{original}")
    body = "".join(f"--R\n{part}\n\n" for part in parts) + "--R--\n"
    return (
        "From: MAILER-DAEMON@mx.example (Mail Delivery System)\nTo: support@shop.example\n"
        f"Subject: {subject}\nDate: Fri, 15 Mar 2024 11:35:02 +0000\nAuto-Submitted: auto-replied\n"
        f"{headers}MIME-Version: 1.0\n"
        f'Content-Type: multipart/report; report-type={kind}; boundary="R"\n\n{body}'
    ).encode()


def status_of(raw: bytes, config: EmailSettings = SETTINGS) -> StatusUpdate | None:
    result = mail_result(raw, config)
    assert result.messages == ()
    assert len(result.statuses) <= 1
    return result.statuses[0] if result.statuses else None


def test_a_failed_recipient_fails_our_message_with_code_and_reason() -> None:
    """Status field as the code, the Diagnostic-Code's text (unfolded) as the reason, our
    message named by id, the report's date as when."""
    update = status_of(report(FAILED))
    assert update is not None
    assert update.status is DeliveryStatus.FAILED
    assert update.provider_message_id == OUR_ID
    assert update.message_id == OURS
    assert update.error_code == "5.1.1"
    assert update.error_message == (
        "550 5.1.1 <nobody@customer.example>: Recipient address rejected: User unknown"
    )
    assert update.at is not None and update.at.isoformat() == "2024-03-15T11:35:02+00:00"


@pytest.mark.parametrize("returned", ["message", "headers"])
def test_the_original_is_found_in_the_returned_mail_or_its_headers(returned: str) -> None:
    """The full returned mail (message/rfc822) or only its headers (text/rfc822-headers,
    what Postfix sends for a large mail) both name our message."""
    update = status_of(report(FAILED, returned=returned))
    assert update is not None and update.message_id == OURS


def test_a_report_without_the_original_is_traced_by_its_own_references() -> None:
    """No returned part: the report's In-Reply-To (some servers set it) names our mail."""
    raw = report(FAILED, returned=None, headers=f"In-Reply-To: <{OUR_ID}>\n")
    update = status_of(raw)
    assert update is not None and update.message_id == OURS


def test_the_smtp_code_is_the_error_code_when_there_is_no_status() -> None:
    """No Status field: the three-digit code of the Diagnostic-Code."""
    recipient = (
        "Final-Recipient: rfc822; a@b.example\nAction: failed\nDiagnostic-Code: smtp; 554 Spam"
    )
    update = status_of(report(recipient))
    assert update is not None
    assert (update.error_code, update.error_message) == ("554", "554 Spam")


def test_several_failed_recipients_are_each_named() -> None:
    """Two failed recipients (a Cc bounced too): each address with its reason."""
    other = (
        FAILED.replace("nobody@", "cc@").replace("5.1.1", "5.2.2").replace("User unknown", "Full")
    )
    update = status_of(report(FAILED, other))
    assert update is not None
    assert update.error_code == "5.1.1"
    assert update.error_message == (
        "nobody@customer.example: 550 5.1.1 <nobody@customer.example>: Recipient address"
        " rejected: User unknown; cc@customer.example: 550 5.2.2 <cc@customer.example>:"
        " Recipient address rejected: Full"
    )


def test_a_long_reason_is_shortened() -> None:
    """A server's essay is cut to MAX_ERROR_MESSAGE characters, ending with an ellipsis."""
    recipient = FAILED + " " + "blah " * 400
    update = status_of(report(recipient))
    assert update is not None and update.error_message is not None
    assert len(update.error_message) == MAX_ERROR_MESSAGE
    assert update.error_message.endswith("…")


def test_a_failure_without_a_diagnostic_says_so() -> None:
    """Action failed with a Status only: the reason names the status."""
    update = status_of(
        report("Final-Recipient: rfc822; a@b.example\nAction: failed\nStatus: 5.0.0")
    )
    assert update is not None
    assert (update.error_code, update.error_message) == ("5.0.0", "delivery failed (5.0.0)")


@pytest.mark.parametrize("action", ["delayed", "relayed", "expanded"])
def test_reports_that_are_not_failures_change_nothing(action: str) -> None:
    """A delay (the server still tries), a relay or a list expansion: no status, no
    message."""
    recipient = f"Final-Recipient: rfc822; a@b.example\nAction: {action}\nStatus: 4.4.1"
    assert mail_result(report(recipient), SETTINGS) == WebhookResult()


def test_a_delivered_report_marks_the_message_delivered() -> None:
    """Action delivered (when success reports were asked for): DELIVERED."""
    recipient = "Final-Recipient: rfc822; a@b.example\nAction: delivered\nStatus: 2.0.0"
    update = status_of(report(recipient))
    assert update is not None and update.status is DeliveryStatus.DELIVERED


def test_a_failure_among_delays_fails_the_message() -> None:
    """One recipient delayed, another failed: failed."""
    delayed = "Final-Recipient: rfc822; slow@b.example\nAction: delayed\nStatus: 4.4.1"
    update = status_of(report(delayed, FAILED))
    assert update is not None and update.status is DeliveryStatus.FAILED


def test_a_report_without_fields_is_a_failure_unless_it_speaks_of_a_delay() -> None:
    """Gmail's notices may carry an empty delivery-status part: failed, with the subject
    as the reason; one whose subject says "Delay" changes nothing."""
    update = status_of(report(subject="Delivery Status Notification (Failure)"))
    assert update is not None
    assert update.status is DeliveryStatus.FAILED
    assert update.error_message == "Delivery Status Notification (Failure)"
    assert status_of(report(subject="Delivery Status Notification (Delay)")) is None


def test_a_report_on_mail_that_is_not_ours_is_stored_as_an_automated_message() -> None:
    """A bounce of mail someone sent by hand (an id on our domain but not one of ours, or
    on another domain): no status, the report kept as an automated message."""
    for original in ("c3a1e9f0-7b2d@shop.example", f"{OURS}@elsewhere.example"):
        raw = report(FAILED, original_id=original)
        assert report_result(parse_mail(raw), SETTINGS) is None
        result = mail_result(raw, SETTINGS)
        (message,) = result.messages
        assert result.statuses == ()
        assert message.automated
        assert message.sender == "mailer-daemon@mx.example"


def test_without_a_message_id_domain_no_report_is_ours() -> None:
    """Nothing configured to send from: a report is never taken for one of ours."""
    unconfigured = parse_settings(Config.from_environ({}, dotenv=None))
    assert report_result(parse_mail(report(FAILED)), unconfigured) is None


def test_the_message_id_domain_setting_decides_what_is_ours() -> None:
    """EMAIL_MESSAGE_ID_DOMAIN overrides the From address's domain."""
    raw = report(FAILED, original_id=f"{OURS}@mail.shop.example")
    assert report_result(parse_mail(raw), SETTINGS) is None
    update = status_of(raw, settings(EMAIL_MESSAGE_ID_DOMAIN="MAIL.shop.example"))
    assert update is not None and update.message_id == OURS


MDN = "message/disposition-notification"


@pytest.mark.parametrize(
    ("disposition", "expected"),
    [
        ("manual-action/MDN-sent-manually; displayed", DeliveryStatus.READ),
        ("automatic-action/MDN-sent-automatically; displayed", DeliveryStatus.READ),
        ("manual-action/MDN-sent-manually; deleted", None),
        ("automatic-action/MDN-sent-automatically; dispatched", None),
    ],
)
def test_a_read_receipt_marks_our_message_read(
    disposition: str, expected: DeliveryStatus | None
) -> None:
    """An MDN saying "displayed" (Original-Message-ID ours): READ; deleted or dispatched
    unread: nothing."""
    fields = f"Final-Recipient: rfc822;a@b.example\nOriginal-Message-ID: <{OUR_ID}>\n"
    fields += f"Disposition: {disposition}"
    raw = report(fields, returned=None, kind="disposition-notification", fields_type=MDN)
    update = status_of(raw)
    assert (update.status if update else None) is expected


def test_other_reports_are_messages() -> None:
    """A spam complaint (feedback-report) is not a delivery report: a message."""
    raw = report(FAILED, kind="feedback-report")
    assert report_result(parse_mail(raw), SETTINGS) is None
    assert len(mail_result(raw, SETTINGS).messages) == 1
