"""The Facebook channel's health: configuration present, page token accepted by Facebook.

The token is checked by asking who it belongs to (``GET /{version}/me?fields=id,name``, with
``appsecret_proof``), at most once a minute per settings in each gunicorn worker,
single-flight, through the core's
:class:`~omnichannel_core.credential_check.CredentialChecker`: a load balancer polling
``/health`` never floods the Graph API, and concurrent polls never wait on one slow call.
"""

from __future__ import annotations

import httpx

from omnichannel_core.channel import (
    ACCEPTED,
    REJECTED,
    UNREACHABLE,
    ChannelHealth,
    CredentialCheck,
    CredentialChecker,
    credentials_health,
)
from omnichannel_facebook.graph_client import (
    GraphAnswerLost,
    GraphError,
    GraphUnreachable,
    graph_client,
)
from omnichannel_facebook.settings import FacebookSettings

CHECK_TTL_SECONDS = 60.0
CHECK_TIMEOUT = httpx.Timeout(2.0, connect=2.0)
"""At most about 4 s in all, under the core's 5 s limit on a health hook."""

_checker = CredentialChecker(CHECK_TTL_SECONDS, "page token check in progress")


def _ask_facebook(settings: FacebookSettings) -> CredentialCheck:
    client = graph_client(settings, CHECK_TIMEOUT)
    try:
        me = client.get("me", {"fields": "id,name"})
    except GraphError as error:
        if error.is_invalid_token:
            detail = f"Facebook rejected the page token (code 190): {error.message}"
            return CredentialCheck(REJECTED, detail)
        if error.status in (400, 401, 403) and not error.is_rate_limit:
            # e.g. 100 "Invalid appsecret_proof": the app secret is not this app's
            detail = f"Facebook refused the token check (code {error.code}): {error.message}"
            return CredentialCheck(REJECTED, detail)
        return CredentialCheck(UNREACHABLE, f"Facebook answered {error.status} to the token check")
    except (GraphUnreachable, GraphAnswerLost) as error:
        return CredentialCheck(UNREACHABLE, f"Facebook could not be reached: {error}")
    page = {
        field: value[:200]
        for field in ("id", "name")
        if isinstance(value := me.get(field), str) and value
    }
    facts = {"page": page} if page else {}
    return CredentialCheck(ACCEPTED, "page token accepted by Facebook", facts=facts)


def check_token(settings: FacebookSettings, now: float | None = None) -> CredentialCheck:
    """The cached answer for these settings, or a fresh one when it is older than a minute;
    while another thread is asking Facebook, the stale answer or "checking"."""
    key = (
        settings.page_access_token,
        settings.app_secret,
        settings.graph_api_base_url,
        settings.graph_api_version,
    )
    return _checker.check(key, lambda: _ask_facebook(settings), now)


def channel_health(settings: FacebookSettings) -> ChannelHealth:
    """The report: what is missing, then what Facebook said of the page token (and, once
    accepted, the page's id and name)."""
    if not settings.can_call_graph:
        return credentials_health(settings, None)
    return credentials_health(settings, check_token(settings))
