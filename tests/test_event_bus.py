"""The buses that tell server processes the event log grew: the polling bus, and the
Pub/Sub bus against the official Pub/Sub emulator."""

from __future__ import annotations

import asyncio
import time

import pytest
from google.auth.compute_engine import _metadata as gce_metadata

from omnichannel_core.bus.bus import PollingBus
from omnichannel_core.bus.news import News
from omnichannel_core.bus.pubsub import PubSubBus, bus_credentials
from omnichannel_core.config import Config
from omnichannel_core.errors import ConfigError
from omnichannel_core.store.firestore.client import SERVICE_ACCOUNT_VARIABLES
from omnichannel_core.store.sqlite.database import SqliteDatabase
from tests.support.google_keys import new_private_key_pem


def elapsed(started: float) -> float:
    return time.monotonic() - started


def test_the_polling_bus_waits_its_interval_unless_this_process_rings():
    """Without a ring, wait lasts the poll interval (or less when asked); a ring from this
    process ends a wait at once."""

    async def scenario() -> tuple[float, float, float]:
        bus = PollingBus(interval=0.3)
        await bus.start()
        started = time.monotonic()
        await bus.wait(10)
        idle = elapsed(started)
        started = time.monotonic()
        await bus.wait(0.05)
        short = elapsed(started)
        asyncio.get_running_loop().call_later(0.05, bus.ring)
        started = time.monotonic()
        await bus.wait(10)
        rung = elapsed(started)
        await bus.close()
        return idle, short, rung

    idle, short, rung = asyncio.run(scenario())
    assert 0.25 <= idle < 5
    assert short < 0.25
    assert rung < 0.25


def test_the_polling_bus_on_sqlite_wakes_only_when_the_file_changed(tmp_path):
    """With the database's ``data_version``, a poll that finds nothing committed since the
    last one goes on waiting (up to ``at_most``); a commit by another connection (another
    process's) ends the wait at the next poll; a database that cannot tell (None) or fails
    wakes at every poll."""

    async def scenario() -> tuple[float, float, float, float]:
        path = tmp_path / "omnichannel.db"
        database, other = SqliteDatabase(path), SqliteDatabase(path)
        for each in (database, other):
            await each.migrate([])
            await each.open()
        await other.write(lambda c: c.execute("CREATE TABLE t (x)"))
        bus = PollingBus(interval=0.05, data_version=database.data_version)
        await bus.start()
        await bus.wait(0.2)  # the first poll learns the version
        started = time.monotonic()
        await bus.wait(0.6)
        idle = elapsed(started)
        asyncio.get_running_loop().call_later(
            0.2,
            lambda: asyncio.ensure_future(
                other.write(lambda c: c.execute("INSERT INTO t VALUES (1)"))
            ),
        )
        started = time.monotonic()
        await bus.wait(5)
        changed = elapsed(started)
        for each in (database, other):
            await each.close()

        async def unknown() -> None:
            return None

        async def failing() -> int:
            raise OSError("disk gone")

        times = []
        for version in (unknown, failing):
            blind = PollingBus(interval=0.05, data_version=version)
            await blind.start()
            started = time.monotonic()
            await blind.wait(5)
            times.append(elapsed(started))
        return idle, changed, *times

    idle, changed, unknown, failing = asyncio.run(scenario())
    assert idle >= 0.55  # nothing committed: the whole of at_most
    assert 0.15 <= changed < 1.0
    assert unknown < 0.5 and failing < 0.5


