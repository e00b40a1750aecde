"""Customers' names from Messenger's User Profile API, when Facebook allows it.

``GET /{version}/{psid}?fields=first_name,last_name`` answers only when the app has the
permission (and the customer's settings allow it). A name is a nicety, never a reason to
lose a message: any error leaves the message unnamed, and the contact is named from a later
message once a lookup works (the core fills a contact's name only while it has none).

Lookups are cached per settings in each worker, so a customer's conversation costs one call
a day, not one per message:

- a name (or an answer without one): kept a day;
- an error about this customer (``#100``: no such user, not visible to the page): kept an
  hour;
- an error about all lookups (an invalid token, a missing permission, a rate limit): no
  lookups at all for :data:`PAUSE_SECONDS`, so a page without the permission never pays a
  call per message; an outage or an unreachable Graph API: none for a minute.

At most :data:`MAX_LOOKUPS_PER_WEBHOOK` customers are looked up per webhook, each with a
short timeout, so a batch from many new customers answers Facebook quickly.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

import httpx
import structlog

from omnichannel_facebook.graph_client import (
    GraphAnswerLost,
    GraphError,
    GraphUnreachable,
    graph_client,
)
from omnichannel_facebook.settings import FacebookSettings

log = structlog.get_logger("omnichannel.facebook")

LOOKUP_TIMEOUT = httpx.Timeout(3.0, connect=2.0)
NAME_TTL_SECONDS = 24 * 3600.0
REFUSED_TTL_SECONDS = 3600.0
PAUSE_SECONDS = 300.0
UNREACHABLE_PAUSE_SECONDS = 60.0
MAX_LOOKUPS_PER_WEBHOOK = 5
MAX_CACHED = 10_000
PROFILE_FIELDS = "first_name,last_name"
PSID = re.compile(r"^\d{1,64}$")
PERMISSION_CODES = frozenset({3, 10, *range(200, 300)})
"""Graph's "application does not have the capability" and permission errors."""

Fetch = Callable[[str], str | None]


class ProfileNames:
    """The cache in front of one page's User Profile API.

    :param fetch: asks Facebook for a PSID's name; raises the graph client's errors.
    :param clock: seconds, monotonic.
    """

    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.monotonic) -> None:
        self.fetch = fetch
        self.clock = clock
        self._names: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def _cached(self, psid: str, now: float) -> tuple[bool, str | None]:
        with self._lock:
            found = self._names.get(psid)
            if found is None or found[1] <= now:
                return False, None
            self._names.move_to_end(psid)
            return True, found[0]

    def _keep(self, psid: str, name: str | None, ttl: float) -> None:
        with self._lock:
            self._names[psid] = (name, self.clock() + ttl)
            self._names.move_to_end(psid)
            while len(self._names) > MAX_CACHED:
                self._names.popitem(last=False)

    def _pause(self, seconds: float) -> None:
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)

    def _paused(self, now: float) -> bool:
        with self._lock:
            return now < self._paused_until

    def names(self, psids: Iterable[str]) -> dict[str, str]:
        """The names known or found for ``psids``; customers without one are left out."""
        found: dict[str, str] = {}
        lookups = 0
        for psid in dict.fromkeys(psids):
            now = self.clock()
            hit, name = self._cached(psid, now)
            if not hit:
                if lookups >= MAX_LOOKUPS_PER_WEBHOOK or self._paused(now) or not PSID.match(psid):
                    continue
                lookups += 1
                name = self._look_up(psid)
            if name:
                found[psid] = name
        return found

    def _look_up(self, psid: str) -> str | None:
        try:
            name = self.fetch(psid)
        except GraphError as error:
            pause = _pause_after(error)
            if pause:
                self._pause(pause)
            else:
                self._keep(psid, None, REFUSED_TTL_SECONDS)
            log.info("facebook_profile_unavailable", graph_code=error.code, paused=bool(pause))
            return None
        except (GraphUnreachable, GraphAnswerLost) as error:
            self._pause(UNREACHABLE_PAUSE_SECONDS)
            log.info("facebook_profile_unavailable", error_type=type(error).__name__)
            return None
        self._keep(psid, name, NAME_TTL_SECONDS)
        return name


def _pause_after(error: GraphError) -> float:
    """How long no customer is looked up after ``error``; 0 when it is about one customer."""
    if error.is_invalid_token or error.is_rate_limit or error.code in PERMISSION_CODES:
        return PAUSE_SECONDS
    if error.is_transient:
        return UNREACHABLE_PAUSE_SECONDS
    return 0.0


def name_from_profile(profile: dict[str, object]) -> str | None:
    """ "First Last" from a profile answer; None when it holds neither."""
    parts = [profile.get(field) for field in ("first_name", "last_name")]
    name = " ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
    return name[:200] or None


def _fetcher(settings: FacebookSettings) -> Fetch:
    def fetch(psid: str) -> str | None:
        client = graph_client(settings, LOOKUP_TIMEOUT)
        return name_from_profile(client.get(psid, {"fields": PROFILE_FIELDS}))

    return fetch


_caches: dict[tuple[str | None, str, str], ProfileNames] = {}
_caches_lock = threading.Lock()


def profile_names(settings: FacebookSettings) -> ProfileNames:
    """The cache for the page of ``settings`` (which must be able to call the Graph API)."""
    key = (settings.page_access_token, settings.graph_api_base_url, settings.graph_api_version)
    with _caches_lock:
        cache = _caches.get(key)
        if cache is None:
            if len(_caches) >= 8:
                _caches.pop(next(iter(_caches)))
            cache = _caches[key] = ProfileNames(_fetcher(settings))
        return cache
