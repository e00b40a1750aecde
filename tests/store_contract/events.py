"""The event log: which writes log which events, in the same step as the change, and
reading it back in order, gaplessly, from any cursor."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from omnichannel_core.errors import EventsExpired, InvalidInput, NotFound
from omnichannel_core.events.records import Event
from omnichannel_core.hooktypes import InboundMessage, StatusUpdate, Thread
from omnichannel_core.ids import new_id
from omnichannel_core.models import ConversationStatus, DeliveryStatus, utcnow
from omnichannel_core.modules.inbox.events import InboxEvent
from omnichannel_core.store.protocols import EventLog
from omnichannel_core.timestamps import format_timestamp
from tests.store_contract.fixtures import Run, StoreFixtures, inbound


def logged(log: EventLog, run: Run[Any], after: str | None = None) -> list[Event]:
    """Every event after ``after``, read a few at a time as a stream would."""
    events: list[Event] = []
    while True:
        page = run(log.after(after, 3))
        events.extend(page)
        if len(page) < 3:
            return events
        after = page[-1].cursor


def mail(provider_message_id: str, thread: Thread) -> InboundMessage:
    """An inbound email from one sender, in ``thread``."""
    return InboundMessage(provider_message_id, "ann@example.test", "mail", thread=thread)


def opt_out(provider_message_id: str) -> InboundMessage:
    return InboundMessage(provider_message_id, "+15550001", "STOP", consent="opt_out")


def kinds(events: list[Event]) -> list[tuple[str, str]]:
    return [(event.type, event.record_id) for event in events]


def cursor_ahead(log: EventLog, cursor: str | None) -> str:
    """A well-formed cursor of ``log``'s kind that sorts after ``cursor`` (None: after no
    event at all): what a reader holds when the store was reset or restored from an older
    backup since it got its cursor. No store call can make one, so this is the one place
    the contract knows how each backend spells its cursors."""
    from omnichannel_core.store.sqlite.events import SqliteEventLog

    if isinstance(log, SqliteEventLog):
        return str(int(cursor or "0") + 1)
    from omnichannel_core.store.firestore.events import (
        FirestoreEventLog,
        decode_position,
        encode_position,
    )

    if not isinstance(log, FirestoreEventLog):  # pragma: no cover - a new backend says how
        raise NotImplementedError(f"cursor_ahead does not know {type(log).__name__}")
    if cursor is None:
        nanoseconds = int(utcnow().timestamp()) * 1_000_000_000
    else:
        nanoseconds = decode_position(cursor)[0] + 1_000_000_000
    return encode_position((nanoseconds, new_id("ev")))


class EventsContract(StoreFixtures):
    """What the event log's ``after``, ``latest`` and ``prune`` promise, and which writes
    of the inbox's store log which events, with what data."""

    def test_an_empty_log(self, store, run):
        """A new store has no events and no latest cursor."""
        assert run(self.events.after(None, 10)) == []
        assert run(self.events.latest()) is None

    def test_a_new_inbound_message_is_logged_once(self, store, run):
        """ingest_inbound logs message.created for the new message, with its conversation
        and the conversation's assignee; the same provider id again logs nothing."""
        first = run(store.ingest_inbound("sms", inbound("p1")))
        run(store.ingest_inbound("sms", inbound("p1")))
        [event] = logged(self.events, run)
        assert event.type == InboxEvent.MESSAGE_CREATED
        assert (event.record_id, event.conversation_id) == (
            first.message_id,
            first.conversation_id,
        )
        assert event.assignees == (None,)
        assert abs((event.at - utcnow()).total_seconds()) < 60
        assert run(self.events.latest()) == event.cursor

    def test_events_carry_the_assignee_of_the_conversation(self, store, run):
        """An inbound message in an assigned conversation names its assignee; assigning
        logs conversation.updated with the new and the old assignee; a change that keeps
        the assignee names it alone."""
        conversation_id = run(store.ingest_inbound("sms", inbound("p1"))).conversation_id
        start = run(self.events.latest())
        run(store.update_conversation(conversation_id, assignee="usr_a"))
        second = run(store.ingest_inbound("sms", inbound("p2")))
        run(store.update_conversation(conversation_id, status=ConversationStatus.RESOLVED))
        run(store.update_conversation(conversation_id, assignee="usr_b"))
        events = logged(self.events, run, start)
        assert kinds(events) == [
            ("conversation.updated", conversation_id),
            ("message.created", second.message_id),
            ("conversation.updated", conversation_id),
            ("conversation.updated", conversation_id),
        ]
        assert [event.assignees for event in events] == [
            ("usr_a", None),
            ("usr_a",),
            ("usr_a",),
            ("usr_b", "usr_a"),
        ]
        assert all(event.conversation_id == conversation_id for event in events)

    def test_a_message_reopening_a_conversation_logs_the_status_change(self, store, run):
        """A new inbound message into a resolved conversation logs, beside its
        message.created, conversation.updated about the conversation (its assignee, the
        status change ``["resolved", "open"]`` alone as data), so a stream sees it open
        again; a message into an open or pending conversation, and a duplicate into a
        resolved one, log no conversation.updated."""
        first = run(store.ingest_inbound("sms", inbound("p1")))
        conversation_id = first.conversation_id
        run(store.update_conversation(conversation_id, assignee="usr_a"))
        run(store.update_conversation(conversation_id, status=ConversationStatus.RESOLVED))
        start = run(self.events.latest())
        run(store.ingest_inbound("sms", inbound("p1")))  # a duplicate: nothing logged
        assert logged(self.events, run, start) == []
        reopening = run(store.ingest_inbound("sms", inbound("p2")))
        assert reopening.conversation.status is ConversationStatus.OPEN
        events = logged(self.events, run, start)
        assert sorted(kinds(events)) == [
            ("conversation.updated", conversation_id),
            ("message.created", reopening.message_id),
        ]
        [updated] = [e for e in events if e.type == InboxEvent.CONVERSATION_UPDATED]
        assert (updated.conversation_id, updated.assignees) == (conversation_id, ("usr_a",))
        assert updated.data["changes"] == {"status": ["resolved", "open"]}
        [*_, reopened] = run(store.conversation_changes(conversation_id))
        assert updated.data["change_id"] == reopened.id
        assert (updated.data["status"], updated.data["assignee"]) == ("open", "usr_a")
        start = run(self.events.latest())
        again = run(store.ingest_inbound("sms", inbound("p3")))  # open now: no change
        run(store.update_conversation(conversation_id, status=ConversationStatus.PENDING))
        pending_start = run(self.events.latest())
        pending = run(store.ingest_inbound("sms", inbound("p4")))
        assert pending.conversation.status is ConversationStatus.PENDING
        assert kinds(logged(self.events, run, start)) == [
            ("message.created", again.message_id),
            ("conversation.updated", conversation_id),
            ("message.created", pending.message_id),
        ]
        assert kinds(logged(self.events, run, pending_start)) == [
            ("message.created", pending.message_id)
        ]

    def test_a_mail_reopening_its_threads_conversation_logs_the_status_change(self, store, run):
        """A reply joining a resolved thread's conversation (found by the thread, not the
        sender) reopens it and logs the change as a plain message does; a first mail,
        which opens a new conversation, logs no conversation.updated."""
        first = run(store.ingest_inbound("email", mail("m1", Thread(refs=()))))
        conversation_id = first.conversation_id
        start = run(self.events.latest())
        assert kinds(logged(self.events, run)) == [("message.created", first.message_id)]
        run(store.update_conversation(conversation_id, status=ConversationStatus.RESOLVED))
        reply = run(store.ingest_inbound("email", mail("m2", Thread(refs=("m1",)))))
        assert reply.conversation_id == conversation_id
        events = logged(self.events, run, start)
        assert sorted(kinds(events)) == [
            ("conversation.updated", conversation_id),
            ("conversation.updated", conversation_id),
            ("message.created", reply.message_id),
        ]
        assert [e.data["changes"] for e in events if e.type == InboxEvent.CONVERSATION_UPDATED] == [
            {"status": ["open", "resolved"]},
            {"status": ["resolved", "open"]},
        ]
        assert run(store.get_conversation(conversation_id)).status is ConversationStatus.OPEN

    def test_outbound_messages_and_their_statuses_are_logged(self, store, run):
        """create_outbound logs message.created (an idempotent repeat does not); each move
        of the status logs message.status_changed, a non-move nothing, and a parked update
        applied when the provider id is recorded logs its move."""
        conversation = self._conversation(store, run)
        start = run(self.events.latest())
        message, _ = run(store.create_outbound(conversation.id, "hi", (), {}, "key-1"))
        run(store.create_outbound(conversation.id, "hi", (), {}, "key-1"))
        run(store.advance_message(message.id, DeliveryStatus.SENDING))
        run(store.apply_status("sms", StatusUpdate("SM1", DeliveryStatus.DELIVERED)))  # parked
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="SM1"))
        run(store.apply_status("sms", StatusUpdate("SM1", DeliveryStatus.SENT)))  # no move
        run(store.advance_message(message.id, DeliveryStatus.QUEUED))  # backwards: no move
        assert kinds(logged(self.events, run, start)) == [
            ("message.created", message.id),
            ("message.status_changed", message.id),
            ("message.status_changed", message.id),
        ]
        assert run(store.get_message(message.id)).status is DeliveryStatus.DELIVERED

    def test_contact_changes_are_logged(self, store, run):
        """update_contact logs contact.updated, with no conversation and no assignee; an
        opt-out by an inbound message logs it too, beside the message; a message that
        changes no consent does not."""
        contact_id = run(store.ingest_inbound("sms", inbound("p1"))).message.contact_id
        start = run(self.events.latest())
        run(store.update_contact(contact_id, tags=("vip",)))
        stop = run(store.ingest_inbound("sms", opt_out("p2")))
        again = run(store.ingest_inbound("sms", opt_out("p3")))
        events = logged(self.events, run, start)
        assert sorted(kinds(events)) == sorted(
            [
                ("contact.updated", contact_id),
                ("contact.updated", contact_id),
                ("message.created", stop.message_id),
                ("message.created", again.message_id),
            ]
        )
        contact_events = [e for e in events if e.type == InboxEvent.CONTACT_UPDATED]
        assert all(e.conversation_id is None and e.assignees == () for e in contact_events)

    def test_typing_is_logged_alone_with_the_conversations_assignee(self, store, run):
        """log_typing logs one conversation.typing about the conversation, naming its
        assignee, with ``by``, ``user_id`` and ``until`` as data, and changes nothing else:
        the conversation reads back as it was. An unknown conversation is NotFound, and
        nothing is logged."""
        conversation_id = run(store.ingest_inbound("sms", inbound("p1"))).conversation_id
        assigned = run(store.update_conversation(conversation_id, assignee="usr_a"))
        start = run(self.events.latest())
        until = utcnow() + timedelta(seconds=6)
        run(store.log_typing(conversation_id, "contact", None, until))
        run(store.log_typing(conversation_id, "user", "usr_a", until))
        with pytest.raises(NotFound):
            run(store.log_typing("cv_missing", "contact", None, until))
        events = logged(self.events, run, start)
        assert kinds(events) == [("conversation.typing", conversation_id)] * 2
        assert [(e.conversation_id, e.assignees) for e in events] == [
            (conversation_id, ("usr_a",))
        ] * 2
        stamp = format_timestamp(until)
        assert [e.data for e in events] == [
            {"by": "contact", "user_id": None, "until": stamp},
            {"by": "user", "user_id": "usr_a", "until": stamp},
        ]
        assert run(store.get_conversation(conversation_id)) == assigned

    def test_reading_from_a_cursor_returns_what_follows_in_order(self, store, run):
        """events_after(cursor) returns exactly the events logged after it, in the order
        they were logged, at most ``limit`` at a time; the last one's cursor is the latest."""
        ids = [run(store.ingest_inbound("sms", inbound(f"p{n}"))).message_id for n in range(7)]
        events = logged(self.events, run)
        assert [event.record_id for event in events] == ids
        assert len({event.cursor for event in events}) == 7
        assert [e.record_id for e in run(self.events.after(events[2].cursor, 2))] == ids[3:5]
        assert run(self.events.after(events[-1].cursor, 10)) == []
        assert run(self.events.latest()) == events[-1].cursor

    @pytest.mark.parametrize(
        "cursor",
        [
            "",
            "not a cursor",
            "-1",
            "x" * 500,
            "0",
            "007",
            "9223372036854775808",  # 2**63: past SQLite's integers
            "9999999999999999999",
            "9" * 5000,  # past Python's int() digit limit
        ],
    )
    def test_a_cursor_the_store_did_not_make_is_invalid_input(self, store, run, cursor):
        """A malformed cursor, or a number no store could have counted to, is InvalidInput,
        never a crash."""
        run(store.ingest_inbound("sms", inbound("p1")))
        with pytest.raises(InvalidInput):
            run(self.events.after(cursor, 10))

    def test_a_cursor_ahead_of_the_log_is_expired(self, store, run):
        """A well-formed cursor after the newest event logged (the store was reset or
        restored since the reader got it) raises EventsExpired, which says so, rather than
        reading nothing until the log catches up; the newest event's cursor reads []."""
        run(store.ingest_inbound("sms", inbound("p1")))
        run(store.ingest_inbound("sms", inbound("p2")))
        newest = run(self.events.latest())
        assert run(self.events.after(newest, 1)) == []
        with pytest.raises(EventsExpired, match="ahead of the event log"):
            run(self.events.after(cursor_ahead(self.events, newest), 1))
        with pytest.raises(EventsExpired, match="ahead of the event log"):
            run(self.events.after(cursor_ahead(self.events, newest), 10))

    def test_any_cursor_is_ahead_of_an_empty_log(self, store, run):
        """On a store that never logged an event, every well-formed cursor is ahead of the
        log (it came from another store, or this one before a reset): EventsExpired; no
        cursor reads from the start."""
        assert run(self.events.after(None, 1)) == []
        with pytest.raises(EventsExpired, match="ahead of the event log"):
            run(self.events.after(cursor_ahead(self.events, None), 1))

    def test_after_pruning_everything_only_the_newest_cursor_reads_on(self, store, run):
        """Once every event is pruned, the newest event's cursor still reads on (empty,
        then what is logged next); a cursor after it is ahead of the log, one before it
        is expired."""
        run(store.ingest_inbound("sms", inbound("p1")))
        run(store.ingest_inbound("sms", inbound("p2")))
        [first, last] = logged(self.events, run)
        assert run(self.events.prune(utcnow() + timedelta(minutes=1))) == 2
        assert run(self.events.after(last.cursor, 1)) == []
        with pytest.raises(EventsExpired, match="ahead of the event log"):
            run(self.events.after(cursor_ahead(self.events, last.cursor), 1))
        with pytest.raises(EventsExpired, match="no longer kept"):
            run(self.events.after(first.cursor, 1))
        new = run(store.ingest_inbound("sms", inbound("p3"))).message_id
        assert [event.record_id for event in run(self.events.after(last.cursor, 10))] == [new]

    def test_concurrent_writes_are_each_logged_once_and_read_without_gaps(self, store, run):
        """Twenty messages stored at once from several senders, and a reader going through
        the log while they are written: every message is logged exactly once, and the
        reader, going on from its last cursor, misses none."""

        async def scenario() -> tuple[list[str], list[Event]]:
            seen: list[Event] = []
            done = asyncio.Event()

            async def reader() -> None:
                cursor = None
                while True:
                    finished = done.is_set()
                    page = await self.events.after(cursor, 4)
                    seen.extend(page)
                    if page:
                        cursor = page[-1].cursor
                    elif finished:
                        return
                    await asyncio.sleep(0)

            reading = asyncio.create_task(reader())
            stored = await asyncio.gather(
                *(
                    store.ingest_inbound("sms", inbound(f"c{n}", sender=f"+1555000{n % 4}"))
                    for n in range(20)
                )
            )
            done.set()
            await reading
            return [ingested.message_id for ingested in stored], seen

        ids, seen = run(scenario())
        assert sorted(event.record_id for event in seen) == sorted(ids)
        assert len({event.cursor for event in seen}) == 20

    def test_pruning_forgets_old_events_and_says_so_to_a_late_reader(self, store, run):
        """prune_events(before) deletes what was logged before ``before``; reading from
        the start then begins after them; resuming from the cursor of an event that came
        before a deleted one raises EventsExpired; from the newest deleted one, the reader
        misses nothing and goes on."""
        old = [run(store.ingest_inbound("sms", inbound(f"p{n}"))).message_id for n in range(3)]
        old_events = logged(self.events, run)
        cut = utcnow()
        new = run(store.ingest_inbound("sms", inbound("p9"))).message_id
        assert run(self.events.prune(cut)) == 3
        assert [event.record_id for event in logged(self.events, run)] == [new]
        with pytest.raises(EventsExpired):
            run(self.events.after(old_events[0].cursor, 10))
        assert [e.record_id for e in run(self.events.after(old_events[-1].cursor, 10))] == [new]
        assert run(self.events.prune(cut)) == 0
        assert [event.record_id for event in old_events] == old

    def test_the_listener_hears_of_each_write_that_logged_events(self, store, database, run):
        """After the database's on_events_logged(listener), each write that logged events
        calls it once; writes that logged nothing do not."""
        heard: list[str] = []
        database.on_events_logged(lambda: heard.append("news"))
        conversation_id = run(store.ingest_inbound("sms", inbound("p1"))).conversation_id
        run(store.ingest_inbound("sms", inbound("p1")))  # a duplicate logs nothing
        message, _ = run(store.create_outbound(conversation_id, "hi", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENT))
        run(store.advance_message(message.id, DeliveryStatus.QUEUED))  # no move
        run(store.update_conversation(conversation_id, assignee="usr_a"))
        assert len(heard) == 4
        assert len(logged(self.events, run)) == 4

    def test_pruning_keeps_what_follows_the_oldest_cursor_to_keep(self, store, run):
        """prune(before, keep_after=cursors) deletes nothing after the oldest of the cursors,
        however late ``before`` is: a subscriber there still reads every event it has not
        read, and the oldest cursor reads on; the events up to it go. A cursor to keep that
        was pruned already keeps everything left."""
        ids = [run(store.ingest_inbound("sms", inbound(f"p{n}"))).message_id for n in range(6)]
        events = logged(self.events, run)
        later = utcnow() + timedelta(minutes=1)
        keep = [events[3].cursor, events[1].cursor]
        assert run(self.events.prune(later, keep_after=keep)) == 2
        assert [event.record_id for event in logged(self.events, run)] == ids[2:]
        assert [event.record_id for event in logged(self.events, run, events[1].cursor)] == ids[2:]
        with pytest.raises(EventsExpired, match="no longer kept"):
            run(self.events.after(events[0].cursor, 10))
        assert run(self.events.prune(later, keep_after=[events[0].cursor])) == 0
        assert [event.record_id for event in logged(self.events, run)] == ids[2:]
        assert run(self.events.prune(later, keep_after=[events[3].cursor])) == 2
        assert [event.record_id for event in logged(self.events, run)] == ids[4:]

    def test_pruning_with_cursors_to_keep_still_stops_at_before(self, store, run):
        """With a cursor to keep newer than ``before``, only what was logged before
        ``before`` goes: the cursors to keep never make a prune delete more."""
        old = [run(store.ingest_inbound("sms", inbound(f"p{n}"))).message_id for n in range(2)]
        cut = utcnow()
        new = [run(store.ingest_inbound("sms", inbound(f"q{n}"))).message_id for n in range(2)]
        newest = run(self.events.latest())
        assert run(self.events.prune(cut, keep_after=[newest])) == len(old)
        assert [event.record_id for event in logged(self.events, run)] == new

    def test_event_data_is_what_each_write_of_the_inbox_says(self, store, run):
        """Each event's ``data`` reads back as the inbox's write logged it, and its type as
        a plain string: message.created its channel, direction and contact;
        message.status_changed the status it moved to and the one before (a parked update
        applied and a watermark included); conversation.updated ``{field: [before, after]}``
        of what changed, the reopening of a resolved conversation by an inbound message
        included; contact.updated the fields that changed, the consent of an inbound message
        included."""
        ingested = run(store.ingest_inbound("sms", inbound("p1")))
        contact_id, conversation_id = ingested.message.contact_id, ingested.conversation_id
        message, _ = run(store.create_outbound(conversation_id, "hi", (), {}, None))
        run(store.advance_message(message.id, DeliveryStatus.SENDING))
        run(store.apply_status("sms", StatusUpdate("SM1", DeliveryStatus.DELIVERED)))  # parked
        run(store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="SM1"))
        run(store.apply_watermark("sms", "+15550001", DeliveryStatus.READ, utcnow()))
        run(store.update_conversation(conversation_id, assignee="usr_a", unread_count=0))
        run(store.update_conversation(conversation_id, status=ConversationStatus.RESOLVED))
        run(store.update_contact(contact_id, display_name="Ann", tags=("vip",)))
        sms = {"channel": "sms"}
        created = {**sms, "contact_id": contact_id}
        events = logged(self.events, run)
        assigned, resolved = run(store.conversation_changes(conversation_id))

        def at(record: Any) -> dict[str, str]:
            return {"at": format_timestamp(getattr(record, "created_at", None) or record.at)}

        def entry(change: Any) -> dict[str, Any]:
            status, assignee = str(change.status), change.assignee
            return {"change_id": change.id, **at(change), "status": status, "assignee": assignee}

        assert {type(event.type) for event in events} == {str}
        assert [(event.type, event.data) for event in events] == [
            ("message.created", {**created, "direction": "inbound", **at(ingested.message)}),
            ("message.created", {**created, "direction": "outbound", **at(message)}),
            ("message.status_changed", {**sms, "status": "sending", "previous": "queued"}),
            ("message.status_changed", {**sms, "status": "delivered", "previous": "sending"}),
            ("message.status_changed", {**sms, "status": "read", "previous": "delivered"}),
            (
                "conversation.updated",
                {
                    **sms,
                    "changes": {"assignee": [None, "usr_a"], "unread_count": [1, 0]},
                    **entry(assigned),
                },
            ),
            (
                "conversation.updated",
                {**sms, "changes": {"status": ["open", "resolved"]}, **entry(resolved)},
            ),
            ("contact.updated", {"fields": ["display_name", "tags"]}),
        ]
        start = run(self.events.latest())
        stop = run(store.ingest_inbound("sms", opt_out("p2")))
        after_stop = {(e.type, e.record_id): e.data for e in logged(self.events, run, start)}
        *_, reopened = run(store.conversation_changes(conversation_id))
        assert after_stop == {
            ("contact.updated", contact_id): {"fields": ["opted_out"]},
            ("message.created", stop.message_id): {
                **created,
                "direction": "inbound",
                **at(stop.message),
            },
            ("conversation.updated", conversation_id): {
                **sms,
                "changes": {"status": ["resolved", "open"]},
                **entry(reopened),
            },
        }
