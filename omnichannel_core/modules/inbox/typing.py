"""Typing indicators: ``conversation.typing`` events, and how often they are logged.

A party of a conversation (its contact, through its channel's ``ChannelInbox.typing``; a
user, through ``POST /api/conversations/{id}/typing``) says it is typing as often as its
client likes; the inbox logs at most one event per party and conversation every
:data:`THROTTLE_SECONDS`, each saying to show the indicator for :data:`SHOWN_SECONDS`
(``until``), or until that party's message arrives. So a client that repeats itself while
its user types keeps the indicator on with a few events a minute, and one that stops lets
it go out by itself.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable

SHOWN_SECONDS = 6.0
"""How long after an event its indicator is shown (``until``): twice the throttle, so a
party that keeps typing keeps it on, a lost event or two included."""
THROTTLE_SECONDS = 3.0
"""At most one event per (conversation, party) this often, per process."""
MAX_KEYS = 100_000
"""(conversation, party) pairs remembered per process, the least recently signalled
forgotten beyond this: a forgotten pair logs its next signal, which only costs an event."""


class TypingThrottle:
    """Which typing signals are logged: a key's first, then one every ``seconds``; the
    most recently logged ``max_keys`` keys are remembered.

    :param clock: seconds from a monotonic clock; tests pass their own.
    """

    def __init__(
        self,
        seconds: float = THROTTLE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.seconds = seconds
        self.clock = clock
        self.max_keys = max_keys
        self._logged: OrderedDict[Hashable, float] = OrderedDict()

    def admit(self, key: Hashable) -> bool:
        """True when a signal of ``key`` is to be logged now (none was these ``seconds``),
        noting it; False, changing nothing, when it is not."""
        now = self.clock()
        last = self._logged.get(key)
        if last is not None and now - last < self.seconds:
            return False
        self._logged.pop(key, None)
        self._logged[key] = now  # (re-)inserted: now the most recently logged
        if len(self._logged) > self.max_keys:
            self._logged.popitem(last=False)
        return True

    def forget(self, key: Hashable) -> None:
        """Let ``key``'s next signal through: the one admitted was not logged after all."""
        self._logged.pop(key, None)

    def __len__(self) -> int:
        return len(self._logged)
