"""The Facebook channel's health: configuration present, page token accepted by Facebook.

The token is checked by asking who it belongs to (``GET /{version}/me?fields=id,name``, with
``appsecret_proof``), at most once a minute per settings in each gunicorn worker: a success
and a failure are both kept for ``CHECK_TTL_SECONDS``, so a load balancer polling
``/health`` never floods the Graph API.

The check is single-flight per settings and no lock is held while Facebook is asked: a health
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
import httpx

from omnichannel_core.hooktypes import ChannelHealth
from omnichannel_core.serialization import format_timestamp
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

ACCEPTED, REJECTED, UNREACHABLE, CHECKING, MISSING = (
    "accepted",
    "rejected",
    "unreachable",
    "checking",
    "missing",
)


@attrs.frozen
class TokenCheck:
    """One answer from Facebook about the page token, and when it was had (None while the
    first check for these settings is still running)."""

    outcome: str
    detail: str
    checked_at: datetime | None
    expires: float  # time.monotonic()
    page: dict[str, str] = attrs.field(factory=dict)


CHECK_IN_PROGRESS = TokenCheck(
    outcome=CHECKING, detail="page token check in progress", checked_at=None, expires=0.0
)

SettingsKey = tuple[str | None, str | None, str, str]

_checks: dict[SettingsKey, TokenCheck] = {}
_running: set[SettingsKey] = set()
_lock = threading.Lock()  # guards the two above; never held while Facebook is asked


def _ask_facebook(settings: FacebookSettings) -> tuple[str, str, dict[str, str]]:
    client = graph_client(settings, CHECK_TIMEOUT)
    try:
        me = client.get("me", {"fields": "id,name"})
    except GraphError as error:
        if error.is_invalid_token:
            return REJECTED, f"Facebook rejected the page token (code 190): {error.message}", {}
        if error.status in (400, 401, 403) and not error.is_rate_limit:
            # e.g. 100 "Invalid appsecret_proof": the app secret is not this app's
            detail = f"Facebook refused the token check (code {error.code}): {error.message}"
            return REJECTED, detail, {}
        return UNREACHABLE, f"Facebook answered {error.status} to the token check", {}
    except (GraphUnreachable, GraphAnswerLost) as error:
        return UNREACHABLE, f"Facebook could not be reached: {error}", {}
    page = {
        field: value[:200]
        for field in ("id", "name")
        if isinstance(value := me.get(field), str) and value
    }
    return ACCEPTED, "page token accepted by Facebook", page


def _start_check(key: SettingsKey, moment: float) -> TokenCheck | None:
    """The answer to give without asking Facebook, or None when this caller is to ask (it is
    then marked as running for ``key``)."""
    with _lock:
        cached = _checks.get(key)
        if cached is not None and cached.expires > moment:
            return cached
        if key in _running:
            return cached or CHECK_IN_PROGRESS
        _running.add(key)
        return None


def check_token(settings: FacebookSettings, now: float | None = None) -> TokenCheck:
    """The cached answer for these settings, or a fresh one when it is older than a minute;
    while another thread is asking Facebook, the stale answer or :data:`CHECK_IN_PROGRESS`."""
    key = (
        settings.page_access_token,
        settings.app_secret,
        settings.graph_api_base_url,
        settings.graph_api_version,
    )
    answer = _start_check(key, time.monotonic() if now is None else now)
    if answer is not None:
        return answer
    try:
        outcome, detail, page = _ask_facebook(settings)
        check = TokenCheck(
            outcome=outcome,
            detail=detail,
            checked_at=datetime.now(UTC),
            expires=time.monotonic() + CHECK_TTL_SECONDS,
            page=page,
        )
        with _lock:
            _checks[key] = check
        return check
    finally:
        with _lock:
            _running.discard(key)


def channel_health(settings: FacebookSettings) -> ChannelHealth:
    """The report: what is missing, then what Facebook said of the page token."""
    checks: dict[str, Any] = {"configured": settings.configured}
    if settings.missing:
        checks["missing"] = list(settings.missing)
    if settings.invalid:
        checks["invalid"] = list(settings.invalid)
    if not settings.can_call_graph:
        checks["credentials"] = MISSING
        return ChannelHealth(ok=False, detail=f"not configured: {settings.problems}", checks=checks)
    check = check_token(settings)
    checks["credentials"] = check.outcome
    if check.checked_at is not None:
        checks["checked_at"] = format_timestamp(check.checked_at)
    if check.page:
        checks["page"] = dict(check.page)
    if not settings.configured:
        detail = f"not configured: {settings.problems}; {check.detail}"
    else:
        detail = check.detail
    return ChannelHealth(
        ok=settings.configured and check.outcome == ACCEPTED, detail=detail, checks=checks
    )
