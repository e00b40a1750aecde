"""A runner's pacer: slots handed out at the pace's rate, replies before bulk sends, a 429
halving the pace and the pace climbing back; the arithmetic the stores share."""

from __future__ import annotations

import asyncio
import time

import pytest

from omnichannel_core.modules.inbox.pace import (
    RECOVERY_SECONDS,
    SLOWEST_FRACTION,
    PaceRecord,
    fraction_at,
    reserved,
    slowed,
)
from omnichannel_core.modules.inbox.pacer import Pacer
from omnichannel_core.modules.inbox.send_policies import Pace
from omnichannel_core.modules.inbox.store.outbox import BULK, REPLY


class MemoryPaces:
    """The two pace methods of an OutboxStore, in memory, counting the writes."""

    def __init__(self) -> None:
        self.records: dict[str, PaceRecord] = {}
        self.writes = 0

    async def reserve_pace(
        self, key: str, interval: float, count: int, now: float
    ) -> tuple[float, float]:
        self.writes += 1
        record, start, spacing = reserved(self.records.get(key, PaceRecord()), interval, count, now)
        self.records[key] = record
        return start, spacing

    async def slow_pace(self, key: str, until: float, now: float) -> None:
        self.writes += 1
        self.records[key] = slowed(self.records.get(key, PaceRecord()), until, now)


def test_a_slowed_pace_halves_then_climbs_back_linearly():
    """A 429 halves the share of the rate (never below the floor) and keeps slots from
    before Retry-After; the share climbs back to whole over RECOVERY_SECONDS."""
    record = slowed(PaceRecord(next_free=100.0), until=110.0, now=100.0)
    assert (record.next_free, fraction_at(record, 100.0)) == (110.0, 0.5)
    assert fraction_at(record, 100.0 + RECOVERY_SECONDS / 4) == pytest.approx(0.75)
    assert fraction_at(record, 100.0 + RECOVERY_SECONDS) == 1.0
    for _ in range(20):
        record = slowed(record, until=0.0, now=100.0)
    assert fraction_at(record, 100.0) == SLOWEST_FRACTION
    _, start, spacing = reserved(record, 0.1, 5, 200.0)
    assert start == 200.0
    assert spacing == pytest.approx(0.1 / fraction_at(record, 200.0))


def test_slots_come_at_the_rate_with_one_write_a_second():
    """20 sends at 10 per second take about 2 seconds, and the pace's record is written
    once per second's worth of slots (two or three times), not once per send."""
    paces = MemoryPaces()
    pacer = Pacer(paces)  # type: ignore[arg-type]
    pace = Pace("http", 10.0)

    async def go() -> list[float]:
        times: list[float] = []

        async def one() -> None:
            await pacer.turn(pace, REPLY)
            times.append(time.monotonic())

        await asyncio.gather(*(one() for _ in range(20)))
        return times

    times = asyncio.run(go())
    assert 1.8 <= max(times) - min(times) <= 2.3
    assert paces.writes <= 3


def test_replies_take_the_next_slot_before_bulk_sends():
    """Bulk sends waiting on a pace let a reply that came later go first."""
    pacer = Pacer(MemoryPaces())  # type: ignore[arg-type]
    pace = Pace("twilio:+15550000000", 5.0)

    async def go() -> list[str]:
        order: list[str] = []

        async def send(name: str, priority: int) -> None:
            await pacer.turn(pace, priority)
            order.append(name)

        bulk = [asyncio.create_task(send(f"bulk{n}", BULK)) for n in range(8)]
        await asyncio.sleep(0.05)  # the bulk sends wait, one has its slot
        await send("reply", REPLY)
        await asyncio.gather(*bulk)
        return order

    order = asyncio.run(go())
    assert order.index("reply") <= 2  # behind at most the slots already handed out


def test_an_unpaced_channel_never_waits():
    """Rate 0: no slot, no store write."""
    paces = MemoryPaces()
    pacer = Pacer(paces)  # type: ignore[arg-type]

    async def go() -> None:
        await asyncio.gather(*(pacer.turn(Pace("http", 0.0), REPLY) for _ in range(100)))

    started = time.monotonic()
    asyncio.run(go())
    assert time.monotonic() - started < 0.5
    assert paces.writes == 0


def test_a_429_slows_the_pace_for_the_next_slots():
    """After slow(), this runner drops its reserved slots and the next come no sooner than
    the Retry-After, at half the rate."""
    paces = MemoryPaces()
    pacer = Pacer(paces)  # type: ignore[arg-type]
    pace = Pace("facebook", 20.0)

    async def go() -> tuple[float, float, float]:
        await pacer.turn(pace, REPLY)
        throttled = time.monotonic()
        await pacer.slow("facebook", retry_after=0.5)
        await pacer.turn(pace, REPLY)
        first = time.monotonic()
        await pacer.turn(pace, REPLY)
        return throttled, first, time.monotonic()

    throttled, first, second = asyncio.run(go())
    assert first - throttled >= 0.45
    assert second - first >= 1 / 10 - 0.02  # 10 per second now: half of 20
