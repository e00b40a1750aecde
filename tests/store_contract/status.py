"""Delivery status: forward-only moves, provider ids, parked updates and id conflicts."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from omnichannel_core.errors import NotFound
from omnichannel_core.hooktypes import StatusUpdate
from omnichannel_core.models import DeliveryStatus
from tests.store_contract.fixtures import StoreFixtures, inbound

OUTBOUND_STATUSES = [status for status in DeliveryStatus if status is not DeliveryStatus.RECEIVED]


class StatusContract(StoreFixtures):
    """What ``advance_message`` and ``apply_status`` promise."""

    @pytest.mark.parametrize("start", OUTBOUND_STATUSES, ids=str)
    def test_advance_message_moves_forward_only(self, store, run, start):
        """From every status, an update to every other status applies exactly when
        DeliveryStatus.can_move_to says it moves forward; otherwise nothing changes."""
        conversation = self._conversation(store, run)
        for target in DeliveryStatus:
            message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
            if start is not DeliveryStatus.QUEUED:
                assert run(store.advance_message(message.id, start)).changed is True
            applied = run(store.advance_message(message.id, target))
            expected = target if start.can_move_to(target) else start
            assert applied.changed is (expected is target and target is not start), target
            assert applied.message.status is expected, (start, target)
            assert run(store.get_message(message.id)).status is expected, (start, target)

    def test_advance_message_records_provider_id_once(self, store, run):
        """The first provider id sticks: a later update naming another id does not replace
        it, and a provider id is recorded even when the status does not move."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.QUEUED, provider_message_id="pm-1"))
        assert run(store.get_message(message.id)).provider_message_id == "pm-1"
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-2")
        )
        assert applied.changed is True
        assert applied.message.status is DeliveryStatus.SENT
        assert applied.message.provider_message_id == "pm-1"

    def test_advance_message_records_error_on_failure(self, store, run):
        """A move to failed keeps the provider's error code and message."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        applied = run(
            store.advance_message(
                message.id, DeliveryStatus.FAILED, error_code="30003", error_message="unreachable"
            )
        )
        assert applied.message.status is DeliveryStatus.FAILED
        assert (applied.message.error_code, applied.message.error_message) == (
            "30003",
            "unreachable",
        )

    def test_advance_message_leaves_inbound_messages_alone(self, store, run):
        """An inbound message is received; delivery updates never change it."""
        message = run(store.ingest_inbound("sms", inbound("p1"))).message
        for status in DeliveryStatus:
            applied = run(store.advance_message(message.id, status))
            assert applied.changed is False
            assert applied.message.status is DeliveryStatus.RECEIVED

    def test_advance_unknown_message_is_not_found(self, store, run):
        """Advancing a message id that does not exist raises NotFound."""
        with pytest.raises(NotFound):
            run(store.advance_message("msg_missing", DeliveryStatus.SENT))

    def test_apply_status_finds_the_message_by_provider_id(self, store, run):
        """A provider status update finds the outbound message by (channel, provider id) and
        moves it forward; a late, older update does not move it back."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-9"))
        applied = run(store.apply_status("sms", StatusUpdate("pm-9", DeliveryStatus.DELIVERED)))
        assert applied.changed is True
        assert applied.message.id == message.id
        assert applied.message.status is DeliveryStatus.DELIVERED
        late = run(store.apply_status("sms", StatusUpdate("pm-9", DeliveryStatus.SENT)))
        assert late.changed is False
        assert late.message.status is DeliveryStatus.DELIVERED
        assert run(store.get_message(message.id)).status is DeliveryStatus.DELIVERED

    def test_apply_status_records_provider_error(self, store, run):
        """A failed status update keeps the provider's error code and message."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-7"))
        update = StatusUpdate("pm-7", DeliveryStatus.UNDELIVERED, "30005", "unknown handset")
        applied = run(store.apply_status("sms", update))
        assert applied.message.status is DeliveryStatus.UNDELIVERED
        assert applied.message.error_code == "30005"
        assert applied.message.error_message == "unknown handset"

    def test_apply_status_for_unknown_provider_id_is_parked(self, store, run):
        """An update for a provider id nobody stored (or stored on another channel) touches
        no message and answers message=None, changed=False, parked=True."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-1"))
        unknown = run(store.apply_status("sms", StatusUpdate("nope", DeliveryStatus.READ)))
        assert (unknown.message, unknown.changed, unknown.parked) == (None, False, True)
        elsewhere = run(store.apply_status("email", StatusUpdate("pm-1", DeliveryStatus.READ)))
        assert (elsewhere.message, elsewhere.changed, elsewhere.parked) == (None, False, True)
        assert run(store.get_message(message.id)).status is DeliveryStatus.SENT

    def test_apply_status_for_a_known_message_is_not_parked(self, store, run):
        """An update that finds its message answers parked=False, moved or not."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-k"))
        moved = run(store.apply_status("sms", StatusUpdate("pm-k", DeliveryStatus.DELIVERED)))
        late = run(store.apply_status("sms", StatusUpdate("pm-k", DeliveryStatus.SENT)))
        assert (moved.changed, moved.parked) == (True, False)
        assert (late.changed, late.parked) == (False, False)

    def test_parked_update_is_applied_when_the_provider_id_is_recorded(self, store, run):
        """A callback that beat send's answer is parked; recording the provider id applies
        it in the same call: the message comes back delivered, and changed=True."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.apply_status("sms", StatusUpdate("pm-early", DeliveryStatus.DELIVERED)))
        assert run(store.get_message(message.id)).status is DeliveryStatus.QUEUED
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-early")
        )
        assert (applied.changed, applied.parked) == (True, False)
        assert applied.message.status is DeliveryStatus.DELIVERED
        assert applied.message.provider_message_id == "pm-early"
        assert run(store.get_message(message.id)) == applied.message

    def test_parked_updates_apply_forward_only_highest_wins(self, store, run):
        """Parked 'read' and 'sent', then the id recorded with 'sent': the message is read,
        whatever order the updates came in."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.apply_status("sms", StatusUpdate("pm-rs", DeliveryStatus.READ)))
        run(store.apply_status("sms", StatusUpdate("pm-rs", DeliveryStatus.SENT)))
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-rs")
        )
        assert applied.message.status is DeliveryStatus.READ
        assert run(store.get_message(message.id)).status is DeliveryStatus.READ

    def test_parked_update_applies_even_when_send_status_does_not_move(self, store, run):
        """Recording the id with a status that does not move the message (queued) still
        applies what was parked, and changed says the status moved."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.apply_status("sms", StatusUpdate("pm-q", DeliveryStatus.SENT)))
        applied = run(
            store.advance_message(message.id, DeliveryStatus.QUEUED, provider_message_id="pm-q")
        )
        assert applied.changed is True
        assert applied.message.status is DeliveryStatus.SENT

    def test_parked_failure_keeps_its_error(self, store, run):
        """A parked failed update with an error code, applied on record, is terminal and
        keeps the code and message; a parked 'read' beside it cannot move it back."""
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        failure = StatusUpdate("pm-f", DeliveryStatus.FAILED, "30008", "unknown error")
        run(store.apply_status("sms", failure))
        run(store.apply_status("sms", StatusUpdate("pm-f", DeliveryStatus.READ)))
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-f")
        )
        assert applied.message.status is DeliveryStatus.FAILED
        assert (applied.message.error_code, applied.message.error_message) == (
            "30008",
            "unknown error",
        )

    def test_expired_parked_update_is_not_applied(self, store, run):
        """A parked update older than the store's parked_status_ttl is never applied."""
        store.parked_status_ttl = timedelta(0)
        conversation = self._conversation(store, run)
        message, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        run(store.apply_status("sms", StatusUpdate("pm-old", DeliveryStatus.READ)))
        time.sleep(0.01)  # the clock moves past the parked update's time, so it has expired
        applied = run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-old")
        )
        assert applied.message.status is DeliveryStatus.SENT
        assert run(store.get_message(message.id)).status is DeliveryStatus.SENT

    def test_parked_update_for_another_channel_is_not_applied(self, store, run):
        """An update parked on another channel waits for that channel's message: recording
        the same provider id on sms does not apply it, and the email message still gets it."""
        sms = self._conversation(store, run, "sms")
        email = self._conversation(store, run, "email")
        on_sms, _ = run(store.create_outbound(sms.id, "x", (), {}, None))
        on_email, _ = run(store.create_outbound(email.id, "x", (), {}, None))
        run(store.apply_status("email", StatusUpdate("pm-both", DeliveryStatus.READ)))
        applied = run(
            store.advance_message(on_sms.id, DeliveryStatus.SENT, provider_message_id="pm-both")
        )
        assert applied.message.status is DeliveryStatus.SENT
        mailed = run(
            store.advance_message(on_email.id, DeliveryStatus.SENT, provider_message_id="pm-both")
        )
        assert mailed.message.status is DeliveryStatus.READ

    def test_provider_id_held_by_another_message_is_a_conflict(self, store, run):
        """Recording a provider id another outbound message of the channel already holds
        still moves the status, leaves this message without a provider id, and answers
        provider_id_conflict=True; the holder keeps the id and its status updates."""
        conversation = self._conversation(store, run)
        holder, _ = run(store.create_outbound(conversation.id, "a", (), {}, None))
        second, _ = run(store.create_outbound(conversation.id, "b", (), {}, None))
        first = run(
            store.advance_message(holder.id, DeliveryStatus.SENT, provider_message_id="pm-dup")
        )
        assert first.provider_id_conflict is False
        clash = run(
            store.advance_message(second.id, DeliveryStatus.SENT, provider_message_id="pm-dup")
        )
        assert (clash.changed, clash.provider_id_conflict) == (True, True)
        assert clash.message.status is DeliveryStatus.SENT
        assert clash.message.provider_message_id is None
        assert run(store.get_message(second.id)) == clash.message
        update = run(store.apply_status("sms", StatusUpdate("pm-dup", DeliveryStatus.READ)))
        assert update.message.id == holder.id
        assert run(store.get_message(second.id)).status is DeliveryStatus.SENT

    def test_same_provider_id_on_another_channel_is_no_conflict(self, store, run):
        """Provider ids are per channel: the same id on two channels' messages is recorded
        on both, without a conflict."""
        sms, _ = run(store.create_outbound(self._conversation(store, run).id, "x", (), {}, None))
        email_conversation = self._conversation(store, run, "email")
        email, _ = run(store.create_outbound(email_conversation.id, "x", (), {}, None))
        run(store.advance_message(sms.id, DeliveryStatus.SENT, provider_message_id="pm-x"))
        applied = run(
            store.advance_message(email.id, DeliveryStatus.SENT, provider_message_id="pm-x")
        )
        assert applied.provider_id_conflict is False
        assert applied.message.provider_message_id == "pm-x"

    def test_inbound_and_outbound_may_share_a_provider_id(self, store, run):
        """A provider (or custom system) with one id space for both directions may give an
        outbound message the id of an inbound one: both are kept, status updates reach the
        outbound message, and the inbound dedupe still finds the inbound one."""
        received = run(store.ingest_inbound("sms", inbound("shared-1"))).message
        conversation = run(store.get_conversation(received.conversation_id))
        sent, _ = run(store.create_outbound(conversation.id, "x", (), {}, None))
        applied = run(
            store.advance_message(sent.id, DeliveryStatus.SENT, provider_message_id="shared-1")
        )
        assert applied.message.provider_message_id == "shared-1"
        update = run(store.apply_status("sms", StatusUpdate("shared-1", DeliveryStatus.READ)))
        assert update.message.id == sent.id
        assert update.message.status is DeliveryStatus.READ
        again = run(store.ingest_inbound("sms", inbound("shared-1")))
        assert (again.created, again.message.id) == (False, received.id)
        assert run(store.get_message(received.id)).status is DeliveryStatus.RECEIVED
