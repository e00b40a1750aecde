"""Parked status updates in SQLite (``omnichannel_core.modules.inbox.store.sqlite.status``):
stored once, removed when applied, deleted when expired."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from omnichannel_core.hooktypes import StatusUpdate
from omnichannel_core.models import DeliveryStatus
from tests.support.sqlite_files import read_rows, stores_on_file


def test_parked_updates_are_kept_once_and_removed_when_applied(tmp_path):
    """A repeated callback is parked once per (channel, provider id, status); recording the
    provider id applies and deletes every row parked for it, leaving other ids' rows."""
    path = tmp_path / "parked.db"
    with stores_on_file(path) as stores:
        store = stores.inbox
        for status in ("delivered", "delivered", "read"):
            update = StatusUpdate("pm-1", DeliveryStatus(status))
            assert asyncio.run(store.apply_status("sms", update)).parked is True
        asyncio.run(store.apply_status("sms", StatusUpdate("pm-other", DeliveryStatus.READ)))
        parked = "SELECT provider_message_id, status FROM parked_statuses ORDER BY 1, 2"
        assert read_rows(path, parked) == [
            ("pm-1", "delivered"),
            ("pm-1", "read"),
            ("pm-other", "read"),
        ]
        _, conversation = asyncio.run(store.resolve_recipient("sms", "+1"))
        message, _ = asyncio.run(store.create_outbound(conversation.id, "x", (), {}, None))
        applied = asyncio.run(
            store.advance_message(message.id, DeliveryStatus.SENT, provider_message_id="pm-1")
        )
        assert applied.message.status is DeliveryStatus.READ
        assert read_rows(path, parked) == [("pm-other", "read")]


def test_expired_parked_updates_are_deleted_on_the_next_park(tmp_path):
    """Parking an update deletes every parked update older than parked_status_ttl."""
    path = tmp_path / "expiry.db"
    with stores_on_file(path) as stores:
        store = stores.inbox
        store.parked_status_ttl = timedelta(0)
        asyncio.run(store.apply_status("sms", StatusUpdate("pm-old", DeliveryStatus.READ)))
        time.sleep(0.01)  # the clock moves past the first update's time
        asyncio.run(store.apply_status("sms", StatusUpdate("pm-new", DeliveryStatus.READ)))
        ids = read_rows(path, "SELECT provider_message_id FROM parked_statuses")
        assert ids == [("pm-new",)]
