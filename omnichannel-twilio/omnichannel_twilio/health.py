"""The Twilio channel's health: configuration present, credentials accepted by Twilio.

The credentials are checked by fetching the account (``GET
{base}/2010-04-01/Accounts/{sid}.json`` with basic auth, through the SDK), at most once a
minute per settings: a success and a failure are both kept for ``CHECK_TTL_SECONDS``, so a
load balancer polling ``/health`` never floods Twilio.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import attrs
import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

from omnichannel_core.hooktypes import ChannelHealth
from omnichannel_core.serialization import format_timestamp
from omnichannel_twilio.api_client import twilio_client
from omnichannel_twilio.settings import TwilioSettings

CHECK_TTL_SECONDS = 60.0
CHECK_TIMEOUT_SECONDS = 4.0
"""Under the core's 5 s limit on a health hook, so a slow Twilio still gets an answer."""

ACCEPTED, REJECTED, UNREACHABLE = "accepted", "rejected", "unreachable"


@attrs.frozen
class CredentialCheck:
    """One answer from Twilio about the credentials, and when it was had."""

    outcome: str
    detail: str
    checked_at: datetime
    expires: float  # time.monotonic()


_checks: dict[tuple[Any, ...], CredentialCheck] = {}
_lock = threading.Lock()


def _ask_twilio(settings: TwilioSettings) -> tuple[str, str]:
    client = twilio_client(settings, timeout=CHECK_TIMEOUT_SECONDS)
    try:
        client.api.v2010.accounts(settings.account_sid).fetch()
    except (TwilioRestException, TwilioServiceException) as error:
        if error.status in (401, 403, 404):
            return REJECTED, f"Twilio rejected the credentials ({error.status}, code {error.code})"
        return UNREACHABLE, f"Twilio answered {error.status} to the credentials check"
    except (requests.exceptions.RequestException, TwilioException) as error:
        return UNREACHABLE, f"Twilio could not be reached: {type(error).__name__}"
    return ACCEPTED, "credentials accepted by Twilio"


def check_credentials(settings: TwilioSettings, now: float | None = None) -> CredentialCheck:
    """The cached answer for these settings, or a fresh one when it is older than a minute."""
    key = (settings.account_sid, settings.auth_token, settings.api_base_url)
    with _lock:  # one check at a time: concurrent health requests wait for its answer
        moment = time.monotonic() if now is None else now
        cached = _checks.get(key)
        if cached is not None and cached.expires > moment:
            return cached
        outcome, detail = _ask_twilio(settings)
        check = CredentialCheck(
            outcome=outcome,
            detail=detail,
            checked_at=datetime.now(UTC),
            expires=time.monotonic() + CHECK_TTL_SECONDS,
        )
        _checks[key] = check
        return check


def channel_health(settings: TwilioSettings) -> ChannelHealth:
    """The report: what is missing, then what Twilio said of the credentials."""
    checks: dict[str, Any] = {"configured": settings.configured}
    if settings.missing:
        checks["missing"] = list(settings.missing)
    if settings.invalid:
        checks["invalid"] = list(settings.invalid)
    if not settings.account_sid or not settings.auth_token:
        checks["credentials"] = "missing"
        return ChannelHealth(ok=False, detail=f"not configured: {settings.problems}", checks=checks)
    check = check_credentials(settings)
    checks["credentials"] = check.outcome
    checks["checked_at"] = format_timestamp(check.checked_at)
    if not settings.configured:
        detail = f"not configured: {settings.problems}; {check.detail}"
    else:
        detail = check.detail
    return ChannelHealth(
        ok=settings.configured and check.outcome == ACCEPTED, detail=detail, checks=checks
    )
