"""Checking a channel's credentials against its provider, for the ``health`` hook.

A load balancer polls ``/health`` every few seconds in every worker; asking the provider
each time would flood it (and may count against a rate limit). :class:`CredentialChecker`
asks at most once per ``ttl_seconds`` per key (the credentials and where they are sent): a
success and a failure are both kept for that long.

The check is single-flight per key and no lock is held while the provider is asked: a
health request arriving while a check is running answers at once with the last answer (or
"checking" when there is none yet), so concurrent polls never park the channel's hook
threads, which the sends need, behind one slow call. :meth:`CredentialChecker.check` serves a
sync ``health`` hook (it runs on a hook thread), :meth:`CredentialChecker.check_async` an
async one.

:func:`credentials_health` turns the settings and the check into the ``health`` report.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Hashable
from datetime import UTC, datetime
from typing import Any

import attrs

from omnichannel_core.channel_settings import ChannelSettings
from omnichannel_core.hooktypes import ChannelHealth
from omnichannel_core.timestamps import format_timestamp

__all__ = [
    "ACCEPTED",
    "CHECKING",
    "MISSING",
    "REJECTED",
    "UNREACHABLE",
    "CredentialCheck",
    "CredentialChecker",
    "credentials_health",
]

ACCEPTED = "accepted"
"""The provider accepted the credentials."""
REJECTED = "rejected"
"""The provider refused them: wrong, revoked, or for another account."""
UNREACHABLE = "unreachable"
"""No usable answer: the provider could not be reached, timed out or failed."""
CHECKING = "checking"
"""The first check for these credentials is still running."""
MISSING = "missing"
"""The credentials are not set, so nothing was asked."""


@attrs.frozen
class CredentialCheck:
    """One answer from the provider about the credentials, and when it was had.

    :param outcome: :data:`ACCEPTED`, :data:`REJECTED` or :data:`UNREACHABLE` (or
        :data:`CHECKING`); only :data:`ACCEPTED` makes the channel healthy.
    :param detail: one sentence for the health report; never a secret.
    :param checked_at: when the provider answered; None while the first check runs.
    :param expires: ``time.monotonic()`` after which the answer is asked again.
    :param facts: extra entries for the health report's ``checks`` (e.g. the account's
        name), added as they are.
    """

    outcome: str
    detail: str
    checked_at: datetime | None = None
    expires: float = 0.0
    facts: dict[str, Any] = attrs.field(factory=dict)


class CredentialChecker:
    """The cached, single-flight credential checks of one channel, one per key.

    Make one per channel module; each gunicorn worker then has its own.

    :param ttl_seconds: how long an answer, good or bad, is kept.
    :param in_progress_detail: the detail while the first check for a key is running.
    """

    def __init__(
        self,
        ttl_seconds: float = 60.0,
        in_progress_detail: str = "credentials check in progress",
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.in_progress = CredentialCheck(outcome=CHECKING, detail=in_progress_detail)
        self._checks: dict[Hashable, CredentialCheck] = {}
        self._running: set[Hashable] = set()
        self._lock = threading.Lock()  # guards the two above; never held while asking

    def check(
        self, key: Hashable, ask: Callable[[], CredentialCheck], now: float | None = None
    ) -> CredentialCheck:
        """The cached answer for ``key``, or ``ask()``'s when it is older than the TTL;
        while another thread is asking, the stale answer or :attr:`in_progress`.

        :param key: what identifies the credentials and where they are checked (e.g. the
            account id, the token and the API's base URL): a change to any of them is a
            new check. Kept in memory only.
        :param ask: asks the provider and returns its answer's ``outcome``, ``detail`` and
            ``facts`` (``checked_at`` and ``expires`` are set here); it must not raise for
            a provider's failure: answer :data:`UNREACHABLE` or :data:`REJECTED`.
        :param now: ``time.monotonic()`` to judge freshness by (tests pass a later one).
        """
        answer = self._start(key, now)
        if answer is not None:
            return answer
        try:
            return self._keep(key, ask())
        finally:
            self._finish(key)

    async def check_async(
        self, key: Hashable, ask: Callable[[], Awaitable[CredentialCheck]], now: float | None = None
    ) -> CredentialCheck:
        """:meth:`check` for an ``async`` health hook: ``ask`` is awaited (on the event loop,
        so it must not block); the other callers are answered the same way meanwhile."""
        answer = self._start(key, now)
        if answer is not None:
            return answer
        try:
            return self._keep(key, await ask())
        finally:
            self._finish(key)

    def _start(self, key: Hashable, now: float | None) -> CredentialCheck | None:
        """The answer to give without asking, or None when this caller is to ask (it is
        then marked as running for ``key``)."""
        moment = time.monotonic() if now is None else now
        with self._lock:
            cached = self._checks.get(key)
            if cached is not None and cached.expires > moment:
                return cached
            if key in self._running:
                return cached or self.in_progress
            self._running.add(key)
            return None

    def _keep(self, key: Hashable, answer: CredentialCheck) -> CredentialCheck:
        """``answer``, stamped now and kept for the TTL."""
        check = attrs.evolve(
            answer, checked_at=datetime.now(UTC), expires=time.monotonic() + self.ttl_seconds
        )
        with self._lock:
            self._checks[key] = check
        return check

    def _finish(self, key: Hashable) -> None:
        with self._lock:
            self._running.discard(key)


def credentials_health(settings: ChannelSettings, check: CredentialCheck | None) -> ChannelHealth:
    """The channel's health report: what is missing or unusable, then what the provider
    said of the credentials.

    :param settings: the channel's settings.
    :param check: the credentials check, or None when the credentials are not there to
        check (``credentials`` is then :data:`MISSING`).
    :returns: ok only when configured and the credentials were accepted; ``checks`` holds
        ``configured``, ``missing`` and ``invalid`` (when any), ``credentials`` (the
        outcome), ``checked_at`` (once answered) and the check's ``facts``.
    """
    checks: dict[str, Any] = {"configured": settings.configured}
    if settings.missing:
        checks["missing"] = list(settings.missing)
    if settings.invalid:
        checks["invalid"] = list(settings.invalid)
    if check is None:
        checks["credentials"] = MISSING
        return ChannelHealth(ok=False, detail=f"not configured: {settings.problems}", checks=checks)
    checks["credentials"] = check.outcome
    if check.checked_at is not None:
        checks["checked_at"] = format_timestamp(check.checked_at)
    checks.update(check.facts)
    if not settings.configured:
        detail = f"not configured: {settings.problems}; {check.detail}"
    else:
        detail = check.detail
    return ChannelHealth(
        ok=settings.configured and check.outcome == ACCEPTED, detail=detail, checks=checks
    )
