"""The job runner's leases and the subscribers' cursors, as
``omnichannel_core.store.protocols.JobStore`` promises them: a lease held by one runner at a
time, renewed by its holder, taken over once it expired or was handed back; a subscriber's
place in the event log kept as it was saved."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from omnichannel_core.models import utcnow
from omnichannel_core.store.protocols import Lease, SubscriberState
from tests.store_contract.fixtures import StoreFixtures

TTL = timedelta(seconds=30)
MICROSECOND = timedelta(microseconds=1)


class JobsContract(StoreFixtures):
    """What ``take_lease``, ``release_lease``, ``record_run``, ``leases`` and the subscriber
    methods of the job store promise."""

    # Leases

    def test_a_lease_is_held_by_one_holder_at_a_time(self, run):
        """A free lease is taken until ``now + ttl``, with no run recorded yet; while it
        runs, another holder asking gets None and the lease stays its holder's. Leases of
        other names are apart."""
        now = utcnow()
        lease = run(self.jobs.take_lease("prune", "runner-a", TTL, now))
        assert lease == Lease("prune", "runner-a", now + TTL, None)
        assert run(self.jobs.take_lease("prune", "runner-b", TTL, now)) is None
        assert run(self.jobs.take_lease("prune", "runner-b", TTL, now + TTL - MICROSECOND)) is None
        other = run(self.jobs.take_lease("digest", "runner-b", TTL, now))
        assert other == Lease("digest", "runner-b", now + TTL, None)
        assert run(self.jobs.leases()) == [other, lease]

    def test_the_holder_renews_its_lease(self, run):
        """Its holder taking the lease again moves its expiry on from the new ``now``; another
        holder still gets None until that new expiry."""
        now = utcnow()
        run(self.jobs.take_lease("prune", "runner-a", TTL, now))
        renewed = run(self.jobs.take_lease("prune", "runner-a", TTL, now + TTL / 2))
        assert renewed == Lease("prune", "runner-a", now + TTL / 2 + TTL, None)
        assert run(self.jobs.take_lease("prune", "runner-b", TTL, now + TTL)) is None
        assert run(self.jobs.leases()) == [renewed]

    def test_an_expired_lease_is_taken_over_once(self, run):
        """Once its expiry has come, the lease goes to the first holder asking, alone among
        several asking at once; the holder that let it expire then gets None."""
        now = utcnow()
        run(self.jobs.take_lease("prune", "runner-a", TTL, now))
        later = now + TTL

        async def together() -> list[Lease | None]:
            return await asyncio.gather(
                *(self.jobs.take_lease("prune", f"runner-{n}", TTL, later) for n in range(1, 6))
            )

        taken = [lease for lease in run(together()) if lease is not None]
        assert len(taken) == 1
        [winner] = taken
        assert winner.holder != "runner-a"
        assert winner.expires_at == later + TTL
        assert run(self.jobs.take_lease("prune", "runner-a", TTL, later)) is None
        assert run(self.jobs.leases()) == [winner]

    def test_a_released_lease_is_taken_by_another_at_once(self, run):
        """Its holder handing the lease back lets another take it at once, before the time it
        would have expired; a release by anyone else changes nothing."""
        run(self.jobs.take_lease("prune", "runner-a", TTL, utcnow()))
        run(self.jobs.release_lease("prune", "runner-b"))
        assert run(self.jobs.take_lease("prune", "runner-b", TTL, utcnow())) is None
        run(self.jobs.release_lease("prune", "runner-a"))
        now = utcnow()
        taken = run(self.jobs.take_lease("prune", "runner-b", TTL, now))
        assert taken == Lease("prune", "runner-b", now + TTL, None)
        run(self.jobs.release_lease("never-taken", "runner-a"))
        assert [lease.name for lease in run(self.jobs.leases())] == ["prune"]

    def test_the_last_run_is_kept_across_holders(self, run):
        """record_run by the holder notes when it last finished a run; a holder that does not
        hold the lease records nothing; the time stays with the lease when it is released
        and taken by another, who moves it on."""
        first_run = utcnow()
        run(self.jobs.take_lease("prune", "runner-a", TTL, utcnow()))
        run(self.jobs.record_run("prune", "runner-a", first_run))
        run(self.jobs.record_run("prune", "runner-b", first_run + TTL))
        [lease] = run(self.jobs.leases())
        assert (lease.holder, lease.last_run_at) == ("runner-a", first_run)
        renewed = run(self.jobs.take_lease("prune", "runner-a", TTL, utcnow()))
        assert renewed.last_run_at == first_run
        run(self.jobs.release_lease("prune", "runner-a"))
        [released] = run(self.jobs.leases())
        assert released.last_run_at == first_run
        taken = run(self.jobs.take_lease("prune", "runner-b", TTL, utcnow()))
        assert (taken.holder, taken.last_run_at) == ("runner-b", first_run)
        second_run = first_run + TTL
        run(self.jobs.record_run("prune", "runner-b", second_run))
        [lease] = run(self.jobs.leases())
        assert (lease.holder, lease.last_run_at) == ("runner-b", second_run)

    # Subscribers' cursors

    def test_subscriber_states_are_saved_and_read_back(self, run):
        """A subscriber that never ran has no state; each state saved is read back as it
        was (a new cursor, a failure counted, a failure cleared), and every subscriber is
        listed by name."""
        assert run(self.jobs.subscriber("search")) is None
        assert run(self.jobs.subscribers()) == []
        now = utcnow()
        started = SubscriberState("search", None, now)
        run(self.jobs.save_subscriber(started))
        assert run(self.jobs.subscriber("search")) == started
        failing = SubscriberState(
            "search", "cursor-7", now + TTL, failures=2, last_error="RuntimeError: boom"
        )
        run(self.jobs.save_subscriber(failing))
        assert run(self.jobs.subscriber("search")) == failing
        cleared = SubscriberState("search", "cursor-8", now + 2 * TTL)
        run(self.jobs.save_subscriber(cleared))
        assert run(self.jobs.subscriber("search")) == cleared
        other = SubscriberState("audit", "cursor-1", now, behind=True)
        run(self.jobs.save_subscriber(other))
        assert run(self.jobs.subscribers()) == [other, cleared]

    def test_a_resync_asked_is_counted_and_kept_until_one_begins_after_it(self, run):
        """ask_resync counts the requests (0 for a subscriber with no state, which gets
        none); saving a state (a feed moving its cursor) never drops one; a state saved
        with ``resynced`` at the count clears it, one below does not."""
        now = utcnow()
        run(self.jobs.save_subscriber(SubscriberState("search", "cursor-1", now)))
        assert not run(self.jobs.subscriber("search")).resync
        assert run(self.jobs.ask_resync("search")) == 1
        assert run(self.jobs.ask_resync("search")) == 2
        assert run(self.jobs.ask_resync("nobody")) == 0
        assert run(self.jobs.subscriber("nobody")) is None
        run(self.jobs.save_subscriber(SubscriberState("search", "cursor-2", now)))
        state = run(self.jobs.subscriber("search"))
        assert (state.cursor, state.resync, state.resync_asked) == ("cursor-2", True, 2)
        run(self.jobs.save_subscriber(SubscriberState("search", None, now, resynced=1)))
        assert run(self.jobs.subscriber("search")).resync
        run(self.jobs.save_subscriber(SubscriberState("search", None, now, resynced=2)))
        assert not run(self.jobs.subscriber("search")).resync
        started = SubscriberState("fresh", None, now, resync_asked=1)
        assert run(self.jobs.start_subscriber(started)).resync

    def test_mark_behind_flags_one_subscriber(self, run):
        """mark_behind sets ``behind`` and keeps the rest of the state; it touches no other
        subscriber and makes none up; the next state saved says whether it still is."""
        now = utcnow()
        search = SubscriberState("search", "cursor-3", now, failures=1, last_error="E: x")
        digest = SubscriberState("digest", "cursor-5", now)
        for state in (search, digest):
            run(self.jobs.save_subscriber(state))
        run(self.jobs.mark_behind("search"))
        run(self.jobs.mark_behind("nobody"))
        assert run(self.jobs.subscriber("search")) == SubscriberState(
            "search", "cursor-3", now, failures=1, last_error="E: x", behind=True
        )
        assert run(self.jobs.subscriber("nobody")) is None
        assert run(self.jobs.subscribers()) == [
            digest,
            SubscriberState("search", "cursor-3", now, failures=1, last_error="E: x", behind=True),
        ]
        resynchronised = SubscriberState("search", "cursor-9", now + TTL)
        run(self.jobs.save_subscriber(resynchronised))
        assert run(self.jobs.subscriber("search")) == resynchronised
