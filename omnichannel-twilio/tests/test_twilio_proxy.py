"""Which URL a Twilio signature is checked against when OMNICHANNEL_PUBLIC_URL is not set:
the URL the server was called on, and forwarded headers only behind a trusted proxy."""

from __future__ import annotations

from twilio_signing import WEBHOOK_PATH, post_webhook, sms_form, unique_phone

FORWARDED_HOST = "omni.proxy.example.test"
FORWARDED_URL = f"https://{FORWARDED_HOST}{WEBHOOK_PATH}"
FORWARDED_HEADERS = {"X-Forwarded-Host": FORWARDED_HOST, "X-Forwarded-Proto": "https"}


def has_contact(client, phone: str) -> bool:
    items = client.get("/api/contacts", params={"q": phone}).json()["items"]
    return any({"channel": "twilio", "address": phone} in c["identities"] for c in items)


def test_without_public_url_the_called_url_is_signed(loopback_server):
    """No public URL, no trusted proxy: a signature over the URL the server was called on is
    accepted."""
    phone = unique_phone()
    with loopback_server.client() as client:
        response = post_webhook(
            client, sms_form(phone), signed_url=loopback_server.base_url + WEBHOOK_PATH
        )
        assert response.status_code == 200, response.text
        assert has_contact(client, phone)


def test_forwarded_headers_are_ignored_unless_the_proxy_is_trusted(loopback_server):
    """No trusted proxy: X-Forwarded-Host/Proto cannot make a signature over another URL
    valid; 403 and nothing stored."""
    phone = unique_phone()
    with loopback_server.client() as client:
        response = post_webhook(
            client, sms_form(phone), signed_url=FORWARDED_URL, headers=FORWARDED_HEADERS
        )
        assert response.status_code == 403, response.text
        assert not has_contact(client, phone)


def test_trusted_proxy_forwarded_url_is_signed(proxied_server):
    """OMNICHANNEL_TRUST_PROXY on: the signature is checked over the forwarded URL, so one
    over that URL is accepted and one over the loopback URL is not."""
    accepted, refused = unique_phone(), unique_phone()
    with proxied_server.client() as client:
        response = post_webhook(
            client, sms_form(accepted), signed_url=FORWARDED_URL, headers=FORWARDED_HEADERS
        )
        assert response.status_code == 200, response.text
        response = post_webhook(
            client,
            sms_form(refused),
            signed_url=proxied_server.base_url + WEBHOOK_PATH,
            headers=FORWARDED_HEADERS,
        )
        assert response.status_code == 403, response.text
        assert has_contact(client, accepted) and not has_contact(client, refused)
