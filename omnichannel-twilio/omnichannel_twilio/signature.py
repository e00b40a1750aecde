"""Twilio's webhook signature: ``X-Twilio-Signature`` over the URL and the POST parameters.

``base64(HMAC-SHA1(auth_token, url + k1 + v1 + k2 + v2 ...))`` with the parameters sorted by
name, as Twilio computes it (the signature itself comes from the official SDK's
``RequestValidator.compute_signature``). The URL is the one Twilio called: the core makes
``request.url`` the public URL (``OMNICHANNEL_PUBLIC_URL``, or forwarded headers when
``OMNICHANNEL_TRUST_PROXY`` is on). Like the SDK's own validator, the URL is tried with and
without the scheme's default port, since Twilio is not consistent about it.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from urllib.parse import parse_qs, urlparse

from twilio.request_validator import RequestValidator, add_port, remove_port

from omnichannel_core.errors import InvalidInput, WebhookRejected
from omnichannel_core.hooktypes import WebhookRequest

SIGNATURE_HEADER = "X-Twilio-Signature"
MAX_FORM_FIELDS = 1000

FormParams = dict[str, list[str]]


class _MultiValueParams(dict):
    """Form parameters as the SDK's validator reads repeated ones (``getall``)."""

    def getall(self, name: str) -> list[str]:
        return self[name]


def parse_form(body: bytes) -> FormParams:
    """The form-encoded body's parameters, every value of each; InvalidInput unless the body
    is UTF-8 form data."""
    try:
        text = body.decode("utf-8")
        return parse_qs(
            text,
            keep_blank_values=True,
            strict_parsing=False,
            encoding="utf-8",
            errors="strict",
            max_num_fields=MAX_FORM_FIELDS,
        )
    except UnicodeDecodeError:
        raise InvalidInput("request body is not UTF-8 form data") from None
    except ValueError:  # more than MAX_FORM_FIELDS fields
        raise InvalidInput(f"request body has more than {MAX_FORM_FIELDS} fields") from None


def compute_signature(auth_token: str, url: str, params: Mapping[str, list[str]]) -> str:
    """The ``X-Twilio-Signature`` Twilio sends for a POST of ``params`` to ``url``."""
    return RequestValidator(auth_token).compute_signature(url, _MultiValueParams(params))


def _url_variants(url: str) -> list[str]:
    parsed = urlparse(url)
    return list(dict.fromkeys([url, remove_port(parsed), add_port(parsed)]))


def verify_signature(request: WebhookRequest, auth_token: str) -> FormParams:
    """The request's form parameters, once its signature is checked (constant time).

    Raises WebhookRejected (403) for a missing or wrong signature, InvalidInput (400) for a
    body that is not UTF-8 form data.
    """
    presented = request.header(SIGNATURE_HEADER)
    if not presented:
        raise WebhookRejected(f"missing {SIGNATURE_HEADER}")
    params = parse_form(request.body)
    given = presented.strip().encode()
    for url in _url_variants(request.url):  # the URL as called first: usually one HMAC
        if hmac.compare_digest(given, compute_signature(auth_token, url, params).encode()):
            return params
    raise WebhookRejected(f"wrong {SIGNATURE_HEADER} for {request.url}")


def first(params: Mapping[str, list[str]], name: str) -> str | None:
    """The parameter's first value, or None when absent."""
    values = params.get(name)
    return values[0] if values else None
