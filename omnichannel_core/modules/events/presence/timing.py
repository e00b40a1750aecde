"""How long an open stream counts without news of it, and how often it gives news: the one
setting, ``OMNICHANNEL_PRESENCE_TIMEOUT_SECONDS`` (90)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import timedelta

import attrs

from omnichannel_core.module import ConfigError

TIMEOUT_VARIABLE = "OMNICHANNEL_PRESENCE_TIMEOUT_SECONDS"
DEFAULT_TIMEOUT_SECONDS = 90.0
MAX_REFRESH_SECONDS = 30.0
"""A stream refreshes its ``seen_at`` at most this often (a write to the store each time)."""
MIN_TIMEOUT_SECONDS = 1.0
MAX_TIMEOUT_SECONDS = 86_400.0


@attrs.frozen
class PresenceTiming:
    """:param timeout: a stream not seen for this long counts as gone (its process died
    without closing it), and is pruned."""

    timeout: timedelta = timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)

    @property
    def refresh_seconds(self) -> float:
        """How long an open stream waits before it refreshes its ``seen_at`` again: a
        third of the timeout, at most :data:`MAX_REFRESH_SECONDS` (30 s with the default
        90 s). The refresh comes with the next send, at most half a period later, so a
        live stream is seen at least every half timeout."""
        return min(MAX_REFRESH_SECONDS, self.timeout.total_seconds() / 3)


def presence_timing(environ: Mapping[str, str]) -> PresenceTiming:
    """The timing ``OMNICHANNEL_PRESENCE_TIMEOUT_SECONDS`` sets (default 90); ConfigError
    naming it for a value that is not a number of seconds from 1 to 86400."""
    text = environ.get(TIMEOUT_VARIABLE, "").strip() or str(DEFAULT_TIMEOUT_SECONDS)
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and MIN_TIMEOUT_SECONDS <= seconds <= MAX_TIMEOUT_SECONDS):
        raise ConfigError(
            f"{TIMEOUT_VARIABLE} must be a number of seconds from 1 to 86400, not {text!r}",
            variable=TIMEOUT_VARIABLE,
        )
    return PresenceTiming(timedelta(seconds=seconds))
