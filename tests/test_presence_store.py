"""Presence's store on SQLite and on the Firestore emulator: one contract for both backends
(users' open event streams, kept, refreshed, dropped and pruned; the status each user set),
and the ``Presence`` service read from it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from omnichannel_core.modules.events.presence.records import (
    OpenStream,
    OwnPresence,
    State,
    Status,
    UserStatus,
)
from omnichannel_core.modules.events.presence.service import StoredPresence
from omnichannel_core.modules.events.presence.store import PresenceStore, presence_store_spec
from omnichannel_core.modules.events.presence.timing import PresenceTiming
from omnichannel_core.services import PresentUser
from omnichannel_core.testing.stores import run_store

STORE = presence_store_spec()
START = datetime(2025, 5, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "firestore"])
def database(request: pytest.FixtureRequest) -> Any:
    """A fresh database of each backend (the kit's fixtures)."""
    return request.getfixturevalue(f"{request.param}_database")


def at(seconds: float) -> datetime:
    return START + timedelta(seconds=seconds)


def stream(n: int, user_id: str, opened: float = 0, seen: float | None = None) -> OpenStream:
    return OpenStream(
        f"pst_{n:04d}",
        user_id,
        f"host:{1000 + n}",
        at(opened),
        at(opened if seen is None else seen),
    )


def by_id(streams: list[OpenStream]) -> dict[str, OpenStream]:
    return {each.stream_id: each for each in streams}


def test_streams_are_kept_refreshed_listed_and_dropped(database):
    """A kept stream reads back whole; keeping it again with a later ``seen_at`` refreshes
    it (the same stream, not a second). The streams seen since a time are listed, all
    users' or one user's; a stream seen before that time is left out. A dropped stream is
    gone, and dropping one that is not there (or again) changes nothing."""

    async def scenario(store: PresenceStore) -> None:
        first, second, other = stream(1, "usr_a"), stream(2, "usr_a", 5), stream(3, "usr_b", 8)
        for each in (first, second, other):
            await store.keep_stream(each)
        assert by_id(await store.streams(at(0))) == by_id([first, second, other])
        assert by_id(await store.streams(at(0), "usr_a")) == by_id([first, second])
        assert await store.streams(at(0), "usr_nobody") == []
        assert by_id(await store.streams(at(5))) == by_id([second, other])
        assert by_id(await store.streams(at(5), "usr_a")) == by_id([second])

        refreshed = stream(1, "usr_a", opened=0, seen=30)
        await store.keep_stream(refreshed)
        assert by_id(await store.streams(at(20))) == by_id([refreshed])
        assert len(await store.streams(at(0), "usr_a")) == 2

        await store.drop_stream(second.stream_id)
        assert by_id(await store.streams(at(0), "usr_a")) == by_id([refreshed])
        await store.drop_stream(second.stream_id)
        await store.drop_stream("pst_never")
        assert by_id(await store.streams(at(0))) == by_id([refreshed, other])

    run_store(STORE, database, scenario)


def test_pruning_deletes_only_the_streams_not_seen_since(database):
    """Pruning deletes the streams last seen before the given time, and says how many; the
    others stay, and pruning again deletes nothing. A pruned stream kept again (its process
    had stalled) is back."""

    async def scenario(store: PresenceStore) -> None:
        stale = [stream(n, f"usr_{n % 3}", seen=n) for n in range(5)]
        live = [stream(n, f"usr_{n % 3}", seen=100 + n) for n in range(5, 8)]
        for each in (*stale, *live):
            await store.keep_stream(each)
        assert await store.prune_streams(at(100)) == 5
        assert by_id(await store.streams(at(0))) == by_id(live)
        assert await store.prune_streams(at(100)) == 0
        back = stream(0, "usr_0", seen=120)
        await store.keep_stream(back)
        assert by_id(await store.streams(at(0))) == by_id([*live, back])

    run_store(STORE, database, scenario)


def test_a_status_is_kept_per_user_and_replaced(database):
    """A user's status reads back with when it was set; setting it again replaces it; a
    user who never set one is absent; asking for nobody answers nothing. Many users are
    read at once."""

    async def scenario(store: PresenceStore) -> None:
        assert await store.statuses([]) == {}
        assert await store.statuses(["usr_a"]) == {}
        away = UserStatus("usr_a", Status.AWAY, at(1))
        await store.set_status(away)
        assert await store.statuses(["usr_a", "usr_b"]) == {"usr_a": away}
        back = UserStatus("usr_a", Status.AVAILABLE, at(2))
        await store.set_status(back)
        assert await store.statuses(["usr_a", "usr_a"]) == {"usr_a": back}

        many = [UserStatus(f"usr_{n:04d}", Status.AWAY, at(n)) for n in range(0, 620, 60)]
        for each in many:
            await store.set_status(each)
        wanted = [f"usr_{n:04d}" for n in range(620)]
        assert await store.statuses(wanted) == {each.user_id: each for each in many}

    run_store(STORE, database, scenario)


def test_the_service_counts_each_connected_user_once(database):
    """``present()`` lists each user with a stream seen within the timeout once: how many
    streams they have open, since when (their oldest open stream), and their status
    (``available`` until they set one), longest connected first. A stream not seen within
    the timeout counts for nothing, and pruning deletes it. A user's own presence says
    ``online``, ``away`` or ``offline``; the status set is kept while they are offline."""
    now = at(1000)
    timing = PresenceTiming(timedelta(seconds=90))

    async def scenario(store: PresenceStore) -> None:
        presence = StoredPresence(store, timing, clock=lambda: now)
        await store.keep_stream(stream(1, "usr_a", opened=900, seen=990))
        await store.keep_stream(stream(2, "usr_a", opened=950, seen=995))
        await store.keep_stream(stream(3, "usr_b", opened=800, seen=960))
        await store.keep_stream(stream(4, "usr_gone", opened=100, seen=909))  # > 90 s ago
        await store.set_status(UserStatus("usr_b", Status.AWAY, at(850)))
        await store.set_status(UserStatus("usr_offline", Status.AWAY, at(850)))

        assert await presence.present() == [
            PresentUser("usr_b", "away", at(800), 1),
            PresentUser("usr_a", "available", at(900), 2),
        ]
        assert await presence.of_user("usr_a") == OwnPresence(
            "usr_a", Status.AVAILABLE, State.ONLINE, 2, at(900)
        )
        assert (await presence.of_user("usr_b")).presence is State.AWAY
        assert await presence.of_user("usr_offline") == OwnPresence(
            "usr_offline", Status.AWAY, State.OFFLINE, 0, None
        )
        assert await presence.of_user("usr_gone") == OwnPresence(
            "usr_gone", Status.AVAILABLE, State.OFFLINE, 0, None
        )
        changed = await presence.set_status("usr_a", Status.AWAY)
        assert changed == OwnPresence("usr_a", Status.AWAY, State.AWAY, 2, at(900))

        assert await presence.prune() == 1
        assert {each.user_id for each in await store.streams(at(0))} == {"usr_a", "usr_b"}

    run_store(STORE, database, scenario)