@pytest.fixture
def pubsub_env(pubsub_emulator, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", pubsub_emulator.host_port)
    return pubsub_emulator.host_port


def test_a_ring_reaches_every_process_subscribed_to_the_topic(pubsub_env):
    """Three buses on one topic (three server processes): a ring from one wakes all three,
    the ringer too, well before the fallback timeout; each has a subscription of its own,
    deleted when it closes."""

    async def scenario() -> list[float]:
        buses = [PubSubBus("demo-bus", "events", Config()) for _ in range(3)]
        for bus in buses:
            await bus.start()
        assert len({bus._subscription for bus in buses}) == 3
        await asyncio.sleep(0.5)  # let the streaming pulls settle
        started = time.monotonic()
        buses[0].ring()
        waits = await asyncio.gather(*(timed_wait(bus, 30) for bus in buses))
        for bus in buses:
            await bus.close()
        return [wait - (started - started) for wait in waits]

    async def timed_wait(bus: PubSubBus, at_most: float) -> float:
        started = time.monotonic()
        await bus.wait(at_most)
        return elapsed(started)

    waits = asyncio.run(scenario())
    assert all(wait < 10 for wait in waits), waits


def test_a_burst_of_rings_is_coalesced_and_none_is_lost(pubsub_env):
    """A hundred rings at once publish few messages, and a listener still hears news after
    the last one (a ring during a publish is sent when it finishes)."""

    async def scenario() -> tuple[int, float]:
        ringer = PubSubBus("demo-bus", "burst", Config())
        listener = PubSubBus("demo-bus", "burst", Config())
        await ringer.start()
        await listener.start()
        await asyncio.sleep(0.5)
        published = 0
        original = ringer._publisher.publish

        def counting(*args, **kwargs):
            nonlocal published
            published += 1
            return original(*args, **kwargs)

        ringer._publisher.publish = counting
        for _ in range(100):
            ringer.ring()
        started = time.monotonic()
        await listener.wait(30)
        heard = elapsed(started)
        await asyncio.sleep(1.0)  # let the follow-up publish go out
        await ringer.close()
        await listener.close()
        return published, heard

    published, heard = asyncio.run(scenario())
    assert 1 <= published <= 3
    assert heard < 10


def test_an_unreachable_pubsub_is_a_clear_configuration_error(monkeypatch):
    """With the emulator address pointing at nothing, starting the bus fails with a
    ConfigError naming OMNICHANNEL_EVENT_BUS, not a hang or a traceback from the client."""
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", "127.0.0.1:9")

    async def scenario() -> None:
        await PubSubBus("demo-bus", "events", Config()).start()

    with pytest.raises(ConfigError, match="OMNICHANNEL_EVENT_BUS"):
        asyncio.run(scenario())


def test_the_bus_uses_the_stores_service_account():
    """With the FIREBASE_* variables set and no emulator, the bus connects with that service
    account (one secret for the store and the bus); with the emulator, it needs none."""
    environ = {
        "FIREBASE_PROJECT_ID": "omni-prod-1",
        "FIREBASE_PRIVATE_KEY": new_private_key_pem(),
        "FIREBASE_CLIENT_EMAIL": "bus@omni-prod-1.iam.gserviceaccount.com",
    }
    credentials = bus_credentials(environ)
    assert credentials.service_account_email == "bus@omni-prod-1.iam.gserviceaccount.com"
    assert bus_credentials({**environ, "PUBSUB_EMULATOR_HOST": "127.0.0.1:8085"}) is None


def test_no_credentials_for_pubsub_is_a_clear_configuration_error(monkeypatch, tmp_path):
    """No emulator, no service account and no Application Default Credentials: making the
    bus (at start-up) fails with a ConfigError naming the variables to set, not Google's
    traceback."""
    for name in (
        "PUBSUB_EMULATOR_HOST",
        "GOOGLE_APPLICATION_CREDENTIALS",
        *SERVICE_ACCOUNT_VARIABLES,
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path))  # no gcloud login found either
    monkeypatch.setattr(gce_metadata, "_NO_GCE_CHECK", True)  # never ask a metadata server

    with pytest.raises(ConfigError, match="FIREBASE_PRIVATE_KEY") as raised:
        PubSubBus("omni-prod-1", "events", Config())
    assert raised.value.details["variable"] == "GOOGLE_APPLICATION_CREDENTIALS"


def test_news_stops_when_cancelled_just_as_the_bus_rings():
    """The process's news waiter ends when it is closed at the moment a ring arrives, at
    whatever step of the ring it lands (Python 3.11's ``asyncio.wait_for`` swallowed such a
    cancellation, and the server hung at shutdown)."""

    async def close_after(steps: int) -> None:
        bus = PollingBus(interval=30)
        await bus.start()
        news = News(bus)
        with news.listening():
            for _ in range(3):
                await asyncio.sleep(0)  # the pump is waiting on the bus
            bus.ring()
            for _ in range(steps):
                await asyncio.sleep(0)
            async with asyncio.timeout(5):
                await news.close()

    for steps in range(8):
        started = time.monotonic()
        asyncio.run(close_after(steps))
        assert elapsed(started) < 2, f"closing {steps} steps after the ring hung"
