"""Webhooks and status callbacks signed exactly as Twilio signs them, and the forms Twilio
posts.

Twilio computes ``X-Twilio-Signature`` over the URL it called (the public URL) followed by
every POST parameter, sorted, as ``name + value``; the twilio SDK's ``RequestValidator``
does the same, so it is the reference here, independent of the channel's own code.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Mapping
from urllib.parse import urlencode

import httpx
from twilio.request_validator import RequestValidator

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token-9f8e7d6c5b4a"
WRONG_TOKEN = "wrong-auth-token-0000"
PHONE_NUMBER = "+15005550006"
WHATSAPP_NUMBER = "+14155238886"
PUBLIC_URL = "https://omni.example.test"
MESSAGING_SERVICE_SID = "MG" + "a1" * 16
WEBHOOK_PATH = "/api/channels/twilio/webhook"
STATUS_PATH = "/api/channels/twilio/status"
SIGNATURE_HEADER = "X-Twilio-Signature"
FORM = "application/x-www-form-urlencoded"


def twilio_signature(url: str, params: Mapping[str, str], auth_token: str = AUTH_TOKEN) -> str:
    """The ``X-Twilio-Signature`` Twilio sends when it POSTs ``params`` to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, dict(params))


def post_form(
    client: httpx.Client,
    path: str,
    params: Mapping[str, str],
    *,
    signed_url: str | None = None,
    auth_token: str = AUTH_TOKEN,
    signature: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> httpx.Response:
    """POST ``params`` form-encoded to ``path``, signed over ``signed_url`` (default: the
    public URL plus ``path``) with ``auth_token``; ``signature`` replaces the computed one
    ("" sends no signature header)."""
    url = signed_url if signed_url is not None else PUBLIC_URL + path
    value = twilio_signature(url, params, auth_token) if signature is None else signature
    all_headers = {"Content-Type": FORM, **(headers or {})}
    if value:
        all_headers[SIGNATURE_HEADER] = value
    return client.post(path, content=urlencode(params).encode(), headers=all_headers)


def post_webhook(client: httpx.Client, params: Mapping[str, str], **kwargs) -> httpx.Response:
    """Deliver an inbound message form to the Twilio webhook, signed as Twilio signs it."""
    return post_form(client, WEBHOOK_PATH, params, **kwargs)


def post_status(client: httpx.Client, params: Mapping[str, str], **kwargs) -> httpx.Response:
    """Deliver a status callback form, signed as Twilio signs it."""
    return post_form(client, STATUS_PATH, params, **kwargs)


# the forms Twilio posts -----------------------------------------------------------------


def unique_phone() -> str:
    """An E.164 number no other test uses."""
    return "+1555" + f"{random.randrange(10**7):07d}"


def unique_sid(prefix: str = "SM") -> str:
    return prefix + uuid.uuid4().hex


def sms_form(sender: str, body: str = "hello", **extra: str) -> dict[str, str]:
    """An inbound SMS as Twilio posts it to the messaging webhook."""
    sid = extra.pop("MessageSid", None) or unique_sid()
    return {
        "ToCountry": "US",
        "ToState": "CA",
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ToCity": "",
        "FromZip": "",
        "SmsSid": sid,
        "FromState": "",
        "SmsStatus": "received",
        "FromCity": "",
        "Body": body,
        "FromCountry": "US",
        "To": PHONE_NUMBER,
        "ToZip": "",
        "NumSegments": "1",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def whatsapp_form(
    sender: str, body: str = "hello", profile_name: str = "Ada", **extra: str
) -> dict[str, str]:
    """An inbound WhatsApp message as Twilio posts it (``sender`` without the prefix)."""
    sid = extra.pop("MessageSid", None) or unique_sid()
    return {
        "SmsMessageSid": sid,
        "NumMedia": "0",
        "ProfileName": profile_name,
        "MessageType": "text",
        "SmsSid": sid,
        "WaId": sender.lstrip("+"),
        "SmsStatus": "received",
        "Body": body,
        "To": "whatsapp:" + WHATSAPP_NUMBER,
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": "whatsapp:" + sender,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def status_form(sid: str, status: str, to: str = "+15551230000", **extra: str) -> dict[str, str]:
    """A status callback for the outbound message ``sid``, as Twilio posts it."""
    return {
        "SmsSid": sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": to,
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": PHONE_NUMBER,
        "ApiVersion": "2010-04-01",
        **extra,
    }
