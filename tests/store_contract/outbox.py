"""The outbox: entries stored with their message, claimed once, marked attempted before the
send, retried, queued again or put in doubt when their runner dies, settled in the
transaction that settles the message, and the shared send paces."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
import pytest

from omnichannel_core.audit import AuditEntry
from omnichannel_core.errors import Conflict, NotFound
from omnichannel_core.ids import new_id
from omnichannel_core.models import Consent, Conversation, DeliveryStatus
from omnichannel_core.modules.inbox.store import InboxStore
from omnichannel_core.modules.inbox.store.outbox import BULK, Failure, OutboxState
from omnichannel_core.timestamps import utcnow
from tests.store_contract.fixtures import Run, StoreFixtures, inbound

LEASE = timedelta(seconds=60)
BUSY = Failure("503", "busy", {"retryable": True})
SOON = timedelta(seconds=5)


def _audit(action: str, message_id: str) -> AuditEntry:
    return AuditEntry(new_id("aud"), action, "user", "usr_ops", "message", message_id)


class OutboxContract(StoreFixtures):
    """What the outbox's part of the inbox store promises (``OutboxStore``)."""

    def _queued(
        self, store: InboxStore, run: Run[Any], text: str = "hi", **options: Any
    ) -> tuple[Conversation, str]:
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, text, (), {}, None, **options))
        return conversation, message.id

    def _claim(
        self,
        store: InboxStore,
        run: Run[Any],
        message_id: str,
        holder: str = "r1",
        attempt: bool = True,
    ):
        """Claim the entry for ``holder`` and, with ``attempt``, begin its attempt (as a
        runner does before calling the channel); the claim's answer."""
        now = utcnow()
        claimed = run(store.claim_outbound(message_id, holder, now + LEASE, now))
        if claimed is not None and attempt:
            assert run(store.begin_attempt(message_id, holder, now))
        return claimed

    def _claim_lapsed(
        self, store: InboxStore, run: Run[Any], message_id: str, attempt: bool, holder: str = "dead"
    ):
        """Claim the entry with a lease already over (its runner died), having begun its
        attempt while the lease ran, or not; the claim's answer."""
        lease_until = utcnow() - timedelta(seconds=1)
        claimed = run(store.claim_outbound(message_id, holder, lease_until, utcnow()))
        assert claimed is not None
        if attempt:
            before = lease_until - timedelta(seconds=1)
            assert run(store.begin_attempt(message_id, holder, before))
        return claimed

    def _expired(self, store: InboxStore, run: Run[Any], message_id: str):
        """The entry as expired_leases lists it now."""
        [entry] = [e for e in run(store.expired_leases(utcnow(), 10)) if e.message_id == message_id]
        return entry

    def test_a_new_message_is_due_at_once_with_its_address(self, store, run):
        """create_outbound stores the entry with the message: due now, a reply, its
        conversation's address; next_due_at names it."""
        conversation, message_id = self._queued(store, run)
        [entry] = run(store.due_outbound(utcnow(), 10))
        assert (entry.message_id, entry.channel, entry.address) == (
            message_id,
            "sms",
            conversation.address,
        )
        assert (entry.state, entry.priority, entry.attempts) == (OutboxState.QUEUED, 0, 0)
        assert run(store.next_due_at()) == entry.due_at

    def test_a_scheduled_message_is_not_due_before_its_time(self, store, run):
        """With send_at ahead the message keeps it and is not due; the backlog counts it as
        scheduled, not as waiting."""
        later = utcnow() + timedelta(hours=2)
        _, message_id = self._queued(store, run, send_at=later)
        assert run(store.get_message(message_id)).send_at == later
        assert run(store.due_outbound(utcnow(), 10)) == []
        assert run(store.next_due_at()) == later
        backlog = run(store.outbox_backlog(utcnow()))["sms"]
        assert (backlog.queued, backlog.scheduled, backlog.oldest_due_at) == (0, 1, None)
        assert [e.message_id for e in run(store.due_outbound(later, 10))] == [message_id]

    def test_replies_come_before_bulk_sends(self, store, run):
        """A reply queued after bulk sends is due first."""
        conversation = self._conversation(store, run)
        bulk = [
            run(store.create_outbound(conversation.id, f"b{n}", (), {}, None, priority=BULK))[0]
            for n in range(2)
        ]
        reply, _ = run(store.create_outbound(conversation.id, "r", (), {}, None))
        due = [entry.message_id for entry in run(store.due_outbound(utcnow(), 10))]
        assert due == [reply.id, bulk[0].id, bulk[1].id]

    def test_only_one_runner_claims_an_entry(self, store, run):
        """The first claim takes the entry (sending, not attempted yet: no attempt counted);
        a second finds nothing, and the entry is no longer due."""
        conversation, message_id = self._queued(store, run)
        claimed = self._claim(store, run, message_id, "r1", attempt=False)
        assert claimed is not None
        assert (claimed.entry.state, claimed.entry.lease_holder) == (OutboxState.SENDING, "r1")
        assert (claimed.entry.attempted, claimed.entry.attempts) == (False, 0)
        assert claimed.message.attempts == 0
        assert claimed.address == conversation.address
        assert self._claim(store, run, message_id, "r2", attempt=False) is None
        assert run(store.due_outbound(utcnow(), 10)) == []
        assert run(store.outbox_backlog(utcnow()))["sms"].sending == 1

    def test_the_send_settles_the_entry_with_the_message(self, store, run):
        """Recording the provider's answer with settle removes the entry (whatever status the
        provider gave) and clears an earlier attempt's error."""
        _, message_id = self._queued(store, run)
        self._claim(store, run, message_id)
        assert run(store.retry_outbound(message_id, "r1", utcnow(), BUSY))
        self._claim(store, run, message_id)
        applied = run(
            store.advance_message(
                message_id, DeliveryStatus.QUEUED, provider_message_id="SM1", settle=True
            )
        )
        assert applied.message.provider_message_id == "SM1"
        assert (applied.message.error_code, applied.message.error_message) == (None, None)
        assert applied.message.error_details == {}
        assert run(store.outbox_backlog(utcnow())) == {}
        assert self._claim(store, run, message_id) is None

    def test_a_retry_is_queued_by_its_holder_only(self, store, run):
        """retry_outbound needs the lease holder; the message stays queued with the error
        and is due again at the given time."""
        _, message_id = self._queued(store, run)
        self._claim(store, run, message_id, "r1")
        later = utcnow() + timedelta(minutes=1)
        assert not run(store.retry_outbound(message_id, "r2", later, BUSY))
        assert run(store.retry_outbound(message_id, "r1", later, BUSY))
        message = run(store.get_message(message_id))
        assert (message.status, message.error_code, message.attempts) == (
            DeliveryStatus.QUEUED,
            "503",
            1,
        )
        assert message.error_details == {"retryable": True}
        [event] = [e for e in run(self.events.after(None, 100)) if e.type.endswith("failed")]
        assert (event.type, event.record_id, event.data["attempts"]) == (
            "message.attempt_failed",
            message_id,
            1,
        )
        assert run(store.due_outbound(utcnow(), 10)) == []
        backlog = run(store.outbox_backlog(utcnow()))["sms"]
        assert (backlog.retrying, backlog.scheduled) == (1, 0)
        assert self._claim(store, run, message_id) is None  # not due yet

    def test_an_answer_lost_puts_the_message_in_doubt_until_its_callback(self, store, run):
        """doubt_outbound by the holder: the message is sending and in doubt, counted in
        doubt; a callback naming it (advance with the provider id) settles it."""
        _, message_id = self._queued(store, run)
        self._claim(store, run, message_id, "r1")
        now = utcnow()
        doubted = run(store.doubt_outbound(message_id, "r1", now + SOON, None, "timeout", now))
        assert (doubted.status, doubted.in_doubt) == (DeliveryStatus.SENDING, True)
        assert run(store.get_message(message_id)) == doubted
        assert run(store.outbox_backlog(utcnow()))["sms"].in_doubt == 1
        assert self._claim(store, run, message_id) is None  # never sent again blindly
        settled = run(store.advance_message(message_id, DeliveryStatus.SENT, "SM9"))
        assert (settled.message.status, settled.message.in_doubt) == (DeliveryStatus.SENT, False)
        assert run(store.outbox_backlog(utcnow())) == {}
        assert run(store.expire_doubt(message_id, now + 2 * SOON)) is None  # settled

    def test_a_dead_runners_send_goes_in_doubt_after_its_lease(self, store, run):
        """An entry whose lease ended after its attempt began is listed; doubt_outbound
        without a holder takes only such entries; with resend_at it is queued again (same
        message), still in doubt."""
        _, message_id = self._queued(store, run)
        self._claim_lapsed(store, run, message_id, attempt=True)
        now = utcnow()
        assert [e.message_id for e in run(store.expired_leases(now, 10))] == [message_id]
        doubted = run(store.doubt_outbound(message_id, None, now + SOON, now, "runner died", now))
        assert doubted.in_doubt is True
        assert run(store.doubt_outbound(message_id, None, now + SOON, now, "again", now)) is None
        [entry] = run(store.due_outbound(utcnow(), 10))
        assert (entry.message_id, entry.resend, entry.state) == (
            message_id,
            True,
            OutboxState.QUEUED,
        )

    def test_begin_attempt_marks_the_entry_of_its_holder_only(self, store, run):
        """begin_attempt marks the entry attempted and counts the attempt, on the message
        too, only for the holder of a lease still running; otherwise False (the runner then
        must not send), and nothing changes."""
        _, message_id = self._queued(store, run)
        now = utcnow()
        assert not run(store.begin_attempt(message_id, "r1", now))  # queued, not claimed
        assert not run(store.begin_attempt("msg_nope", "r1", now))
        self._claim(store, run, message_id, "r1", attempt=False)
        assert not run(store.begin_attempt(message_id, "r2", now))  # not its holder
        assert not run(store.begin_attempt(message_id, "r1", now + 2 * LEASE))  # lease over
        assert run(store.get_message(message_id)).attempts == 0
        assert run(store.begin_attempt(message_id, "r1", now))
        assert run(store.get_message(message_id)).attempts == 1
        [entry] = run(store.expired_leases(now + 2 * LEASE, 10))
        assert (entry.attempted, entry.attempts) == (True, 1)

    def test_an_entry_never_attempted_is_queued_again_when_its_lease_ends(self, store, run):
        """A runner that died before it began the attempt left a message provably not
        sent: requeue_unattempted queues it again, due now, with no attempt counted and the
        message queued, not in doubt; doubt_outbound then finds nothing to doubt; a new
        claim takes it."""
        _, message_id = self._queued(store, run)
        self._claim_lapsed(store, run, message_id, attempt=False)
        assert self._expired(store, run, message_id).attempted is False
        now = utcnow()
        assert run(store.requeue_unattempted(message_id, now))
        assert not run(store.requeue_unattempted(message_id, now))  # once
        assert run(store.doubt_outbound(message_id, None, now + SOON, None, "x", now)) is None
        [entry] = run(store.due_outbound(utcnow(), 10))
        assert (entry.message_id, entry.state, entry.due_at) == (
            message_id,
            OutboxState.QUEUED,
            now,
        )
        assert (entry.attempts, entry.resend, entry.lease_holder) == (0, False, None)
        message = run(store.get_message(message_id))
        assert (message.status, message.in_doubt, message.attempts) == (
            DeliveryStatus.QUEUED,
            False,
            0,
        )
        backlog = run(store.outbox_backlog(utcnow()))["sms"]
        assert (backlog.queued, backlog.sending, backlog.in_doubt) == (1, 0, 0)
        again = self._claim(store, run, message_id, "r2", attempt=False)
        assert (again.entry.attempted, again.entry.lease_holder) == (False, "r2")

    def test_an_entry_attempted_or_still_leased_is_not_queued_again(self, store, run):
        """requeue_unattempted leaves an entry whose attempt began (it goes in doubt, as
        before) and one whose lease still runs."""
        _, attempted = self._queued(store, run)
        self._claim_lapsed(store, run, attempted, attempt=True)
        assert self._expired(store, run, attempted).attempted is True
        now = utcnow()
        assert not run(store.requeue_unattempted(attempted, now))
        doubted = run(store.doubt_outbound(attempted, None, now + SOON, None, "died", now))
        assert (doubted.status, doubted.in_doubt, doubted.attempts) == (
            DeliveryStatus.SENDING,
            True,
            1,
        )
        _, leased = self._queued(store, run, text="leased")
        self._claim(store, run, leased, attempt=False)
        assert not run(store.requeue_unattempted(leased, utcnow()))
        assert run(store.outbox_backlog(utcnow()))["sms"].sending == 1

    def test_a_retry_is_claimed_unattempted_again(self, store, run):
        """An entry queued again after a retryable failure is claimed with its mark cleared:
        a runner dying before the second attempt leaves it queued again, one attempt
        counted, the first failure's error kept."""
        _, message_id = self._queued(store, run)
        self._claim(store, run, message_id)
        assert run(store.retry_outbound(message_id, "r1", utcnow(), BUSY))
        claimed = self._claim_lapsed(store, run, message_id, attempt=False)
        assert (claimed.entry.attempted, claimed.entry.attempts) == (False, 1)
        assert run(store.requeue_unattempted(message_id, utcnow()))
        [entry] = run(store.due_outbound(utcnow(), 10))
        assert entry.attempts == 1
        message = run(store.get_message(message_id))
        assert (message.status, message.attempts, message.error_code) == (
            DeliveryStatus.QUEUED,
            1,
            "503",
        )

    def test_a_resend_never_attempted_stays_in_doubt_and_queued(self, store, run):
        """A same-key resend of a message in doubt, claimed by a runner that died before
        sending it, is queued again as a resend: the message still in doubt, its deadline
        unchanged."""
        _, message_id = self._queued(store, run)
        self._claim(store, run, message_id)
        now = utcnow()
        run(store.doubt_outbound(message_id, "r1", now + SOON, now, "timeout", now))
        self._claim_lapsed(store, run, message_id, attempt=False)
        assert run(store.requeue_unattempted(message_id, utcnow()))
        [entry] = run(store.due_outbound(utcnow(), 10))
        assert (entry.resend, entry.doubt_until, entry.attempts) == (True, now + SOON, 1)
        message = run(store.get_message(message_id))
        assert (message.status, message.in_doubt) == (DeliveryStatus.SENDING, True)

    def test_a_claim_says_whether_the_contact_opted_out(self, store, run):
        """The claim reads the channels the contact opted out on, so a STOP that came after
        the message was queued stops it."""
        _, message_id = self._queued(store, run)
        assert self._claim(store, run, message_id).opted_out == ()
        stop = attrs.evolve(inbound("stop-1", "+15550100", "STOP"), consent=Consent.OPT_OUT)
        run(store.ingest_inbound("sms", stop))
        _, later = self._queued(store, run, text="after the stop")
        assert self._claim(store, run, later).opted_out == ("sms",)

    def test_a_long_send_keeps_its_lease(self, store, run):
        """extend_lease moves the lease of its holder's entry, so it is not taken for dead;
        another runner cannot."""
        _, message_id = self._queued(store, run)
        past = utcnow() - timedelta(seconds=1)
        run(store.claim_outbound(message_id, "r1", past, utcnow()))
        assert not run(store.extend_lease(message_id, "r2", utcnow() + LEASE))
        assert run(store.extend_lease(message_id, "r1", utcnow() + LEASE))
        assert run(store.expired_leases(utcnow(), 10)) == []

    def test_due_entries_of_one_channel(self, store, run):
        """due_outbound with a channel lists that channel's entries only."""
        _, sms = self._queued(store, run)
        whatsapp = self._conversation(store, run, "whatsapp")
        other, _ = run(store.create_outbound(whatsapp.id, "hi", (), {}, None))
        assert [e.message_id for e in run(store.due_outbound(utcnow(), 10, "sms"))] == [sms]
        assert [e.message_id for e in run(store.due_outbound(utcnow(), 10, "whatsapp"))] == [
            other.id
        ]
        assert len(run(store.due_outbound(utcnow(), 10))) == 2

    def test_a_live_lease_is_not_taken_for_dead(self, store, run):
        """doubt_outbound without a holder leaves an entry whose lease still runs."""
        _, message_id = self._queued(store, run)
        self._claim(store, run, message_id)
        now = utcnow()
        assert run(store.expired_leases(now, 10)) == []
        assert run(store.doubt_outbound(message_id, None, now + SOON, None, "x", now)) is None

    def test_a_doubt_past_its_deadline_fails_as_not_confirmed(self, store, run):
        """A message in doubt past doubt_until is listed and failed with not_confirmed."""
        _, message_id = self._queued(store, run)
        self._claim(store, run, message_id)
        now = utcnow()
        run(store.doubt_outbound(message_id, "r1", now + SOON, None, "timeout", now))
        assert run(store.lapsed_doubts(now, 10)) == []
        later = now + 2 * SOON
        assert [e.message_id for e in run(store.lapsed_doubts(later, 10))] == [message_id]
        failed = run(store.expire_doubt(message_id, later))
        assert (failed.status, failed.error_code, failed.in_doubt) == (
            DeliveryStatus.FAILED,
            "not_confirmed",
            False,
        )
        assert run(store.outbox_backlog(later)) == {}

    def test_a_message_failed_by_its_channel_keeps_the_details(self, store, run):
        """fail_outbound, by the entry's holder only, fails and settles the message with the
        failure's code, text and details."""
        _, message_id = self._queued(store, run)
        self._claim(store, run, message_id)
        failure = Failure("100", "Graph refused it", {"fbtrace_id": "A1", "retryable": False})
        assert run(store.fail_outbound(message_id, "r2", failure)) is None  # not its holder
        failed = run(store.fail_outbound(message_id, "r1", failure))
        assert (failed.status, failed.error_code, failed.error_message) == (
            DeliveryStatus.FAILED,
            "100",
            "Graph refused it",
        )
        assert failed.error_details == {"fbtrace_id": "A1", "retryable": False}
        assert run(store.get_message(message_id)) == failed
        assert run(store.outbox_backlog(utcnow())) == {}

    def test_a_failed_message_is_queued_again_by_a_retry(self, store, run):
        """retry_failed queues a failed message again (same id, error and provider id
        cleared), due now, audited; any other status is a Conflict; an unknown id NotFound."""
        _, message_id = self._queued(store, run)
        run(store.advance_message(message_id, DeliveryStatus.FAILED, "SM5", "21610", "blocked"))
        retried = run(
            store.retry_failed(message_id, _audit("message.retried", message_id), utcnow())
        )
        assert (retried.id, retried.status, retried.error_code, retried.provider_message_id) == (
            message_id,
            DeliveryStatus.QUEUED,
            None,
            None,
        )
        assert [e.message_id for e in run(store.due_outbound(utcnow(), 10))] == [message_id]
        assert [e.action for e in run(self.audit.list(None, None, 10)).items] == ["message.retried"]
        with pytest.raises(Conflict):
            run(store.retry_failed(message_id, _audit("message.retried", message_id), utcnow()))
        with pytest.raises(NotFound):
            run(store.retry_failed("msg_nope", _audit("message.retried", "msg_nope"), utcnow()))

    def test_a_message_waiting_can_be_cancelled_once_claimed_not(self, store, run):
        """cancel_outbound cancels a queued message (audited, entry gone); a claimed one is a
        Conflict and stays as it was."""
        _, waiting = self._queued(store, run, send_at=utcnow() + timedelta(hours=1))
        cancelled = run(store.cancel_outbound(waiting, _audit("message.cancelled", waiting)))
        assert cancelled.status is DeliveryStatus.CANCELLED
        _, claimed = self._queued(store, run, text="now")
        self._claim(store, run, claimed)
        with pytest.raises(Conflict):
            run(store.cancel_outbound(claimed, _audit("message.cancelled", claimed)))
        assert run(store.get_message(claimed)).status is DeliveryStatus.QUEUED
        backlog = run(store.outbox_backlog(utcnow()))["sms"]
        assert (backlog.scheduled, backlog.sending) == (0, 1)

    def test_send_paces_hand_out_each_slot_once(self, store, run):
        """Reservations on one pace follow each other; a throttled pace is slowed by half
        and gives no slot before its Retry-After."""
        start, spacing = run(store.reserve_pace("sms", 0.1, 10, 1000.0))
        assert (start, spacing) == (1000.0, pytest.approx(0.1))
        following, _ = run(store.reserve_pace("sms", 0.1, 10, 1000.0))
        assert following == pytest.approx(1001.0)
        other, _ = run(store.reserve_pace("sms:+1555", 0.1, 1, 1000.0))
        assert other == 1000.0  # each pace apart
        run(store.slow_pace("sms", until=1010.0, now=1000.0))
        slowed, slow_spacing = run(store.reserve_pace("sms", 0.1, 1, 1000.0))
        assert slowed == pytest.approx(1010.0)
        assert slow_spacing == pytest.approx(0.2, rel=0.1)  # half the rate, recovering
