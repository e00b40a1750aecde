"""The Twilio channel's health: configuration present, credentials accepted by Twilio.

The credentials are checked by fetching the account (``GET
{base}/2010-04-01/Accounts/{sid}.json`` with basic auth, through the SDK), at most once a
minute per settings in each gunicorn worker: a success and a failure are both kept for
``CHECK_TTL_SECONDS``, so a load balancer polling ``/health`` never floods Twilio.

The check is single-flight per settings and no lock is held while Twilio is asked: a health
request arriving while a check is running answers at once with the last cached result (or
"checking" when there is none yet), so concurrent polls never park the channel's hook
threads, which the sends need, behind one slow call.
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
CHECK_TIMEOUT_SECONDS = (2.0, 2.0)
"""(connect, read): at most about 4 s in all, under the core's 5 s limit on a health hook, so
a slow Twilio still gets an answer. (Name resolution is not bounded by it; the core's limit
still answers the poll.)"""

ACCEPTED, REJECTED, UNREACHABLE, CHECKING = "accepted", "rejected", "unreachable", "checking"


@attrs.frozen
class CredentialCheck:
    """One answer from Twilio about the credentials, and when it was had (None while the
    first check for these settings is still running)."""

    outcome: str
    detail: str
    checked_at: datetime | None
    expires: float  # time.monotonic()


CHECK_IN_PROGRESS = CredentialCheck(
    outcome=CHECKING, detail="credentials check in progress", checked_at=None, expires=0.0
)

SettingsKey = tuple[str | None, str | None, str]

_checks: dict[SettingsKey, CredentialCheck] = {}
_running: set[SettingsKey] = set()
_lock = threading.Lock()  # guards the two above; never held while Twilio is asked


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


def _start_check(key: SettingsKey, moment: float) -> CredentialCheck | None:
    """The answer to give without asking Twilio, or None when this caller is to ask (it is
    then marked as running for ``key``)."""
    with _lock:
        cached = _checks.get(key)
        if cached is not None and cached.expires > moment:
            return cached
        if key in _running:
            return cached or CHECK_IN_PROGRESS
        _running.add(key)
        return None


def check_credentials(settings: TwilioSettings, now: float | None = None) -> CredentialCheck:
    """The cached answer for these settings, or a fresh one when it is older than a minute;
    while another thread is asking Twilio, the stale answer or :data:`CHECK_IN_PROGRESS`."""
    key = (settings.account_sid, settings.auth_token, settings.api_base_url)
    answer = _start_check(key, time.monotonic() if now is None else now)
    if answer is not None:
        return answer
    try:
        outcome, detail = _ask_twilio(settings)
        check = CredentialCheck(
            outcome=outcome,
            detail=detail,
            checked_at=datetime.now(UTC),
            expires=time.monotonic() + CHECK_TTL_SECONDS,
        )
        with _lock:
            _checks[key] = check
        return check
    finally:
        with _lock:
            _running.discard(key)


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
    if check.checked_at is not None:
        checks["checked_at"] = format_timestamp(check.checked_at)
    if not settings.configured:
        detail = f"not configured: {settings.problems}; {check.detail}"
    else:
        detail = check.detail
    return ChannelHealth(
        ok=settings.configured and check.outcome == ACCEPTED, detail=detail, checks=checks
    )
