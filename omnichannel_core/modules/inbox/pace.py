"""The arithmetic of a shared send pace, the same on every backend.

A pace is one record per channel (or sender) in the store: the time of its next free slot,
and how much it is slowed. Runners reserve slots from it in blocks
(:meth:`OutboxStore.reserve_pace`), so every runner and server shares one rate. A provider's
429 halves the rate (:func:`slowed`); it then climbs back linearly, to the full rate after
:data:`RECOVERY_SECONDS` (additive increase, multiplicative decrease).
"""

from __future__ import annotations

import attrs

RECOVERY_SECONDS = 60.0
"""How long a pace halved from full takes to climb back to it."""
SLOWEST_FRACTION = 1 / 64
"""The lowest share of its rate a pace falls to, however often it is throttled."""


@attrs.frozen
class PaceRecord:
    """A pace as stored: the next free slot (epoch seconds) and, since ``slowed_at``, the
    share of the rate it had then (``fraction``)."""

    next_free: float = 0.0
    fraction: float = 1.0
    slowed_at: float = 0.0


def fraction_at(record: PaceRecord, now: float) -> float:
    """The share of its rate the pace has at ``now``."""
    recovered = record.fraction + max(0.0, now - record.slowed_at) / RECOVERY_SECONDS
    return min(1.0, recovered)


def reserved(
    record: PaceRecord, interval: float, count: int, now: float
) -> tuple[PaceRecord, float, float]:
    """Reserve ``count`` slots: the record after it, the first slot's time and the spacing
    of the slots (``interval`` stretched by the slowdown)."""
    spacing = interval / fraction_at(record, now)
    start = max(now, record.next_free)
    return attrs.evolve(record, next_free=start + spacing * count), start, spacing


def slowed(record: PaceRecord, until: float, now: float) -> PaceRecord:
    """The record after the provider throttled it: half the current share of the rate, and
    no slot before ``until`` (its ``Retry-After``)."""
    fraction = max(SLOWEST_FRACTION, fraction_at(record, now) / 2)
    return PaceRecord(next_free=max(record.next_free, until), fraction=fraction, slowed_at=now)
