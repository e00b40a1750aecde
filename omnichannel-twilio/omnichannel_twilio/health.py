"""The Twilio channel's health: configuration present, credentials accepted by Twilio.

The credentials are checked by fetching the account (``GET
{base}/2010-04-01/Accounts/{sid}.json`` with basic auth, through the SDK), at most once a
minute per settings in each gunicorn worker, single-flight, through the core's
:class:`~omnichannel_core.credential_check.CredentialChecker`: a load balancer polling
``/health`` never floods Twilio, and concurrent polls never wait on one slow call.
"""

from __future__ import annotations

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException

from omnichannel_core.channel import (
    ACCEPTED,
    REJECTED,
    UNREACHABLE,
    ChannelHealth,
    CredentialCheck,
    CredentialChecker,
    credentials_health,
)
from omnichannel_twilio.api_client import twilio_client
from omnichannel_twilio.settings import TwilioSettings

CHECK_TTL_SECONDS = 60.0
CHECK_TIMEOUT_SECONDS = (2.0, 2.0)
"""(connect, read): at most about 4 s in all, under the core's 5 s limit on a health hook, so
a slow Twilio still gets an answer. (Name resolution is not bounded by it; the core's limit
still answers the poll.)"""

_checker = CredentialChecker(CHECK_TTL_SECONDS, "credentials check in progress")


def _ask_twilio(settings: TwilioSettings) -> CredentialCheck:
    client = twilio_client(settings, timeout=CHECK_TIMEOUT_SECONDS)
    try:
        client.api.v2010.accounts(settings.account_sid).fetch()
    except (TwilioRestException, TwilioServiceException) as error:
        if error.status in (401, 403, 404):
            detail = f"Twilio rejected the credentials ({error.status}, code {error.code})"
            return CredentialCheck(REJECTED, detail)
        return CredentialCheck(
            UNREACHABLE, f"Twilio answered {error.status} to the credentials check"
        )
    except (requests.exceptions.RequestException, TwilioException) as error:
        return CredentialCheck(UNREACHABLE, f"Twilio could not be reached: {type(error).__name__}")
    return CredentialCheck(ACCEPTED, "credentials accepted by Twilio")


def check_credentials(settings: TwilioSettings, now: float | None = None) -> CredentialCheck:
    """The cached answer for these settings, or a fresh one when it is older than a minute;
    while another thread is asking Twilio, the stale answer or "checking"."""
    key = (settings.account_sid, settings.auth_token, settings.api_base_url)
    return _checker.check(key, lambda: _ask_twilio(settings), now)


def channel_health(settings: TwilioSettings) -> ChannelHealth:
    """The report: what is missing, then what Twilio said of the credentials."""
    if not settings.account_sid or not settings.auth_token:
        return credentials_health(settings, None)
    return credentials_health(settings, check_credentials(settings))
